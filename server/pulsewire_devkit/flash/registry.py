"""The server's registry as the flash needs it: the server step (reachable, is the device id
taken, may it get a new token?) and the identity step (register the device, rotate its token, or
use the token given). The token the server issues goes into the board's configuration only."""

from __future__ import annotations

from pulsewire_devkit.flash.api import Api, DeviceExists
from pulsewire_devkit.flash.errors import FlashError
from pulsewire_devkit.flash.plan import Plan, api_url_for
from pulsewire_devkit.flash.progress import Step, Ui


def check_server(plan: Plan, api: Api, ui: Ui, s: Step) -> bool:
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


def identity_title(plan: Plan, exists: bool) -> str:
    ident = plan.identity
    if not ident.registers:
        return "using the given token"
    return f"giving {ident.device_id} a new token" if exists else f"registering {ident.device_id}"


def give_identity(plan: Plan, api: Api | None, exists: bool, s: Step) -> tuple[Plan, bool]:
    """The plan with the device's token, and whether the server just issued it (then only this run
    knows it until the board has it)."""
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
