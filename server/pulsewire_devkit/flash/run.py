"""The flash steps in order, each one numbered progress line: `[3/7] compiling ... done (...)`.

Order, chosen so nothing irreversible happens before everything that can be checked is:
server (reachable, id taken?) -> compile -> MicroPython image (optional) -> connect (raw REPL, .mpy
version) -> identity (register / rotate / given token) -> copy -> reset -> wait until online.
`describe()` prints the same steps for --dry-run.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TextIO
from urllib.parse import urlsplit

from pulsewire_devkit.flash import image
from pulsewire_devkit.flash.api import Api, DeviceExists
from pulsewire_devkit.flash.console import ConsoleLog
from pulsewire_devkit.flash.errors import FlashError
from pulsewire_devkit.flash.mpy import BoardFile, Compiled, compile_firmware
from pulsewire_devkit.flash.plan import CONFIG_NAME, Plan, api_url_for, config_bytes, mask_token, masked
from pulsewire_devkit.flash.repl import MicroPythonInfo, Repl, check_port

# On the board: the names of the files the last flash wrote, so the next one removes those it does
# not write again. Not the firmware's manifest (manifest.txt), which says what to write.
FLASHED_FILES = ".pulsewire-files"
NOTE_EVERY_S = 15
SPACE_MARGIN = 8 * 1024  # filesystems need a few blocks spare to write at all


def size_text(n: int) -> str:
    return f"{n} B" if n < 1024 else f"{n / 1024:.1f} KB" if n < 1024 * 1024 else f"{n / 1024 / 1024:.1f} MB"


class Ui:
    """Where run() reports: progress on `out`, warnings on `err`, yes/no questions through `ask`."""

    def __init__(
        self, out: TextIO | None = None, err: TextIO | None = None, ask: Callable[[str], bool] | None = None
    ) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self._ask = ask
        self._open = False  # a step's line is waiting for its " done"

    def _close_line(self) -> None:
        if self._open:
            self.out.write("\n")
            self._open = False

    def begin(self, head: str) -> None:
        self._close_line()
        self.out.write(head)
        self.out.flush()
        self._open = True

    def note(self, text: str) -> None:
        self._close_line()
        for line in text.splitlines() or [""]:
            self.out.write(f"      {line}\n")
        self.out.flush()

    def end(self, text: str) -> None:
        self.out.write(f" {text}\n" if self._open else f"      {text}\n")
        self.out.flush()
        self._open = False

    def line(self, text: str = "") -> None:
        self._close_line()
        self.out.write(text + "\n")
        self.out.flush()

    def warn(self, text: str) -> None:
        self._close_line()
        self.out.flush()
        self.err.write(f"warning: {text}\n")
        self.err.flush()

    def ask(self, question: str) -> bool:
        if self._ask is None:
            return False
        self._close_line()
        return self._ask(question)


class Step:
    def __init__(self, ui: Ui) -> None:
        self.ui = ui
        self.detail: str | None = None

    def note(self, text: str) -> None:
        self.ui.note(text)

    def done(self, detail: str) -> None:
        self.detail = detail


class Steps:
    def __init__(self, ui: Ui, keys: list[str]) -> None:
        self.ui = ui
        self.keys = keys

    @contextlib.contextmanager
    def step(self, key: str, title: str) -> Iterator[Step]:
        n = self.keys.index(key) + 1
        self.ui.begin(f"[{n}/{len(self.keys)}] {title} ...")
        step = Step(self.ui)
        try:
            yield step
        except BaseException:
            self.ui.end("failed")
            raise
        self.ui.end(f"done ({step.detail})" if step.detail else "done")


@dataclass
class Result:
    device_id: str | None
    micropython: MicroPythonInfo | None = None
    chip: str | None = None
    files: list[BoardFile] = field(default_factory=list)
    online_after_s: float | None = None  # None: not waited for
    log: ConsoleLog = field(default_factory=ConsoleLog)


def run(plan: Plan, ui: Ui, *, open_repl: Callable[..., Repl] = Repl.open) -> Result:
    """Do the plan. Raises FlashError (with what to do) at the first step that cannot go on."""
    started = time.monotonic()
    steps = Steps(ui, plan.steps())
    result = Result(plan.identity.device_id)
    for warning in plan.warnings:
        ui.warn(warning)
    check_port(plan.port)  # a missing or forbidden port is known before anything else is done
    api = Api(plan.api_url, plan.admin_key) if plan.checks_server and plan.api_url else None
    exists = False
    if api is not None:
        with steps.step("server", f"checking the server at {plan.api_url}") as s:
            exists = _check_server(plan, api, ui, s)
    with steps.step("compile", "compiling the firmware to .mpy") as s:
        compiled = compile_firmware(plan.firmware_dir)
        s.done(f"{len(compiled.files)} files, {size_text(compiled.size)}, .mpy v{compiled.mpy_version}")
    if plan.image is not None:
        with steps.step("image", f"writing MicroPython ({plan.image.path.name}) with esptool") as s:
            result.chip = image.write(plan.image, plan.port, s.note)
            s.done(f"{result.chip}, {size_text(plan.image.size)}")
    repl: Repl | None = None
    issued = False  # the server made a token that only this run knows, until the board has it
    try:
        with steps.step("connect", f"connecting to the board on {plan.port}") as s:
            if plan.image:  # MicroPython's first boot creates the filesystem: not to be interrupted
                repl = open_repl(plan.port, repl_timeout=30.0, boot_s=15.0)
            else:
                repl = open_repl(plan.port, repl_timeout=10.0)
            result.micropython = repl.info()
            _check_mpy(result.micropython, compiled, plan)
            s.done(result.micropython.describe())
        with steps.step("identity", _identity_title(plan, exists)) as s:
            plan, issued = _identity(plan, api, exists, s)
        files = [BoardFile(CONFIG_NAME, config_bytes(plan.config.raw)), *compiled.files]
        with steps.step("copy", f"copying {len(files)} files to the board") as s:
            _copy(repl, plan, files, result.micropython, s)
            result.files = files
            s.done(f"{len(files)} files, {size_text(sum(f.size for f in files))}")
        issued = False
        was_online = False
        if plan.waits and api is not None:
            with contextlib.suppress(FlashError):
                was_online = bool((api.device(str(plan.identity.device_id)) or {}).get("online"))
        with steps.step("reset", f"resetting the board ({_reset_text(plan)})"):
            repl.reset(plan.reset)
        if plan.waits and api is not None:
            with steps.step(
                "wait", f"waiting for {plan.identity.device_id} to come online (up to {plan.wait_s:.0f} s)"
            ) as s:
                result.online_after_s = _wait_online(plan, api, repl, result.log, was_online, s)
                s.done(f"online {result.online_after_s:.0f} s after the reset")
    except FlashError as exc:
        if issued:
            raise FlashError(
                f"{exc}\n{plan.identity.device_id} now has a token the board did not get: run the command again "
                "with --rotate-token"
            ) from None
        raise
    finally:
        if repl is not None:
            repl.close()
    _summary(plan, result, ui, time.monotonic() - started)
    return result


# --- steps ---------------------------------------------------------------------------------------


def _check_server(plan: Plan, api: Api, ui: Ui, s: Step) -> bool:
    """Reachable (and the admin key accepted for reads)? Is the device id taken, and may we rotate?"""
    devices = api.devices()
    ident = plan.identity
    exists = any(d.get("id") == ident.device_id for d in devices)
    if plan.api_url and api_url_for(plan.server_url) != plan.api_url and not api.healthy(api_url_for(plan.server_url)):
        ui.warn(
            f"this machine reaches the server at {plan.api_url} but not at {plan.server_url}, the address the "
            "board will use: if the server listens on 127.0.0.1 only, restart it with --host 0.0.0.0"
        )
    if not ident.registers:
        s.done("reachable; the given token is used as it is")
        return exists
    if not exists:
        s.done(f"reachable; {ident.device_id} is new and will be registered")
        return False
    if ident.on_exists == "fail":
        raise FlashError(
            f"{ident.device_id} is already registered on the server. Pass --rotate-token (or --yes) to give it "
            "a new token (its current token stops working at once), --token TOKEN to flash it with the token it "
            "has, or another --device-id"
        )
    if ident.on_exists == "ask" and not ui.ask(
        f"{ident.device_id} is already registered. Give it a new token? Its current token stops working at once "
        "(a board using it goes offline until it is flashed again)"
    ):
        raise FlashError(
            f"{ident.device_id} was left as it is. Run again with --token TOKEN to flash it with the token it has, "
            "or with another --device-id"
        )
    s.done(f"reachable; {ident.device_id} exists and gets a new token")
    return True


def _check_mpy(info: MicroPythonInfo, compiled: Compiled, plan: Plan) -> None:
    if info.mpy_version is None:
        return  # old or unusual builds do not say; an import error after the reset will tell
    if info.mpy_version != compiled.mpy_version:
        raise FlashError(
            f"the board's MicroPython {info.version} reads .mpy v{info.mpy_version}, but mpy-cross writes "
            f".mpy v{compiled.mpy_version} (MicroPython 1.19 and later read v6): update MicroPython on the board "
            "(--firmware-image FILE.bin, from https://micropython.org/download/)"
        )


def _identity_title(plan: Plan, exists: bool) -> str:
    ident = plan.identity
    if not ident.registers:
        return "using the given token"
    return f"giving {ident.device_id} a new token" if exists else f"registering {ident.device_id}"


def _identity(plan: Plan, api: Api | None, exists: bool, s: Step) -> tuple[Plan, bool]:
    ident = plan.identity
    if not ident.registers:
        s.done("the server's registry is not touched")
        return plan, False
    assert api is not None and ident.device_id is not None
    if exists:
        token = api.rotate(ident.device_id)
        s.done("the old token no longer works; the new one goes to the board only")
    else:
        try:
            token = api.register(ident.device_id, ident.name)
            s.done("its token goes to the board only")
        except DeviceExists:
            if ident.on_exists != "rotate":
                raise FlashError(
                    f"{ident.device_id} was registered by someone else a moment ago: run again with --rotate-token "
                    "or another --device-id"
                ) from None
            token = api.rotate(ident.device_id)
            s.done("it had just been registered elsewhere; it got a new token")
    return plan.with_token(token), True


def _copy(repl: Repl, plan: Plan, files: list[BoardFile], info: MicroPythonInfo | None, s: Step) -> None:
    existing = repl.listdir()
    names = {f.name for f in files}
    for f in files:
        if f.module and existing.get(f.module, (False, 0))[0]:
            raise FlashError(
                f"the board has a folder {f.module}/ that `import {f.module}` finds before {f.name}: remove it "
                f"(mpremote connect {plan.port} rm -r :{f.module}) and run the command again"
            )
    # MicroPython looks for name.py before name.mpy in each folder: an old ring.py hides ring.mpy.
    stale = {f"{f.module}.py": f"{f.module}.py would be imported instead of {f.name}" for f in files if f.module}
    if FLASHED_FILES in existing and not existing[FLASHED_FILES][0]:
        with contextlib.suppress(FlashError, ValueError):
            for name in json.loads(repl.read(FLASHED_FILES)):
                stale.setdefault(str(name), "left by the previous flash, not part of this firmware")
    stale = {n: why for n, why in stale.items() if n in existing and not existing[n][0] and n not in names}
    freed = sum(existing[n][1] for n in (names | set(stale)) if n in existing and not existing[n][0])
    needed = sum(f.size for f in files) - freed
    if info is not None and info.free is not None and needed > info.free - SPACE_MARGIN:
        raise FlashError(
            f"not enough room on the board: the firmware needs {size_text(needed)} more, {size_text(info.free)} "
            f"are free; remove files of your own (mpremote connect {plan.port} ls)"
        )
    if "main.py" in existing:  # first: a board that resets mid-copy then boots to a bare REPL
        repl.remove("main.py")
    for name, why in sorted(stale.items()):
        repl.remove(name)
        s.note(f"removed {name} ({why})")
    for f in files:  # main.py is last in `files`
        repl.write(f.name, f.data)
        s.note(f"{f.name:<18}{size_text(f.size):>9}" + ("  (source)" if f.name.endswith(".py") else ""))
    repl.write(FLASHED_FILES, json.dumps(sorted(names)).encode())
    after = repl.listdir()
    wrong = [f.name for f in files if after.get(f.name, (False, -1))[1] != f.size]
    if wrong:
        raise FlashError(f"the board holds {', '.join(wrong)} with the wrong size after copying: run the command again")


def _reset_text(plan: Plan) -> str:
    return "hard: machine.reset()" if plan.reset == "hard" else "soft: Ctrl-D at the REPL"


def _wait_online(plan: Plan, api: Api, repl: Repl, log: ConsoleLog, was_online: bool, s: Step) -> float:
    """Until the server says the device is online, showing what the board prints meanwhile."""
    device_id = str(plan.identity.device_id)
    start = time.monotonic()
    next_poll = start
    next_note = start + NOTE_EVERY_S
    saw_offline = not was_online  # a connection from before the reset must not count
    said_online = False
    api_trouble = False
    while True:
        for line in log.feed(repl.poll()):
            s.note(f"board| {line}")
            said_online = said_online or line.startswith("link: online")
        if log.fatal:
            raise FlashError(_not_online(plan, log, time.monotonic() - start, fatal=True))
        now = time.monotonic()
        if now >= next_poll:
            next_poll = now + 1.0
            try:
                online = bool((api.device(device_id) or {}).get("online"))
            except FlashError as exc:
                if not api_trouble:
                    s.note(f"(the server does not answer this machine: {exc}; still trying)")
                api_trouble = True
            else:
                saw_offline = saw_offline or not online
                if online and (saw_offline or said_online):
                    _drain(repl, log, s, 0.3)
                    return now - start
        if now - start >= plan.wait_s:
            raise FlashError(_not_online(plan, log, now - start, fatal=False))
        if now >= next_note:
            next_note += NOTE_EVERY_S
            s.note(
                f"still waiting ({now - start:.0f} s of {plan.wait_s:.0f}): "
                + (f"the board's last word: {log.last_event}" if log.last_event else "the board has said nothing yet")
            )
        time.sleep(0.05)


def _drain(repl: Repl, log: ConsoleLog, s: Step, seconds: float) -> None:
    """Show what the board prints for a moment longer (the lines that led to the success)."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        for line in log.feed(repl.poll()):
            s.note(f"board| {line}")
        time.sleep(0.05)


