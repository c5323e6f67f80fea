"""Files only their owner can read: the data folder (0700) and the database files (0600).

Modes are given when a file is created, never by changing the process's umask (which every other
file and thread would share). What exists already is left as it is: `open_to_others` says which
of it other users of the machine can read, for a warning.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterable
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def private_dir(path: Path) -> None:
    """Make the folder `path` (0700) unless it exists; missing parents get the usual mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=PRIVATE_DIR_MODE)


def private_file(path: Path) -> None:
    """Make `path` an empty file (0600) unless it exists.

    For a database: SQLite takes an empty file as a new database, gives its -wal and -shm files
    the database's mode, and writes VACUUM INTO an empty file as into a missing one.
    """
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE))


def open_to_others(paths: Iterable[Path]) -> list[tuple[Path, int]]:
    """The existing ones of `paths` that group or other users may read (or enter), with their modes."""
    found = []
    for path in paths:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except OSError:  # missing, or not ours to look at: nothing to warn about here
            continue
        if mode & 0o077:
            found.append((path, mode))
    return found
