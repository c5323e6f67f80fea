"""`pulsewire migrate` on a database of the release before, then `pulsewire db compact` and `db stats`."""

from __future__ import annotations

import json
from pathlib import Path

from tests.storage.test_upgrade import OLD, old_release_database
from tests.support.cli import cli as pulsewire


def test_upgrade_copy_compact_and_stats_from_the_command_line(tmp_path: Path) -> None:
    old_release_database(f"sqlite:///{tmp_path / 'pulsewire.db'}")
    refused = pulsewire("db", "stats", "--data-dir", str(tmp_path))
    assert refused.returncode == 1 and "schema is at 0002, this release needs 0006" in refused.stderr
    assert "pulsewire migrate" in refused.stderr and "Traceback" not in refused.stderr

    upgraded = pulsewire("migrate", "--data-dir", str(tmp_path))
    assert upgraded.returncode == 0, upgraded.stderr
    copy = Path(upgraded.stdout.split("copied the database before upgrading it: ")[1].split("\n")[0])
    assert copy.parent == tmp_path and copy.name.startswith("pulsewire.db.rev0002-") and copy.stat().st_size > 0

    before = json.loads(pulsewire("db", "stats", "--json", "--data-dir", str(tmp_path)).stdout)
    assert before["resolutions"]["raw"]["hot_values"] == before["stored_values"] == len(OLD)

    compacted = pulsewire("db", "compact", "--json", "--data-dir", str(tmp_path))
    assert compacted.returncode == 0, compacted.stderr
    done = json.loads(compacted.stdout)
    assert (done["windows"], done["values"], done["dropped"]) == (3, len(OLD), 0)

    after = json.loads(pulsewire("db", "stats", "--json", "--data-dir", str(tmp_path)).stdout)
    raw = after["resolutions"]["raw"]
    assert (raw["values"], raw["hot_values"], raw["blocks"]) == (len(OLD), 0, 3)
    assert (raw["oldest"], raw["newest"]) == (OLD[0][0], OLD[-1][0])
    assert after["resolutions"]["1m"]["buckets"] == 180 and after["resolutions"]["1h"]["buckets"] == 3
    assert after["bytes_per_value"] == round(after["bytes_on_disk"] / len(OLD), 3)

    shown = pulsewire("db", "stats", "--data-dir", str(tmp_path)).stdout
    assert f"stored readings: {len(OLD):,}" in shown and "0 raw readings not compacted yet" in shown

    # Retention cut to a minute: the three raw hours go, whole; their rollups stay.
    swept = pulsewire("db", "sweep", "--json", "--retention-raw-days", "0.001", "--data-dir", str(tmp_path))
    assert swept.returncode == 0, swept.stderr
    assert json.loads(swept.stdout) == {"raw": 3, "1m": 0, "1h": 0}
    left = json.loads(pulsewire("db", "stats", "--json", "--data-dir", str(tmp_path)).stdout)["resolutions"]
    assert (left["raw"]["values"], left["raw"]["blocks"], left["1m"]["buckets"], left["1h"]["buckets"]) == (
        0,
        0,
        180,
        3,
    )