def _not_online(plan: Plan, log: ConsoleLog, waited: float, *, fatal: bool) -> str:
    device_id = plan.identity.device_id
    if fatal and log.fatal:
        head = f"{device_id} will not come online: {log.fatal.advice}"
    else:
        head = f"{device_id} did not come online within {waited:.0f} s."
    lines = [head]
    findings = [f.advice for f in log.findings.values() if not f.fatal]
    if findings:
        lines += ["What the board said points at:"] + [f"  - {a}" for a in findings]
    if not fatal:
        port = urlsplit(plan.server_url).port or (443 if plan.server_url.startswith(("https", "wss")) else 80)
        lines += [
            "Check:",
            "  - the Wi-Fi name and password (--wifi-ssid, --wifi-password; an ESP32 joins 2.4 GHz networks only)",
            f"  - that {plan.server_url} is reachable from the board's network: not 127.0.0.1, and the server "
            "listening on that address (pulsewire serve --host 0.0.0.0)",
            f"  - a firewall on the server's machine letting port {port} in",
            "The board keeps trying: `pulsewire device list` shows when it is online.",
        ]
    tail = log.tail()
    if tail:
        lines += ["The board's last output:"] + [f"  | {line}" for line in tail]
    else:
        lines += [f"The board printed nothing here; `mpremote connect {plan.port} repl` shows its console."]
    return "\n".join(lines)


