"""The flash steps in order, each one numbered progress line: `[3/7] compiling ... done (...)`.

Order, chosen so nothing irreversible happens before everything that can be checked is:
server (reachable, id taken?) -> compile -> MicroPython image (optional) -> connect (raw REPL, .mpy
version) -> identity (register / rotate / given token) -> copy -> reset -> wait until online.
Each step's work is in its own module; dryrun.py prints the same steps for --dry-run.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from pulsewire_devkit.flash import image
from pulsewire_devkit.flash.api import Api
from pulsewire_devkit.flash.console import ConsoleLog
from pulsewire_devkit.flash.copying import FilesToCopy, copy_files, files_to_copy
from pulsewire_devkit.flash.errors import FlashError
from pulsewire_devkit.flash.mpy import Compiled, compile_firmware
from pulsewire_devkit.flash.plan import Plan
from pulsewire_devkit.flash.progress import Steps, Ui, size_text
from pulsewire_devkit.flash.registry import check_server, give_identity, identity_title
from pulsewire_devkit.flash.repl import MicroPythonInfo, Repl, check_port, reset_text
from pulsewire_devkit.flash.waiting import wait_online

OpenRepl = Callable[..., Repl]


@dataclass
class Result:
    """What a run did: for the summary, and for whoever called run()."""

    device_id: str | None
    micropython: MicroPythonInfo | None = None
    chip: str | None = None
    copied: FilesToCopy | None = None
    online_after_s: float | None = None  # None: not waited for
    console: ConsoleLog = field(default_factory=ConsoleLog)  # what the board printed after the reset


def run(plan: Plan, ui: Ui, *, open_repl: OpenRepl = Repl.open) -> Result:
    """Do the plan. Raises FlashError (with what to do) at the first step that cannot go on."""
    started = time.monotonic()
    steps = Steps(ui, plan.steps())
    for warning in plan.warnings:
        ui.warn(warning)
    check_port(plan.port)  # a missing or forbidden port is known before anything else is done
    api = Api(plan.api_url, plan.admin_key) if plan.checks_server and plan.api_url else None
    exists = _server_step(plan, api, ui, steps)
    compiled = _compile_step(plan, steps)
    result = Result(plan.identity.device_id, chip=_image_step(plan, steps))
    with _connected(plan, open_repl, compiled, result, steps) as repl:
        plan = _identity_and_copy_steps(plan, api, exists, repl, compiled, result, steps)
        _reset_and_wait_steps(plan, api, repl, result, steps)
    _summary(plan, result, ui, time.monotonic() - started)
    return result


# --- the steps, in order -------------------------------------------------------------------------


def _server_step(plan: Plan, api: Api | None, ui: Ui, steps: Steps) -> bool:
    """Is the device id already registered (False when the server is not asked)?"""
    if api is None:
        return False
    with steps.step("server", f"checking the server at {plan.api_url}") as s:
        return check_server(plan, api, ui, s)


def _compile_step(plan: Plan, steps: Steps) -> Compiled:
    with steps.step("compile", "compiling the firmware to .mpy") as s:
        compiled = compile_firmware(plan.firmware_dir)
        s.done(f"{len(compiled.files)} files, {size_text(compiled.size)}, .mpy v{compiled.mpy_version}")
    return compiled


def _image_step(plan: Plan, steps: Steps) -> str | None:
    """The chip MicroPython was written to; None without an image."""
    if plan.image is None:
        return None
    with steps.step("image", f"writing MicroPython ({plan.image.path.name}) with esptool") as s:
        chip = image.write(plan.image, plan.port, s.note)
        s.done(f"{chip}, {size_text(plan.image.size)}")
    return chip


@contextlib.contextmanager
def _connected(plan: Plan, open_repl: OpenRepl, compiled: Compiled, result: Result, steps: Steps) -> Iterator[Repl]:
    """The connect step; the REPL is closed when the steps that use it are over, or one fails."""
    repl: Repl | None = None
    try:
        with steps.step("connect", f"connecting to the board on {plan.port}") as s:
            if plan.image:  # MicroPython's first boot creates the filesystem: not to be interrupted
                repl = open_repl(plan.port, repl_timeout=30.0, boot_s=15.0)
            else:
                repl = open_repl(plan.port, repl_timeout=10.0)
            result.micropython = repl.info()
            _check_mpy(result.micropython, compiled)
            s.done(result.micropython.describe())
        yield repl
    finally:
        if repl is not None:
            repl.close()


def _identity_and_copy_steps(
    plan: Plan, api: Api | None, exists: bool, repl: Repl, compiled: Compiled, result: Result, steps: Steps
) -> Plan:
    """The identity step, then the copy step; the plan returned holds the device's token."""
    with steps.step("identity", identity_title(plan, exists)) as s:
        plan, issued = give_identity(plan, api, exists, s)
    to_copy = files_to_copy(plan, compiled)
    try:
        with steps.step("copy", f"copying {len(to_copy.files)} files to the board") as s:
            copy_files(repl, plan, to_copy, result.micropython, s)
            result.copied = to_copy
            s.done(f"{len(to_copy.files)} files, {size_text(to_copy.size)}")
    except FlashError as exc:
        if issued:  # the server made a token that only this run knew, and the board did not get it
            raise FlashError(
                f"{exc}\n{plan.identity.device_id} now has a token the board did not get: run the command again "
                "with --rotate-token"
            ) from None
        raise
    return plan


