"""The wait step: until the server reports the device online, showing what the board prints on
its console meanwhile; when it does not come online, what the board's lines point at."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from pulsewire_devkit.flash.api import Api
from pulsewire_devkit.flash.console import ConsoleLog
from pulsewire_devkit.flash.errors import FlashError
from pulsewire_devkit.flash.plan import Plan
from pulsewire_devkit.flash.progress import Step
from pulsewire_devkit.flash.repl import Repl

NOTE_EVERY_S = 15


def wait_online(plan: Plan, api: Api, repl: Repl, console: ConsoleLog, was_online: bool, s: Step) -> float:
    """Until the server says the device is online, showing what the board prints meanwhile."""
    device_id = str(plan.identity.device_id)
    start = time.monotonic()
    next_poll = start
    next_note = start + NOTE_EVERY_S
    saw_offline = not was_online  # a connection from before the reset must not count
    said_online = False
    api_trouble = False
    while True:
        for line in console.feed(repl.poll()):
            s.note(f"board| {line}")
            said_online = said_online or line.startswith("link: online")
        if console.fatal:
            raise FlashError(_not_online(plan, console, time.monotonic() - start, fatal=True))
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
                    _drain(repl, console, s, 0.3)
                    return now - start
        if now - start >= plan.wait_s:
            raise FlashError(_not_online(plan, console, now - start, fatal=False))
        if now >= next_note:
            next_note += NOTE_EVERY_S
            s.note(
                f"still waiting ({now - start:.0f} s of {plan.wait_s:.0f}): "
                + (
                    f"the board's last word: {console.last_event}"
                    if console.last_event
                    else "the board has said nothing yet"
                )
            )
        time.sleep(0.05)


def _drain(repl: Repl, console: ConsoleLog, s: Step, seconds: float) -> None:
    """Show what the board prints for a moment longer (the lines that led to the success)."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        for line in console.feed(repl.poll()):
            s.note(f"board| {line}")
        time.sleep(0.05)


def _not_online(plan: Plan, console: ConsoleLog, waited: float, *, fatal: bool) -> str:
    device_id = plan.identity.device_id
    if fatal and console.fatal:
        head = f"{device_id} will not come online: {console.fatal.advice}"
    else:
        head = f"{device_id} did not come online within {waited:.0f} s."
    lines = [head]
    findings = [f.advice for f in console.findings.values() if not f.fatal]
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
    tail = console.tail()
    if tail:
        lines += ["The board's last output:"] + [f"  | {line}" for line in tail]
    else:
        lines += [f"The board printed nothing here; `mpremote connect {plan.port} repl` shows its console."]
    return "\n".join(lines)
