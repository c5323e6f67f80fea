"""The board firmware, shipped with Pulsewire, and its modules loaded under CPython.

The files are the repository's device/firmware, carried as package data (`files/`). The manifest
there names exactly the files that go on a board, in the order they are written. `load` is the
one way to run a firmware module under CPython: the simulator runs the firmware's own session,
ring and rules, and the flashing tool checks a configuration with the firmware's own config and
sensors.
"""

from __future__ import annotations

import builtins
import sys
from collections.abc import Mapping
from importlib.resources import files as package_files
from pathlib import Path
from types import ModuleType
from typing import Any

MANIFEST = "manifest.txt"

# Modules with no board-only imports: they run the same under CPython and are loaded once.
PURE = ("ring", "session", "wsframe", "config", "rules", "journal")


class FirmwareError(Exception):
    """The firmware files are missing or their manifest is wrong."""


def folder() -> Path:
    """The folder holding the firmware's files and manifest."""
    return Path(str(package_files("pulsewire.firmware") / "files"))


def manifest(source: Path | None = None) -> list[str]:
    """The names of the files that go on a board, in the order they are written (main.py last)."""
    source = source or folder()
    path = source / MANIFEST
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise FirmwareError(f"no firmware manifest at {path}: {exc.strerror}") from None
    names = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    missing = [name for name in names if not (source / name).is_file()]
    if missing:
        raise FirmwareError(f"{path} names files that are not there: {', '.join(missing)}")
    if not names or names[-1] != "main.py":
        raise FirmwareError(f"{path} must end with main.py, which the board runs once everything is written")
    return names


def load(name: str, *, source: Path | None = None, stand_ins: Mapping[str, ModuleType] | None = None) -> ModuleType:
    """Run firmware module `name` under CPython and return it.

    A pure module from the shipped firmware is loaded once per process. Any other module needs
    `stand_ins` for the board-only modules it imports (`import hardware` then gets the stand-in);
    it is loaded afresh on every call, as is any module from another `source` folder. A firmware
    module it imports (config's `import rules`) is loaded the same way, from the same folder.
    """
    source = source or folder()
    if stand_ins is None and name not in PURE:
        raise ValueError(f"{name} imports board-only modules: give stand-ins for them")
    shared = stand_ins is None and source == folder()
    qualified = f"pulsewire.firmware.loaded.{name}"
    if shared and qualified in sys.modules:
        return sys.modules[qualified]
    path = source / f"{name}.py"
    module = ModuleType(qualified)
    module.__file__ = str(path)
    module.__dict__["__builtins__"] = {**vars(builtins), "__import__": _importing(source, stand_ins)}
    if shared:
        sys.modules[qualified] = module  # before running it, as import does
    try:
        exec(compile(path.read_text(encoding="utf-8"), str(path), "exec"), module.__dict__)
    except BaseException:
        sys.modules.pop(qualified, None)
        raise
    return module


def _importing(source: Path, stand_ins: Mapping[str, ModuleType] | None) -> Any:
    """The `import` of a loaded module: stand-ins first, then the firmware's own modules, then CPython's."""

    def _import(name: str, globals: Any = None, locals: Any = None, fromlist: Any = (), level: int = 0) -> Any:
        if stand_ins and name in stand_ins:
            return stand_ins[name]
        if level == 0 and (source / f"{name}.py").is_file():
            return load(name, source=source, stand_ins=stand_ins)
        return builtins.__import__(name, globals, locals, fromlist, level)

    return _import