def _reset_and_wait_steps(plan: Plan, api: Api | None, repl: Repl, result: Result, steps: Steps) -> None:
    waits = plan.waits and api is not None
    was_online = waits and _online(plan, api)  # a connection from before the reset must not count
    with steps.step("reset", f"resetting the board ({reset_text(plan.reset)})"):
        repl.reset(plan.reset)
    if waits and api is not None:
        title = f"waiting for {plan.identity.device_id} to come online (up to {plan.wait_s:.0f} s)"
        with steps.step("wait", title) as s:
            result.online_after_s = wait_online(plan, api, repl, result.console, was_online, s)
            s.done(f"online {result.online_after_s:.0f} s after the reset")


# --- checks and the summary ----------------------------------------------------------------------


def _online(plan: Plan, api: Api | None) -> bool:
    """Is the device online now? False when the server does not say."""
    if api is None:
        return False
    with contextlib.suppress(FlashError):
        return bool((api.device(str(plan.identity.device_id)) or {}).get("online"))
    return False


def _check_mpy(info: MicroPythonInfo, compiled: Compiled) -> None:
    if info.mpy_version is None:
        return  # old or unusual builds do not say; an import error after the reset will tell
    if info.mpy_version != compiled.mpy_version:
        raise FlashError(
            f"the board's MicroPython {info.version} reads .mpy v{info.mpy_version}, but mpy-cross writes "
            f".mpy v{compiled.mpy_version} (MicroPython 1.19 and later read v6): update MicroPython on the board "
            "(--firmware-image FILE.bin, from https://micropython.org/download/)"
        )


def _summary(plan: Plan, result: Result, ui: Ui, seconds: float) -> None:
    cfg = plan.config.effective
    ident = plan.identity.device_id or "the board"
    if result.online_after_s is not None:
        ui.line(f"Done in {seconds:.0f} s: {ident} is online and sends to {plan.server_url}.")
    else:
        ui.line(f"Done in {seconds:.0f} s: {ident} is flashed and restarting (not waited for).")
    if result.micropython:
        ui.line(f"  board:   {result.micropython.describe()}" + (f", {result.chip}" if result.chip else ""))
    if result.copied:
        ui.line(f"  files:   {result.copied.describe()}, {size_text(result.copied.size)}")
    ui.line(
        f"  values:  {', '.join(plan.config.values)}, every {cfg['interval_ms']} ms until the server says otherwise"
    )
    if plan.api_url:
        ui.line(f"  watch:   {plan.api_url}/  or  pulsewire device list --server {plan.api_url}")
