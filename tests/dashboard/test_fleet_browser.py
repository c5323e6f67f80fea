"""The dashboard's firmware page and rollout progress in a real browser against a real server: a
release uploaded, a rollout started from the page, boards played by plain WebSocket clients taking
their steps (shown live, on the page and on the cards), the canary's rollback halting it, resume,
pause and abort, and the server's 400 and 409 shown in its own words."""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from websockets.sync.client import ClientConnection, connect

from pulsewire.releases.bundle import make, pack
from tests.dashboard.test_browser import card, live
from tests.support.browser import OpenPage, screenshot
from tests.support.clients import SUBPROTOCOL
from tests.support.server import Server, start_server

pytest.importorskip("playwright")
from playwright.sync_api import Page, expect  # noqa: E402

OLD = "0.3.1"
# Markup in a board's own words must reach the page as text.
REASON = "ImportError: no module named '<b>sensors</b>'"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Server:
    return start_server(tmp_path_factory.mktemp("dashboard-fleet"), "sqlite", request)


def upload_release(server: Server) -> str:
    v = "1.0." + secrets.token_hex(3)
    files = [("session.mpy", b"M\x06" + secrets.token_bytes(2000)), ("main.py", f'FW_VERSION = "{v}"\n'.encode())]
    resp = httpx.post(
        server.base + "/api/releases", content=pack(make(v, files, 6)), headers=server.admin(), timeout=30
    )
    assert resp.status_code == 201, resp.text
    return v


class Board:
    """A board on the device channel, played by a plain WebSocket client: it says hello (with `boot`
    when given), takes commands and answers them."""

    def __init__(self, server: Server, token: str) -> None:
        self.server, self.token = server, token
        self.ws: ClientConnection | None = None
        self.stack = contextlib.ExitStack()

    def boot(self, fw: str, boot: dict[str, Any] | None = None) -> None:
        self.close()
        self.ws = self.stack.enter_context(
            connect(
                self.server.ws_base + "/ws/device",
                subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                additional_headers={"Authorization": f"Bearer {self.token}"},
                open_timeout=10,
            )
        )
        hello: dict[str, Any] = {"type": "hello", "fw": fw, "uptime": 1}
        if boot is not None:
            hello["boot"] = boot
        self.ws.send(orjson.dumps(hello).decode())
        assert self.recv()["type"] == "welcome"

    def recv(self) -> dict[str, Any]:
        assert self.ws is not None
        return orjson.loads(self.ws.recv(timeout=10))  # type: ignore[no-any-return]

    def take_update(self, version: str) -> str:
        """The `update` command's id, once it comes."""
        cmd = self.recv()
        assert cmd["type"] == "command" and cmd["name"] == "update" and cmd["args"]["version"] == version, cmd
        return str(cmd["id"])

    def result(self, command_id: str, ok: bool = True) -> None:
        assert self.ws is not None
        self.ws.send(orjson.dumps({"type": "result", "id": command_id, "ok": ok}).decode())

    def close(self) -> None:
        self.stack.close()
        self.ws = None


@pytest.fixture
def boards(server: Server) -> Iterator[list[tuple[str, Board]]]:
    made = sorted(server.register() for _ in range(2))  # by id: the first is the canary
    with contextlib.ExitStack() as stack:
        out = []
        for device_id, token in made:
            b = Board(server, token)
            stack.callback(b.close)
            b.boot(OLD)
            out.append((device_id, b))
        yield out


def open_firmware(server: Server, open_page: OpenPage) -> Page:
    page, log = open_page(server.base + "/")
    # Chromium logs every refused request; the refusals the test asks for are shown on the page.
    log.allow(r"status of (400|409) .*/api/rollouts\)$")
    live(page)
    page.locator("#admin-toggle").click()
    page.locator("#admin-key").fill(server.admin_key)
    page.locator("#admin-key").press("Enter")
    page.locator("#firmware-link").click()
    expect(page.locator(".start-rollout")).to_be_visible()
    return page


def device_step(page: Page, device_id: str) -> Any:
    return page.locator(f'.rollout-devices tr[data-device="{device_id}"] .rollout-step')


def start_from_form(page: Page, version: str, devices: str, canary: str) -> None:
    form = page.locator(".rollout-form")
    form.locator("select[name=version]").select_option(version)
    form.locator("input[name=devices]").fill(devices)
    form.locator("input[name=canary]").fill(canary)
    form.get_by_role("button", name="Start rollout").click()


