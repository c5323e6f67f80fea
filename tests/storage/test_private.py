"""Private files: the data folder (0700) and the database files (0600) as the real server and the
real `pulsewire migrate` make them, under the usual umask (022); what exists is left alone."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from pulsewire.storage.engine import migrate, open_engine
from pulsewire.storage.private import open_to_others, private_dir, private_file
from tests.support.server import Server, free_port

USUAL_UMASK = 0o022  # what makes folders 0755 and files 0644 unless their maker says otherwise


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("PULSEWIRE_")}


def serve(data_dir: Path, logs: Path, request: pytest.FixtureRequest) -> Server:
    """`pulsewire serve` for real, started under the usual umask."""
    port = free_port()
    logs.mkdir(exist_ok=True)
    with open(logs / "server.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pulsewire", "serve", "--port", str(port), "--data-dir", str(data_dir)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env=clean_env(),
            umask=USUAL_UMASK,
        )
    server = Server(logs, port=port, proc=proc)
    request.addfinalizer(server.stop)
    server.wait_healthy()
    server.admin_key = (data_dir / "admin.key").read_text().strip()  # generated at its first start
    return server


def test_a_new_data_folder_and_its_database_files_are_private(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    data = tmp_path / "var" / "pulsewire"
    server = serve(data, tmp_path / "logs", request)
    server.register("porch-1")  # a write: the WAL has content
    db = data / "pulsewire.db"
    for path in (db, db.with_name("pulsewire.db-wal"), db.with_name("pulsewire.db-shm"), data / "admin.key"):
        assert mode(path) == 0o600, f"{path.name}: {mode(path):04o}"
    assert mode(data) == 0o700
    assert mode(data.parent) == 0o755  # only the data folder itself is private
    assert "readable by other users" not in server.log_text()


def test_the_copy_made_before_a_migration_is_private(tmp_path: Path) -> None:
    db = tmp_path / "pulsewire.db"
    old = open_engine(f"sqlite:///{db}")
    migrate(old, "0002")  # what the release before made
    old.dispose()
    db.chmod(0o644)  # as that release left it
    done = subprocess.run(
        [sys.executable, "-m", "pulsewire", "migrate", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=clean_env(),
        umask=USUAL_UMASK,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    (copy,) = tmp_path.glob("pulsewire.db.rev0002-*.bak")
    assert mode(copy) == 0o600
    assert mode(db) == 0o644  # an existing database keeps its mode (the server warns, below)


def test_private_dir_and_file_leave_what_exists_alone(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    private_dir(folder)
    assert mode(folder) == 0o755
    kept = folder / "kept.db"
    kept.write_bytes(b"data")
    private_file(kept)
    assert kept.read_bytes() == b"data"
    private_dir(tmp_path / "a" / "b")
    private_file(tmp_path / "a" / "b" / "new.db")
    assert mode(tmp_path / "a" / "b") == 0o700 and mode(tmp_path / "a" / "b" / "new.db") == 0o600
    assert (tmp_path / "a" / "b" / "new.db").read_bytes() == b""


def test_open_to_others_names_what_group_or_others_can_read(tmp_path: Path) -> None:
    files = {name: tmp_path / name for name in ("private", "group", "world", "missing")}
    for name, bits in (("private", 0o600), ("group", 0o640), ("world", 0o604)):
        files[name].touch()
        files[name].chmod(bits)
    assert open_to_others(files.values()) == [(files["group"], 0o640), (files["world"], 0o604)]
