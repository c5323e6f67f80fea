"""MicroPython itself, written to the board's flash with esptool (`python -m esptool`).

The chip is detected (`esptool chip-id`) unless given, checked against the chip the image was
built for (its header says), then the flash is erased and the image written at the chip's
bootloader offset (0x1000 for the ESP32 and ESP32-S2, 0x0 for the S3 and C3, ...; esptool's own
table). esptool's output is passed on, progress lines thinned to one per 10 %.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulsewire_devkit.flash.errors import FlashError

# esptool's chip names this firmware runs on (every ESP32-class chip esptool knows; no ESP8266).
# tests/devkit/test_flash.py checks this list against esptool.targets.CHIP_DEFS.
CHIPS = (
    "esp32",
    "esp32s2",
    "esp32s3",
    "esp32c3",
    "esp32c2",
    "esp32c6",
    "esp32c61",
    "esp32c5",
    "esp32e22",
    "esp32h2",
    "esp32h21",
    "esp32p4",
    "esp32h4",
    "esp32s31",
)

DEFAULT_BAUD = 460800  # esptool's --baud while writing
ESP_IMAGE_MAGIC = 0xE9
PARTITION_TABLE_AT = 0x8000  # flash address of the partition table in ESP-IDF's default layout
PARTITION_MAGIC = b"\xaa\x50"
_PERCENT = re.compile(r"(\d{1,3})(?:\.\d+)?\s*%")

Echo = Callable[[str], None]


@dataclass(frozen=True)
class Image:
    """The MicroPython image the plan writes, checked: its file, the chip, the baud rate."""

    path: Path
    size: int
    chip: str | None  # esptool chip name; None: detect it
    image_chip: str | None  # the chip the image was built for, from its header
    baud: int


@dataclass(frozen=True)
class ImageInfo:
    size: int
    chip: str | None  # esptool's chip name from the image header; None: unknown
    merged: bool | None  # bootloader + partition table + app in one file (what --firmware-image wants)


def chip_defs() -> dict[str, Any]:
    from esptool.targets import CHIP_DEFS

    return {name: CHIP_DEFS[name] for name in CHIPS if name in CHIP_DEFS}


def chip_by_name(chip_name: str) -> str | None:
    """esptool's key (esp32s3) for a chip's display name (ESP32-S3)."""
    for key, cls in chip_defs().items():
        if cls.CHIP_NAME.upper() == chip_name.upper():
            return key
    return None


def offset_for(chip: str) -> int:
    return int(chip_defs()[chip].BOOTLOADER_FLASH_OFFSET)


def inspect(path: Path) -> ImageInfo:
    """What the image file's header says; refuse files that are not an ESP flash image."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(16)
    except OSError as exc:
        raise FlashError(f"--firmware-image {path}: cannot read it ({exc.strerror})") from None
    if len(head) < 16 or head[0] != ESP_IMAGE_MAGIC:
        raise FlashError(
            f"--firmware-image {path.name} is not an ESP32 firmware image (those start with byte 0xE9): download "
            "the .bin for your board from https://micropython.org/download/ (not a .uf2, .hex, .elf or .mpy)"
        )
    chip_id = int.from_bytes(head[12:14], "little")  # ESP-IDF extended image header: chip_id
    chip = next((k for k, cls in chip_defs().items() if getattr(cls, "IMAGE_CHIP_ID", None) == chip_id), None)
    merged = None
    if chip is not None:
        at = PARTITION_TABLE_AT - offset_for(chip)
        with path.open("rb") as f:
            f.seek(at)
            merged = f.read(2) == PARTITION_MAGIC
    return ImageInfo(size, chip, merged)


