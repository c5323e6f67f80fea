"""The start-up warnings about what other users of the machine could read, from the real server:
a data folder or database open to them, and an admin key given on the command line."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from pulsewire.app.exposure import admin_key_on_command_line, private_paths
from pulsewire.settings import Settings
from tests.support.server import Server

FILES_WARNING = "files of the server are readable by other users of this machine"
KEY_WARNING = "the admin key was given on the command line"


def started(server: Server, request: pytest.FixtureRequest) -> str:
    request.addfinalizer(server.stop)
    server.start()
    return "\n".join(server.log_lines())


def test_an_open_data_folder_and_database_are_warned_about_once_and_left_as_they_are(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with sqlite3.connect(data / "pulsewire.db") as db:  # made by an older version, under umask 022
        db.execute("PRAGMA journal_mode=WAL")
    data.chmod(0o755)
    (data / "pulsewire.db").chmod(0o644)
    log = started(Server(tmp_path, settings={"data_dir": str(data)}), request)
    (line,) = [line for line in log.splitlines() if FILES_WARNING in line]
    assert line.split()[1] == "warning"
    assert f"{data} (0755)" in line and f"{data / 'pulsewire.db'} (0644)" in line
    assert stat.S_IMODE(data.stat().st_mode) == 0o755  # the operator decides
    assert stat.S_IMODE((data / "pulsewire.db").stat().st_mode) == 0o644
    assert KEY_WARNING not in log  # the key came from the environment


def test_a_private_data_folder_gets_no_warning(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    tmp_path.chmod(0o700)
    log = started(Server(tmp_path), request)
    assert FILES_WARNING not in log and KEY_WARNING not in log


@pytest.mark.parametrize("flags", [["--admin-key", "pwa_on_the_command_line"], ["--admin-key=pwa_on_the_command_line"]])
def test_an_admin_key_on_the_command_line_is_warned_about(
    tmp_path: Path, request: pytest.FixtureRequest, flags: list[str]
) -> None:
    server = Server(tmp_path, admin_key="pwa_on_the_command_line", flags=flags)
    log = started(server, request)
    (line,) = [line for line in log.splitlines() if KEY_WARNING in line]
    assert line.split()[1] == "warning" and "PULSEWIRE_ADMIN_KEY" in line and "admin.key" in line
    assert "pwa_on_the_command_line" not in log  # the warning does not repeat the key
    assert server.register()  # the key works all the same


def test_which_arguments_count_as_the_command_line() -> None:
    given = Settings(admin_key="k")
    assert admin_key_on_command_line(given, ["pulsewire", "serve", "--admin-key", "k"])
    assert admin_key_on_command_line(given, ["pulsewire", "serve", "--admin-key=k"])
    assert not admin_key_on_command_line(given, ["pulsewire", "serve", "--read-key", "k"])
    assert not admin_key_on_command_line(Settings(), ["pulsewire", "serve"])


def test_the_files_looked_at(tmp_path: Path) -> None:
    sqlite = private_paths(Settings(data_dir=tmp_path))
    assert sqlite == [
        tmp_path,
        tmp_path / "admin.key",
        *(tmp_path / n for n in ("pulsewire.db", "pulsewire.db-wal", "pulsewire.db-shm")),
    ]
    postgres = private_paths(Settings(data_dir=tmp_path, database_url="postgresql+psycopg://u@h/db"))
    assert postgres == [tmp_path, tmp_path / "admin.key"]
