"""docs/architecture.md stays true: every room of the code is in it, and every file it names exists."""

from __future__ import annotations

import re
import subprocess

from tests.support.env import ROOT

TEXT = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")


def test_every_room_is_described() -> None:
    rooms = [p for p in (ROOT / "server" / "pulsewire").iterdir() if (p / "__init__.py").is_file()]
    for room in [*rooms, ROOT / "server" / "pulsewire_devkit"]:
        assert f"`{room.relative_to(ROOT).as_posix()}/`" in TEXT, f"{room.name} is not in docs/architecture.md"


def test_every_file_named_exists() -> None:
    # A file is named with as much of its path as its room makes clear: `factory.py` in the app's row.
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    named = set(re.findall(r"`([\w./-]+\.(?:py|js|mjs|md))`", TEXT))
    assert len(named) > 20
    for name in named:
        assert any(path == name or path.endswith("/" + name) for path in tracked), f"no file {name}"