def _run(args: list[str], echo: Echo) -> tuple[int, str]:
    """Run esptool, passing its output on (indented), and return its exit status and output."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "esptool", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,  # universal newlines: progress bars redrawn with \r arrive as lines
        bufsize=1,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    shown_tenth = -1
    for raw in proc.stdout:
        line = raw.rstrip()
        if not line:
            continue
        lines.append(line)
        m = _PERCENT.search(line)
        if m:  # a progress line: show 0 %, 10 %, ... 100 %
            tenth = min(int(m.group(1)), 100) // 10
            if tenth == shown_tenth:
                continue
            shown_tenth = tenth
        else:
            shown_tenth = -1
        echo(line)
    return proc.wait(), "\n".join(lines)


def _explain(output: str, port: str, what: str, code: int) -> str:
    low = output.lower()
    wrong = re.search(r"this chip is (ESP[\w-]+),? not (ESP[\w-]+)", output, re.IGNORECASE)
    if wrong:
        real = chip_by_name(wrong.group(1)) or wrong.group(1)
        return (
            f"wrong chip: the board is an {wrong.group(1)}, not an {wrong.group(2)}. Leave --chip out (it is "
            f"detected) or pass --chip {real}, with a MicroPython image built for the {wrong.group(1)}"
        )
    refused = re.search(r"^.*(?:is not an ESP[\w-]+ image|chip revision).*$", output, re.IGNORECASE | re.MULTILINE)
    if refused:
        said = refused.group(0).removeprefix("A fatal error occurred: ").strip()
        return (
            f"esptool refused the image for this board ({said}): download the MicroPython .bin built for its "
            "chip from https://micropython.org/download/"
        )
    if "permission denied" in low:
        return f"esptool may not open {port} (permission denied): add yourself to the dialout group"
    if "could not open port" in low or "no such file" in low:
        return f"esptool cannot open {port}: is the board plugged in, and no serial monitor holding the port?"
    if "failed to connect" in low or "no serial data received" in low or "timed out waiting" in low:
        return (
            f"the board on {port} did not enter its bootloader: hold its BOOT (IO0) button, press and release "
            "EN/RESET, release BOOT, and run the command again (some boards need this every time, or a slower "
            "--flash-baud such as 115200)"
        )
    return f"esptool could not {what} (exit status {code}); its output is above"


def _esptool(args: list[str], port: str, what: str, echo: Echo) -> str:
    try:
        code, output = _run(args, echo)
    except OSError as exc:
        raise FlashError(f"cannot run esptool: {exc}") from None
    if code != 0:
        if "No module named esptool" in output:
            raise FlashError("esptool is not installed: pip install esptool (a pulsewire dependency)")
        raise FlashError(_explain(output, port, what, code))
    return output


def detect_chip(port: str, echo: Echo) -> str:
    output = _esptool(["--port", port, "chip-id"], port, "talk to the board", echo)
    m = re.search(r"Detecting chip type\.*\s*(ESP[\w-]+)", output) or re.search(r"Chip type:\s*(ESP[\w-]+)", output)
    name = m.group(1) if m else None
    chip = chip_by_name(name) if name else None
    if name and chip is None and name.upper().startswith("ESP8266"):
        raise FlashError("the board is an ESP8266: the Pulsewire firmware needs an ESP32-class chip")
    if chip is None:
        raise FlashError(
            f"esptool did not say which chip is on {port} ({name or 'no chip type in its output'}): pass --chip"
        )
    return chip


def write(image: Image, port: str, echo: Echo) -> str:
    """Detect the chip (unless given), check the image fits it, erase the flash, write the image.

    Returns the chip written. The board boots MicroPython afterwards (esptool's hard reset).
    """
    chip = image.chip or detect_chip(port, echo)
    if image.image_chip and image.image_chip != chip:
        name = chip_defs()[chip].CHIP_NAME
        raise FlashError(
            f"wrong chip: the board is an {name}, but {image.path.name} is built for the "
            f"{chip_defs()[image.image_chip].CHIP_NAME}: download the MicroPython .bin for the {name} "
            "from https://micropython.org/download/ (nothing was erased)"
        )
    offset = offset_for(chip)
    base = ["--chip", chip, "--port", port]
    echo(f"erasing the flash of the {chip_defs()[chip].CHIP_NAME} (everything on the board goes)")
    _esptool([*base, "erase-flash"], port, "erase the flash", echo)
    echo(f"writing {image.path.name} at {offset:#x}")
    _esptool(
        [*base, "--baud", str(image.baud), "write-flash", f"{offset:#x}", str(image.path)],
        port,
        "write the image",
        echo,
    )
    return chip
