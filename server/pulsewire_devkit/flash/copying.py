"""The copy step: the board's configuration and exactly the files the firmware's manifest names
(compiled by mpy.py) written to the board over its raw REPL, stale files removed first.

Stale: a `ring.py` next to the new `ring.mpy` (MicroPython imports name.py before name.mpy), and
files the previous flash wrote that this one does not (listed on the board in FLASHED_FILES).
Files of the user's own are left alone. main.py is removed first and written last, so a board
that resets mid-copy boots to a bare REPL rather than half a firmware. The boot state of
over-the-air updates (BOOT_STATE) goes too: a board flashed again runs what was flashed, not a
release it had staged before (docs/firmware.md, "Over-the-air updates").
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass

from pulsewire_devkit.flash.errors import FlashError
from pulsewire_devkit.flash.mpy import BoardFile, Compiled
from pulsewire_devkit.flash.plan import CONFIG_NAME, Plan, config_bytes
from pulsewire_devkit.flash.progress import Step, size_text
from pulsewire_devkit.flash.repl import MicroPythonInfo, Repl

# On the board: the names of the files the last flash wrote, so the next one removes those it does
# not write again. Not the firmware's manifest (manifest.txt), which says what to write.
FLASHED_FILES = ".pulsewire-files"
# The firmware's boot layer (otaboot.py) runs the version this file names instead of the root's.
BOOT_STATE = "fw/boot.json"
SPACE_MARGIN = 8 * 1024  # filesystems need a few blocks spare to write at all

Listing = dict[str, tuple[bool, int]]  # name -> (is a folder, size), as Repl.listdir() answers


@dataclass(frozen=True)
class FilesToCopy:
    """What the copy step writes, in order: pulsewire.json, then the manifest's files (main.py last)."""

    config: BoardFile
    firmware: list[BoardFile]  # one per file the firmware's manifest names (mpy.compile_firmware)

    @property
    def files(self) -> list[BoardFile]:
        return [self.config, *self.firmware]

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def describe(self) -> str:
        return f"{self.config.name} and the {len(self.firmware)} files of the firmware's manifest"


def files_to_copy(plan: Plan, compiled: Compiled) -> FilesToCopy:
    return FilesToCopy(BoardFile(CONFIG_NAME, config_bytes(plan.config.raw)), list(compiled.files))


def copy_files(repl: Repl, plan: Plan, to_copy: FilesToCopy, info: MicroPythonInfo | None, s: Step) -> None:
    """Write `to_copy` to the board, after checking it fits and removing what would get in its way."""
    existing = repl.listdir()
    _refuse_shadowing_folders(to_copy, existing, plan.port)
    stale = _stale(repl, to_copy, existing)
    _check_room(to_copy, stale, existing, info, plan.port)
    if "main.py" in existing:  # first: a board that resets mid-copy then boots to a bare REPL
        repl.remove("main.py")
    if existing.get("fw", (False, 0))[0]:
        with contextlib.suppress(FlashError):  # none there: the board was never updated
            repl.remove(BOOT_STATE)
            s.note(f"removed {BOOT_STATE} (the board runs the firmware flashed now, not an update it had)")
    for name, why in sorted(stale.items()):
        repl.remove(name)
        s.note(f"removed {name} ({why})")
    for f in to_copy.files:  # main.py is last
        repl.write(f.name, f.data)
        s.note(f"{f.name:<18}{size_text(f.size):>9}" + ("  (source)" if f.name.endswith(".py") else ""))
    repl.write(FLASHED_FILES, json.dumps(sorted(f.name for f in to_copy.files)).encode())
    _check_sizes(repl, to_copy)


def _refuse_shadowing_folders(to_copy: FilesToCopy, existing: Listing, port: str) -> None:
    for f in to_copy.files:
        if f.module and existing.get(f.module, (False, 0))[0]:
            raise FlashError(
                f"the board has a folder {f.module}/ that `import {f.module}` finds before {f.name}: remove it "
                f"(mpremote connect {port} rm -r :{f.module}) and run the command again"
            )


def _stale(repl: Repl, to_copy: FilesToCopy, existing: Listing) -> dict[str, str]:
    """The board's files to remove, each with why: sources that hide a new .mpy, and leftovers."""
    names = {f.name for f in to_copy.files}
    # MicroPython looks for name.py before name.mpy in each folder: an old ring.py hides ring.mpy.
    stale = {
        f"{f.module}.py": f"{f.module}.py would be imported instead of {f.name}" for f in to_copy.files if f.module
    }
    if FLASHED_FILES in existing and not existing[FLASHED_FILES][0]:
        with contextlib.suppress(FlashError, ValueError):
            for name in json.loads(repl.read(FLASHED_FILES)):
                stale.setdefault(str(name), "left by the previous flash, not part of this firmware")
    return {n: why for n, why in stale.items() if n in existing and not existing[n][0] and n not in names}


def _check_room(
    to_copy: FilesToCopy, stale: dict[str, str], existing: Listing, info: MicroPythonInfo | None, port: str
) -> None:
    replaced = {f.name for f in to_copy.files} | set(stale)
    freed = sum(existing[n][1] for n in replaced if n in existing and not existing[n][0])
    needed = to_copy.size - freed
    if info is not None and info.free is not None and needed > info.free - SPACE_MARGIN:
        raise FlashError(
            f"not enough room on the board: the firmware needs {size_text(needed)} more, {size_text(info.free)} "
            f"are free; remove files of your own (mpremote connect {port} ls)"
        )


def _check_sizes(repl: Repl, to_copy: FilesToCopy) -> None:
    after = repl.listdir()
    wrong = [f.name for f in to_copy.files if after.get(f.name, (False, -1))[1] != f.size]
    if wrong:
        raise FlashError(f"the board holds {', '.join(wrong)} with the wrong size after copying: run the command again")