def _summary(plan: Plan, result: Result, ui: Ui, seconds: float) -> None:
    cfg = plan.config.effective
    ident = plan.identity.device_id or "the board"
    if result.online_after_s is not None:
        ui.line(f"Done in {seconds:.0f} s: {ident} is online and sends to {plan.server_url}.")
    else:
        ui.line(f"Done in {seconds:.0f} s: {ident} is flashed and restarting (not waited for).")
    if result.micropython:
        ui.line(f"  board:   {result.micropython.describe()}" + (f", {result.chip}" if result.chip else ""))
    ui.line(
        f"  values:  {', '.join(plan.config.values)}, every {cfg['interval_ms']} ms until the server says otherwise"
    )
    if plan.api_url:
        ui.line(f"  watch:   {plan.api_url}/  or  pulsewire device list --server {plan.api_url}")


# --- dry run -------------------------------------------------------------------------------------


def describe(plan: Plan, compiled: Compiled) -> list[str]:
    """The plan as --dry-run prints it: every step, the files and their sizes, the masked config."""
    keys = plan.steps()
    ident = plan.identity
    cfg_file = BoardFile(CONFIG_NAME, config_bytes(plan.config.raw))
    files = [cfg_file, *compiled.files]
    total = sum(f.size for f in files)
    out = ["Dry run: nothing is written, and neither the server nor the board is contacted.", ""]
    for i, key in enumerate(keys, 1):
        head = f"[{i}/{len(keys)}] "
        if key == "server":
            what = f"check the server at {plan.api_url} answers"
            if ident.registers:
                what += (
                    f", and whether {ident.device_id} is registered; if it is: "
                    + {
                        "rotate": "give it a new token (--rotate-token/--yes)",
                        "ask": "ask before giving it a new token",
                        "fail": "stop (pass --rotate-token to give it a new token)",
                    }[ident.on_exists]
                )
            out.append(head + what)
        elif key == "compile":
            out.append(
                f"{head}compile {sum(1 for f in compiled.files if f.module)} firmware modules to .mpy "
                f"v{compiled.mpy_version} with mpy-cross (done for this dry run; main.py stays source)"
            )
        elif key == "image" and plan.image is not None:
            out.append(head + _describe_image(plan))
        elif key == "connect":
            out.append(
                f"{head}connect to {plan.port}: enter MicroPython's raw REPL, check it reads .mpy "
                f"v{compiled.mpy_version} and has {size_text(total)} free"
            )
        elif key == "identity":
            if ident.registers:
                name = f" (name {ident.name!r})" if ident.name else ""
                out.append(
                    f"{head}register {ident.device_id}{name} on the server (or rotate, as above): the token "
                    "goes into pulsewire.json"
                )
            else:
                out.append(f"{head}use the given token {mask_token(ident.token)}; the server's registry is not touched")
        elif key == "copy":
            out.append(
                f"{head}copy {len(files)} files ({size_text(total)}) to the board; main.py is removed first "
                "and written last:"
            )
            for f in files:
                src = f"  from {f.source.name}" if f.source is not None and f.source.name != f.name else ""
                out.append(f"      {f.name:<18}{size_text(f.size):>9}{src}")
            out.append(
                "      and remove <module>.py next to each new .mpy (MicroPython imports .py first), and files"
                " the previous flash left that this one does not write"
            )
        elif key == "reset":
            out.append(f"{head}reset the board ({_reset_text(plan)}) so it runs main.py")
        elif key == "wait":
            out.append(
                f"{head}wait up to {plan.wait_s:.0f} s for {ident.device_id} to be online "
                f"(GET {plan.api_url}/api/devices), showing the board's output"
            )
    out += ["", f"{CONFIG_NAME} for the board (token and Wi-Fi password masked):"]
    out += ["  " + line for line in json.dumps(masked(plan.config.raw), indent=2).splitlines()]
    cfg = plan.config.effective
    out += [
        "",
        f"The board will send {', '.join(plan.config.values)} every {cfg['interval_ms']} ms, to {plan.server_url}.",
    ]
    for warning in plan.warnings:
        out.append(f"warning: {warning}")
    return out


def _describe_image(plan: Plan) -> str:
    img = plan.image
    assert img is not None
    chip = img.chip or img.image_chip
    where = f"at {image.offset_for(chip):#x} ({chip})" if chip else "at the chip's offset"
    detect = "" if img.chip else "detect the chip (esptool chip-id), check the image is built for it, "
    return (
        f"write MicroPython {img.path.name} ({size_text(img.size)}) with esptool: {detect}erase the whole "
        f"flash, write the image {where} at {img.baud} baud"
    )


def dry_run_lines(plan: Plan) -> list[str]:
    return describe(plan, compile_firmware(plan.firmware_dir))
