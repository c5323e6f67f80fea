"""What other users of this machine could read, warned about once at start: a data folder or
database files open to them (made by an older version, or by hand), and an admin key given on the
command line (every user can read a process's arguments: ps, /proc/<pid>/cmdline).

Nothing is changed: the operator decides (docs/configuration.md, "Files and secrets").
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from pulsewire.settings import Settings
from pulsewire.storage.engine import sqlite_file
from pulsewire.storage.private import open_to_others

log = logging.getLogger("pulsewire.admin")

ADMIN_KEY_FLAG = "--admin-key"


def private_paths(settings: Settings) -> list[Path]:
    """The data folder, the admin key file and the SQLite database files, if any."""
    paths = [settings.data_dir, settings.admin_key_file]
    database = sqlite_file(settings.resolved_database_url)
    if database is not None:
        paths += [database, database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")]
    return paths


def admin_key_on_command_line(settings: Settings, argv: Sequence[str]) -> bool:
    return settings.admin_key is not None and any(
        arg == ADMIN_KEY_FLAG or arg.startswith(ADMIN_KEY_FLAG + "=") for arg in argv
    )


def warn_about_exposure(settings: Settings, argv: Sequence[str] = sys.argv) -> None:
    open_files = open_to_others(dict.fromkeys(private_paths(settings)))
    if open_files:
        log.warning(
            "files of the server are readable by other users of this machine; "
            "chmod 700 the folder and 600 the files (see docs/configuration.md)",
            extra={"files": ", ".join(f"{path} ({mode:04o})" for path, mode in open_files)},
        )
    if admin_key_on_command_line(settings, argv):
        log.warning(
            "the admin key was given on the command line, where every user of this machine can read it "
            "(ps, /proc/<pid>/cmdline); set PULSEWIRE_ADMIN_KEY in the environment (e.g. a systemd "
            "EnvironmentFile) or keep it in <data_dir>/admin.key instead"
        )
