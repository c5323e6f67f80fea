"""`--dry-run`: the plan printed step by step, as run() would do it, with the files the firmware's
manifest names (compiled, so their sizes are real) and the configuration with its secrets masked.
Touches neither the server nor the board."""

from __future__ import annotations

import json
from collections.abc import Callable

from pulsewire_devkit.flash import image
from pulsewire_devkit.flash.copying import FilesToCopy, files_to_copy
from pulsewire_devkit.flash.mpy import Compiled, compile_firmware
from pulsewire_devkit.flash.plan import CONFIG_NAME, Plan, mask_token, masked
from pulsewire_devkit.flash.progress import size_text
from pulsewire_devkit.flash.repl import reset_text

HEAD = "Dry run: nothing is written, and neither the server nor the board is contacted."
ON_EXISTS = {
    "rotate": "give it a new token (--rotate-token/--yes)",
    "ask": "ask before giving it a new token",
    "fail": "stop (pass --rotate-token to give it a new token)",
}

# A step's lines: the first follows its number, any others are printed under it as they are.
Describe = Callable[[Plan, Compiled, FilesToCopy], list[str]]


def dry_run_lines(plan: Plan) -> list[str]:
    return describe(plan, compile_firmware(plan.firmware_dir))


def describe(plan: Plan, compiled: Compiled) -> list[str]:
    """The plan as --dry-run prints it: every step, the files and their sizes, the masked config."""
    keys = plan.steps()
    to_copy = files_to_copy(plan, compiled)
    out = [HEAD, ""]
    for i, key in enumerate(keys, 1):
        first, *more = STEPS[key](plan, compiled, to_copy)
        out += [f"[{i}/{len(keys)}] {first}", *more]
    return out + _config(plan) + [f"warning: {warning}" for warning in plan.warnings]


def _server(plan: Plan, compiled: Compiled, to_copy: FilesToCopy) -> list[str]:
    ident = plan.identity
    what = f"check the server at {plan.api_url} answers"
    if ident.registers:
        what += f", and whether {ident.device_id} is registered; if it is: {ON_EXISTS[ident.on_exists]}"
    return [what]


def _compile(plan: Plan, compiled: Compiled, to_copy: FilesToCopy) -> list[str]:
    modules = sum(1 for f in compiled.files if f.module)
    return [
        f"compile the {modules} modules the firmware's manifest names to .mpy v{compiled.mpy_version} with "
        "mpy-cross (done for this dry run; main.py stays source)"
    ]


def _image(plan: Plan, compiled: Compiled, to_copy: FilesToCopy) -> list[str]:
    img = plan.image
    assert img is not None  # the step is planned only with an image
    chip = img.chip or img.image_chip
    where = f"at {image.offset_for(chip):#x} ({chip})" if chip else "at the chip's offset"
    detect = "" if img.chip else "detect the chip (esptool chip-id), check the image is built for it, "
    return [
        f"write MicroPython {img.path.name} ({size_text(img.size)}) with esptool: {detect}erase the whole "
        f"flash, write the image {where} at {img.baud} baud"
    ]


def _connect(plan: Plan, compiled: Compiled, to_copy: FilesToCopy) -> list[str]:
    return [
        f"connect to {plan.port}: enter MicroPython's raw REPL, check it reads .mpy v{compiled.mpy_version} "
        f"and has {size_text(to_copy.size)} free"
    ]


def _identity(plan: Plan, compiled: Compiled, to_copy: FilesToCopy) -> list[str]:
    ident = plan.identity
    if not ident.registers:
        return [f"use the given token {mask_token(ident.token)}; the server's registry is not touched"]
    name = f" (name {ident.name!r})" if ident.name else ""
    return [f"register {ident.device_id}{name} on the server (or rotate, as above): the token goes into {CONFIG_NAME}"]


def _copy(plan: Plan, compiled: Compiled, to_copy: FilesToCopy) -> list[str]:
    files = to_copy.files
    lines = [
        f"copy {len(files)} files ({size_text(to_copy.size)}) to the board, {to_copy.describe()}; main.py is "
        "removed first and written last:"
    ]
    for f in files:
        src = f"  from {f.source.name}" if f.source is not None and f.source.name != f.name else ""
        lines.append(f"      {f.name:<18}{size_text(f.size):>9}{src}")
    lines.append(
        "      and remove <module>.py next to each new .mpy (MicroPython imports .py first), and files"
        " the previous flash left that this one does not write"
    )
    return lines


def _reset(plan: Plan, compiled: Compiled, to_copy: FilesToCopy) -> list[str]:
    return [f"reset the board ({reset_text(plan.reset)}) so it runs main.py"]


def _wait(plan: Plan, compiled: Compiled, to_copy: FilesToCopy) -> list[str]:
    return [
        f"wait up to {plan.wait_s:.0f} s for {plan.identity.device_id} to be online "
        f"(GET {plan.api_url}/api/devices), showing the board's output"
    ]


STEPS: dict[str, Describe] = {
    "server": _server,
    "compile": _compile,
    "image": _image,
    "connect": _connect,
    "identity": _identity,
    "copy": _copy,
    "reset": _reset,
    "wait": _wait,
}


def _config(plan: Plan) -> list[str]:
    out = ["", f"{CONFIG_NAME} for the board (token and Wi-Fi password masked):"]
    out += ["  " + line for line in json.dumps(masked(plan.config.raw), indent=2).splitlines()]
    cfg = plan.config.effective
    return out + [
        "",
        f"The board will send {', '.join(plan.config.values)} every {cfg['interval_ms']} ms, to {plan.server_url}.",
    ]