def test_a_rollout_started_from_the_page_shows_every_step_live_and_is_halted_resumed_paused_and_aborted(
    server: Server, open_page: OpenPage, boards: list[tuple[str, Board]]
) -> None:
    (canary_id, canary), (other_id, other) = boards
    v = upload_release(server)
    page = open_firmware(server, open_page)
    expect(page.locator(f'.release-table tr[data-version="{v}"]')).to_be_visible()

    # What the server refuses is shown in its words: an unknown device (400).
    start_from_form(page, v, f"{canary_id}, nobody-{secrets.token_hex(3)}", "50")
    expect(page.locator(".rollout-form .form-error")).to_have_text(re.compile(r"^devices: unknown device\(s\) nobody-"))

    start_from_form(page, v, f"{canary_id}, {other_id}", "50")
    rollout = page.locator(".rollout").first
    expect(rollout.locator(".rollout-state")).to_have_text("running")
    expect(rollout.locator("h3")).to_have_text(v)
    command = canary.take_update(v)
    expect(device_step(page, canary_id)).to_have_text("downloading")
    expect(device_step(page, other_id)).to_have_text("queued")
    expect(page.locator(f'.rollout-devices tr[data-device="{canary_id}"] .rollout-device')).to_contain_text("(canary)")

    # A device in an active rollout cannot join another (409).
    start_from_form(page, v, canary_id, "0")
    expect(page.locator(".rollout-form .form-error")).to_have_text(
        re.compile(rf"^devices already in an active rollout: {re.escape(canary_id)} \(ro_")
    )

    canary.result(command)
    expect(device_step(page, canary_id)).to_have_text("installed")
    # The canary comes back on its old version by itself: the rollout halts before the other is touched.
    canary.boot(OLD, {"state": "confirmed", "previous": v, "rolled_back_from": v, "reason": REASON})
    expect(device_step(page, canary_id)).to_have_text(f"rolled back: {REASON}")
    expect(rollout.locator(".rollout-state")).to_have_text("halted")
    expect(rollout.locator(".rollout-reason")).to_have_text(f"canary {canary_id} rolled_back: {REASON}")
    expect(rollout.locator(".rollout-counts")).to_have_text("1 rolled back · 1 queued")
    assert page.locator(".rollout b").count() == 0
    screenshot(page, "firmware-halted")

    rollout.get_by_role("button", name="Resume").click()
    expect(rollout.locator(".rollout-state")).to_have_text("running")
    other.take_update(v)
    expect(device_step(page, other_id)).to_have_text("downloading")
    rollout.get_by_role("button", name="Pause").click()
    expect(rollout.locator(".rollout-state")).to_have_text("paused")
    rollout.get_by_role("button", name="Abort").click()
    page.locator("#confirm-dialog button[value=ok]").click()
    expect(rollout.locator(".rollout-state")).to_have_text("aborted")
    expect(rollout.get_by_role("button")).to_have_count(0)
    rid = rollout.get_attribute("data-rollout")
    assert server.get(f"/api/rollouts/{rid}").json()["state"] == "aborted"


def test_cards_and_the_device_view_show_the_firmware_and_the_step_live(
    server: Server, open_page: OpenPage, boards: list[tuple[str, Board]]
) -> None:
    (device_id, board), _ = boards
    v = upload_release(server)
    page, _ = open_page(server.base + "/")
    live(page)
    fw = card(page, device_id).locator(".fw-version")
    step = card(page, device_id).locator(".rollout-step")
    expect(fw).to_have_text(f"firmware {OLD}")
    expect(step).to_be_hidden()

    resp = httpx.post(
        server.base + "/api/rollouts", json={"version": v, "devices": [device_id]}, headers=server.admin(), timeout=30
    )
    assert resp.status_code == 201, resp.text
    command = board.take_update(v)
    expect(step).to_have_text(f"→ {v}: downloading")
    board.result(command)
    expect(step).to_have_text(f"→ {v}: installed")
    board.boot(v, {"state": "trial", "previous": OLD})
    expect(step).to_have_text(f"→ {v}: trial")
    expect(step).to_have_attribute("data-step", "trial")
    board.boot(v, {"state": "confirmed", "previous": OLD})
    expect(step).to_have_text(f"→ {v}: confirmed")
    expect(fw).to_have_text(f"firmware {v}")  # read again from GET /api/devices once the version moved
    screenshot(page, "firmware-card")

    card(page, device_id).click()
    expect(page.locator(".facts")).to_contain_text(f"firmware {v}")
    expect(page.locator("p.rollout-step")).to_have_text(
        re.compile(rf"^Update to {re.escape(v)} \(rollout ro_\w+\): confirmed$")
    )
