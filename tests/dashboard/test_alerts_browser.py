"""The dashboard's alerts in a real browser against a real server that evaluates rules: the banner,
the badge on a device's card, a device's alert history, acknowledging and silencing, a channel's
test. (The rule and channel editor, which needs only stored rules, is in test_browser.py.)"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import orjson
import pytest

from tests.dashboard.test_browser import card, live, open_alert_admin
from tests.support.browser import Device, OpenPage, screenshot
from tests.support.clients import now_ms
from tests.support.server import Server, start_server

pytest.importorskip("playwright")
from playwright.sync_api import Page, expect  # noqa: E402

HOUR = 3_600_000
MakeDevice = Callable[..., tuple[str, Device]]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Server:
    return start_server(tmp_path_factory.mktemp("dashboard-alerts"), "sqlite", request)


def add_rule(server: Server, device_id: str, name: str, **rule: Any) -> str:
    body = {
        "name": name, "kind": "threshold", "device": device_id, "metric": "temperature", "op": ">", "value": 30,
        "for_s": 0, "repeat_s": 0, "severity": "critical", "channels": [], **rule,
    }  # fmt: skip
    resp = httpx.post(server.base + "/api/rules", json=body, headers=server.admin(), timeout=10)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def firing(server: Server, device_id: str | None = None) -> list[dict[str, Any]]:
    alerts = server.get("/api/alerts", params={"state": "firing"}).json()["alerts"]
    return [a for a in alerts if device_id is None or a["device"] == device_id]


def row(page: Page, rule_name: str) -> Any:
    return page.locator("#alert-banner .alert", has_text=rule_name)


def badge(page: Page, device_id: str) -> Any:
    return card(page, device_id).locator(".alert-badge")


def test_an_alert_shows_on_the_banner_and_its_card_within_a_second_and_leaves_when_resolved(
    server: Server, open_page: OpenPage, device: MakeDevice
) -> None:
    device_id, dev = device()
    dev.reading(temperature=20.0)
    add_rule(server, device_id, f"warm {device_id}", value=25, severity="warning")
    add_rule(server, device_id, f"hot {device_id}", value=30, severity="critical")
    page, _ = open_page(server.base + "/")
    live(page)
    expect(card(page, device_id)).to_be_visible()
    expect(badge(page, device_id)).to_be_hidden()

    started = time.monotonic()
    dev.reading(temperature=27.5)
    warm = row(page, f"warm {device_id}")
    expect(warm).to_be_visible(timeout=1000)
    assert time.monotonic() - started < 1.0
    expect(warm.locator(".sev")).to_have_text("warning")
    expect(warm.locator(".alert-device")).to_have_text(device_id)
    expect(warm.locator(".alert-metric")).to_have_text("temperature")
    expect(warm.locator(".alert-value")).to_have_text("27.5 °C")
    expect(warm.locator(".alert-since")).to_have_text(re.compile(r"^started (just now|\d+ s ago)$"))
    expect(badge(page, device_id)).to_have_text("1")
    expect(badge(page, device_id)).to_have_attribute("data-severity", "warning")

    dev.reading(temperature=35.0)
    hot = row(page, f"hot {device_id}")
    expect(hot).to_be_visible(timeout=1000)
    # Newest first; the badge counts both, in the worst one's colour.
    expect(page.locator("#alert-banner .alert").first).to_contain_text(f"hot {device_id}")
    expect(badge(page, device_id)).to_have_text("2")
    expect(badge(page, device_id)).to_have_attribute("data-severity", "critical")
    screenshot(page, "alert-banner")

    dev.reading(temperature=20.0)
    expect(hot).to_have_count(0, timeout=1000)
    expect(warm).to_have_count(0)
    expect(badge(page, device_id)).to_be_hidden()


def test_a_page_opened_while_alerts_fire_shows_them_newest_first_and_folds_many(
    server: Server, open_page: OpenPage, device: MakeDevice
) -> None:
    device_id, dev = device()
    for i in range(5):
        add_rule(server, device_id, f"level {i} {device_id}", value=i, severity="info")
    dev.reading(temperature=10.0)
    deadline = time.monotonic() + 5
    while len(firing(server, device_id)) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    everything = firing(server)
    assert len(everything) >= 5
    page, _ = open_page(server.base + "/")
    live(page)
    banner = page.locator("#alert-banner")
    expect(banner.locator("h2")).to_have_text(f"{len(everything)} alerts firing")
    expect(banner.locator(".alert")).to_have_count(3)
    more = banner.locator(".alert-more")
    expect(more).to_have_text(f"Show {len(everything) - 3} more")
    more.click()
    expect(banner.locator(".alert")).to_have_count(len(everything))
    newest_first = sorted(everything, key=lambda a: (-a["since"], -a["id"]))
    shown = [int(x) for x in banner.locator(".alert").evaluate_all("rows => rows.map((r) => r.dataset.alert)")]
    assert shown == [a["id"] for a in newest_first]
    expect(more).to_have_text("Show fewer")
    expect(badge(page, device_id)).to_have_text("5")
    expect(badge(page, device_id)).to_have_attribute("data-severity", "info")
    dev.reading(temperature=-10.0)
    expect(badge(page, device_id)).to_be_hidden(timeout=2000)


def test_the_device_view_shows_the_device_s_alert_history(
    server: Server, open_page: OpenPage, device: MakeDevice
) -> None:
    device_id, dev = device()
    add_rule(server, device_id, f"history {device_id}", value=30)
    for value in (31.0, 20.0, 32.5):
        dev.reading(temperature=value)
        time.sleep(0.3)
    page, _ = open_page(f"{server.base}/#/device/{device_id}?range=1h")
    history = page.locator(".alert-history")
    rows = history.locator("tr.alert")
    expect(rows).to_have_count(2)
    newest, older = rows.nth(0), rows.nth(1)
    expect(newest.locator(".alert-state")).to_have_text("firing")
    expect(newest.locator(".alert-value")).to_have_text("32.5 °C")
    expect(newest.locator(".alert-resolved")).to_have_text("")
    expect(older.locator(".alert-state")).to_have_text("resolved")
    expect(older.locator(".alert-value")).to_have_text("31 °C")
    expect(older.locator(".alert-resolved")).not_to_have_text("")
    expect(history.locator(".history-info")).to_have_text(re.compile(r"^Since "))
    # Live: the firing one resolves while the view is open.
    dev.reading(temperature=21.0)
    expect(newest.locator(".alert-state")).to_have_text("resolved", timeout=1000)
    screenshot(page, "alert-history")


def test_acknowledge_and_silence_need_the_admin_key_and_show_their_state(
    server: Server, open_page: OpenPage, device: MakeDevice
) -> None:
    device_id, dev = device()
    add_rule(server, device_id, f"ack {device_id}", value=30)
    dev.reading(temperature=40.0)
    page, log = open_page(f"{server.base}/#/device/{device_id}?range=1h")
    live(page)
    banner_row = row(page, f"ack {device_id}")
    expect(banner_row).to_be_visible()
    expect(banner_row.locator("button", has_text="Acknowledge")).to_be_hidden()  # no key, no buttons
    page.locator("#admin-toggle").click()
    page.locator("#admin-key").fill(server.admin_key)
    page.locator("#admin-key").press("Enter")

    banner_row.locator("button", has_text="Acknowledge").click()
    expect(banner_row.locator(".alert-ack")).to_have_text("acknowledged")
    (alert,) = firing(server, device_id)
    assert alert["acked"] is True and alert["acked_at"] is not None
    history_row = page.locator(f'.alert-history tr.alert[data-alert="{alert["id"]}"]')
    expect(history_row.locator(".alert-ack")).to_have_text("acknowledged")

    before = now_ms()
    history_row.locator("select").select_option("8")
    history_row.locator("button", has_text="Silence").click()
    expect(banner_row.locator(".alert-ack")).to_have_text(re.compile(r"^silenced until "))
    expect(history_row.locator(".alert-ack")).to_have_text(re.compile(r"^silenced until "))
    (alert,) = firing(server, device_id)
    assert before + 8 * HOUR <= alert["silenced_until"] <= now_ms() + 8 * HOUR
    assert log.unexpected() == []
    dev.reading(temperature=20.0)


class Receiver:
    """A real HTTP receiver on 127.0.0.1 answering every POST with `status`; keeps the bodies."""

    def __init__(self) -> None:
        self.status = 200
        self.bodies: list[dict[str, Any]] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length", 0))
                owner.bodies.append(orjson.loads(self.rfile.read(length)))
                self.send_response(owner.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.http.shutdown()
    r.http.server_close()


def test_a_channel_s_test_shows_what_the_receiver_answered(
    server: Server, open_page: OpenPage, receiver: Receiver
) -> None:
    body = {"name": "tested hook", "type": "webhook", "url": receiver.url, "secret": "a-secret-of-24-characters"}
    resp = httpx.post(server.base + "/api/channels", json=body, headers=server.admin(), timeout=10)
    assert resp.status_code == 201, resp.text
    page, _ = open_alert_admin(server, open_page)
    hook = page.locator(".channel-list .channel", has_text="tested hook")
    hook.locator("button", has_text="Test").click()
    expect(hook.locator(".channel-outcome")).to_have_text(re.compile(r"^Delivered \(HTTP 200\)"))
    expect(hook.locator(".channel-outcome")).to_have_class(re.compile(r"\bok\b"))
    assert [b["event"] for b in receiver.bodies] == ["test"]
    receiver.status = 500
    hook.locator("button", has_text="Test").click()
    expect(hook.locator(".channel-outcome")).to_have_text(re.compile(r"^Not delivered \(HTTP 500\)"))
    expect(hook.locator(".channel-outcome")).to_have_class(re.compile(r"\berror\b"))
    screenshot(page, "alert-channel-test")


MARKUP = '<img src=x onerror="window.pwned=1">'


def test_markup_in_an_alert_s_rule_name_is_shown_as_text(
    server: Server, open_page: OpenPage, device: MakeDevice, browser: Any
) -> None:
    """The server refuses markup in rule names; the page must not rely on that. The real server's
    answers and live messages, their rule names turned into markup on the way."""
    device_id, dev = device()
    add_rule(server, device_id, f"plain {device_id}", value=30)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()

        def alerts_with_markup(route: Any) -> None:
            answer = route.fetch()
            alerts = [{**a, "rule_name": MARKUP} for a in answer.json()["alerts"]]
            route.fulfill(response=answer, json={"alerts": alerts})

        def live_with_markup(ws: Any) -> None:
            upstream = ws.connect_to_server()

            def relay(message: str | bytes) -> None:
                msg = orjson.loads(message)
                if msg.get("type") == "alert":
                    msg["alert"]["rule_name"] = MARKUP
                ws.send(orjson.dumps(msg).decode())

            upstream.on_message(relay)

        page.route(re.compile(r"/api/alerts\?"), alerts_with_markup)
        page.route_web_socket(re.compile(r"/ws/live"), live_with_markup)
        page.goto(server.base + "/")
        live(page)
        dev.reading(temperature=40.0)
        shown = page.locator(f'#alert-banner .alert:has(.alert-device:text-is("{device_id}")) .alert-rule')
        expect(shown).to_have_text(MARKUP)
        assert page.locator("#alert-banner img").count() == 0
        assert page.evaluate("window.pwned") is None
        page.goto(f"{server.base}/#/device/{device_id}?range=1h")
        expect(page.locator(".alert-history tr.alert .alert-rule").first).to_have_text(MARKUP)
        assert page.locator(".alert-history img").count() == 0
        assert page.evaluate("window.pwned") is None
    finally:
        context.close()
        dev.reading(temperature=20.0)
