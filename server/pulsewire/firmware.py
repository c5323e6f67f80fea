"""The board firmware's files (device/firmware), and its pure modules loaded under CPython.

The simulator runs the firmware's own session and ring, so what `pulsewire simulate` exercises
is the code the boards run; `pulsewire flash` copies these files to a board.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "device" / "firmware"

# Modules with no board-only imports: they run the same under CPython.
PURE = ("ring", "session", "wsframe", "config")


def firmware_dir() -> Path:
    if not (FIRMWARE_DIR / "main.py").is_file():
        raise FileNotFoundError(
            f"firmware not found at {FIRMWARE_DIR}: run pulsewire from a checkout of the repository"
        )
    return FIRMWARE_DIR


def load(name: str) -> ModuleType:
    """Import device/firmware/<name>.py as `pulsewire._firmware.<name>`, once per process."""
    if name not in PURE:
        raise ValueError(f"{name} uses board-only modules; only {', '.join(PURE)} load under CPython")
    qualified = f"pulsewire._firmware.{name}"
    module = sys.modules.get(qualified)
    if module is None:
        spec = importlib.util.spec_from_file_location(qualified, firmware_dir() / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[qualified] = module
        spec.loader.exec_module(module)
    return module
