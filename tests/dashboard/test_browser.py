"""The dashboard in a real browser (Debian's Chromium under Playwright) against a real server."""

from __future__ import annotations

import csv
import io
import itertools
import math
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from websockets.exceptions import InvalidStatus

from tests.support.browser import (
    ConsoleLog,
    Device,
    OpenPage,
    proxy_to,
    screenshot,
)
from tests.support.cli import cli
from tests.support.clients import now_ms
from tests.support.server import Server, start_server
from tests.support.waiting import wait_until

pytest.importorskip("playwright")
from playwright.sync_api import Page, expect  # noqa: E402

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
# Light theme's --accent in dashboard/app.css: the colour a chart's line is drawn in.
ACCENT = (37, 99, 235)


class _AnyId(str):
    """Equal to any non-empty string: command ids are the server's to choose."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)

    __hash__ = str.__hash__


ANY_ID = _AnyId()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Server:
    # Raw readings kept for ever: the long-range test sends a year of history through the device
    # channel, which a default server refuses past its 30 days of raw retention.
    return start_server(tmp_path_factory.mktemp("dashboard"), "sqlite", request, retention_raw_days="0")


def live(page: Page) -> None:
    expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=10_000)


def card(page: Page, device_id: str) -> Any:
    return page.locator(f'.card[data-device="{device_id}"]')


def chart(page: Page, metric: str) -> Any:
    return page.locator(f'.chart[data-metric="{metric}"]')


def accent_pixels(page: Page, metric: str) -> int:
    """Pixels of a chart's canvas in the line's colour: zero when nothing was drawn."""
    return int(
        page.evaluate(
            """([metric, [r, g, b]]) => {
                const c = document.querySelector(`.chart[data-metric="${metric}"] canvas`);
                const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
                let n = 0;
                for (let i = 0; i < d.length; i += 4) {
                    if (d[i + 3] > 200 && Math.abs(d[i] - r) < 40 && Math.abs(d[i + 1] - g) < 40 && Math.abs(d[i + 2] - b) < 40) n++;
                }
                return n;
            }""",
            [metric, list(ACCENT)],
        )
    )


def test_overview_and_device_view_load_without_console_errors(
    server: Server, open_page: OpenPage, device: Callable[..., tuple[str, Device]]
) -> None:
    device_id, dev = device("Greenhouse")
    dev.reading(temperature=21.5, humidity=40.25, heap_free=98_304, rssi=-61)
    page, log = open_page(server.base + "/")
    live(page)
    c = card(page, device_id)
    expect(c.locator(".name")).to_have_text("Greenhouse")
    expect(c.locator('[data-metric="temperature"] .value')).to_have_text("21.5 °C")
    expect(c.locator('[data-metric="humidity"] .value')).to_have_text("40.25 %")
    expect(c.locator('[data-metric="heap_free"] .value')).to_have_text("96 KB")
    expect(c.locator('[data-metric="rssi"] .value')).to_have_text("-61 dBm")
    expect(c.locator(".status")).to_have_text("online")
    screenshot(page, "overview")
    c.click()
    expect(page).to_have_url(re.compile(f"#/device/{device_id}$"))
    expect(page.locator("h1.name")).to_have_text("Greenhouse")
    expect(chart(page, "temperature")).to_have_attribute("data-points", "1")
    assert not log.errors


def test_a_reading_appears_within_one_second(
    server: Server, open_page: OpenPage, device: Callable[..., tuple[str, Device]]
) -> None:
    device_id, dev = device()
    dev.reading(temperature=20.0)
    page, _ = open_page(server.base + "/")
    live(page)
    value = card(page, device_id).locator('[data-metric="temperature"] .value')
    expect(value).to_have_text("20 °C")
    started = time.monotonic()
    dev.reading(temperature=23.75)
    expect(value).to_have_text("23.75 °C", timeout=1000)
    assert time.monotonic() - started < 1.0


def test_a_device_going_offline_is_shown_offline(
    server: Server, open_page: OpenPage, device: Callable[..., tuple[str, Device]]
) -> None:
    device_id, dev = device()
    dev.reading(temperature=20.0)
    page, _ = open_page(server.base + "/")
    live(page)
    c = card(page, device_id)
    expect(c.locator(".status")).to_have_text("online")
    dev.close()
    expect(c.locator(".status")).to_have_text("offline", timeout=5000)
    expect(c).to_have_class(re.compile(r"\boffline\b"))


def counter_readings(first: int, last: int, base: int) -> list[dict[str, Any]]:
    """Ten seconds apart: each its own point in a sparkline (which keeps one per 5 s)."""
    return [{"ts": base + i * 10_000, "values": {"counter": i}} for i in range(first, last + 1)]


def test_a_cut_live_socket_reconnects_and_fills_the_gap(
    server: Server, open_page: OpenPage, device: Callable[..., tuple[str, Device]]
) -> None:
    device_id, dev = device()
    base = now_ms() - 120_000
    dev.send(counter_readings(1, 3, base))
    with proxy_to(server) as proxy:
        overview, log = open_page(proxy.base + "/")
        view, view_log = open_page(f"{proxy.base}/#/device/{device_id}?range=5m")
        for page in (overview, view):
            live(page)
        spark = card(overview, device_id).locator('[data-metric="counter"] canvas')
        expect(spark).to_have_attribute("aria-label", re.compile(r"^counter, last 10 minutes: 3 points, 1 to 3$"))
        expect(chart(view, "counter")).to_have_attribute("data-points", "3")

        # The network drops: the pages lose their sockets and cannot reconnect for a while.
        for console in (log, view_log):
            console.allow(r"WebSocket connection to .* failed|Failed to load resource|ERR_")
        proxy.hold()
        proxy.cut()
        for page in (overview, view):
            expect(page.locator("#conn")).to_have_attribute("data-state", "down")
            expect(page.locator("#conn-text")).to_have_text(re.compile("Reconnecting"))
        dev.send(counter_readings(4, 8, base))  # stored while nobody is watching
        time.sleep(0.5)
        expect(card(overview, device_id).locator('[data-metric="counter"] .value')).to_have_text("3")
        proxy.release()

        for page in (overview, view):
            live(page)
        expect(spark).to_have_attribute("aria-label", re.compile(r"^counter, last 10 minutes: 8 points, 1 to 8$"))
        expect(card(overview, device_id).locator('[data-metric="counter"] .value')).to_have_text("8")
        expect(chart(view, "counter")).to_have_attribute("data-points", "8")
        # And live again: the next reading arrives over the new socket.
        dev.send(counter_readings(9, 9, base))
        expect(chart(view, "counter")).to_have_attribute("data-points", "9")
        assert proxy.accepted >= 4


def test_history_for_a_range_loads_and_draws(
    server: Server, open_page: OpenPage, device: Callable[..., tuple[str, Device]]
) -> None:
    device_id, dev = device()
    now = now_ms()
    # Two days at one reading a minute, and a dense last 50 minutes (6,000 readings, 2 per second).
    days = [
        {"ts": now - 2 * DAY + i * MINUTE, "values": {"temperature": round(20 + 5 * math.sin(i / 60), 3)}}
        for i in range(2 * 24 * 60 - 60)
    ]
    dense = [{"ts": now - 50 * MINUTE + i * 500, "values": {"temperature": 21 + (i % 7) / 10}} for i in range(6000)]
    dev.send(days + dense)

    page, _ = open_page(f"{server.base}/#/device/{device_id}?range=7d")
    info = page.locator(".range-info")
    expect(info).to_have_text(re.compile(r"points, 15 min averages computed by the server · live"))
    points = int(chart(page, "temperature").get_attribute("data-points") or 0)
    ranged = server.telemetry(device_id, start=now - 7 * DAY, end=now_ms(), interval=15 * MINUTE, limit=2000)
    assert points == len(ranged["temperature"]) >= 2 * 24 * 4 - 4
    assert accent_pixels(page, "temperature") > 200
    expect(page.locator('.ranges [data-range="7d"]')).to_have_attribute("aria-pressed", "true")
    screenshot(page, "device-7d")

    # One hour holds more raw readings than a chart draws: it is drawn from 5-second buckets.
    page.locator('.ranges [data-range="1h"]').click()
    expect(info).to_have_text(re.compile(r"points, 5 s averages"))
    expect(page).to_have_url(re.compile(r"\?range=1h$"))
    assert 590 <= int(chart(page, "temperature").get_attribute("data-points") or 0) <= 722

    # Five minutes: raw readings, as stored.
    page.locator('.ranges [data-range="5m"]').click()
    expect(info).to_have_text(re.compile(r"^\d[\d,]* readings · live"))
    raw = server.telemetry(device_id, start=now_ms() - 5 * MINUTE, limit=5000)
    assert abs(int(chart(page, "temperature").get_attribute("data-points") or 0) - len(raw["temperature"])) <= 2

    # A custom range: a mistake is explained; a valid one is drawn and kept in the address.
    page.locator('.ranges [data-range="custom"]').click()
    page.locator('.custom input[name="start"]').fill("2030-01-02T00:00")
    page.locator('.custom input[name="end"]').fill("2030-01-01T00:00")
    page.locator(".custom button[type=submit]").click()
    expect(page.locator(".custom .error")).to_have_text("The start must be before the end.")
    start, end = time.localtime((now - 2 * DAY) / 1000), time.localtime((now - DAY) / 1000)
    page.locator('.custom input[name="start"]').fill(time.strftime("%Y-%m-%dT%H:%M", start))
    page.locator('.custom input[name="end"]').fill(time.strftime("%Y-%m-%dT%H:%M", end))
    page.locator(".custom button[type=submit]").click()
    expect(info).to_have_text(re.compile(r"points, 2 min averages computed by the server · fixed range"))
    expect(page).to_have_url(re.compile(r"\?start=\d+&end=\d+$"))
    assert 700 <= int(chart(page, "temperature").get_attribute("data-points") or 0) <= 722
    assert accent_pixels(page, "temperature") > 200


def telemetry_query(url: str) -> dict[str, int] | None:
    """A telemetry request's query as numbers (agg and order left out); None for any other request."""
    parts = urlsplit(url)
    if not parts.path.endswith("/telemetry"):
        return None
    return {k: int(v) for k, v in parse_qsl(parts.query) if k in ("start", "end", "limit", "interval")}


def loads_span(span: int) -> Callable[[Any], bool]:
    """Whether a request is the telemetry query loading a range of this span (not a refresh of its newest buckets)."""

    def check(request: Any) -> bool:
        q = telemetry_query(request.url)
        if q is None:
            return False
        # A bucketed query starts on a bucket boundary, up to one bucket before the range does.
        return span <= q.get("end", 0) - q.get("start", 0) < span + q.get("interval", 1)

    return check


def as_if_from_rollups(route: Any) -> None:
    """The real server's answer with the headers a server with rollups adds: hour rollups served it,
    and raw readings for its edges had expired."""
    answer = route.fetch()
    headers = {k: v for k, v in answer.headers.items() if k not in ("content-length", "content-encoding")}
    headers |= {"X-Pulsewire-Resolution": "1h,raw", "X-Pulsewire-Exact": "false"}
    route.fulfill(response=answer, headers=headers)


def test_30_day_and_1_year_ranges_ask_for_whole_hours_and_draw(
    server: Server, open_page: OpenPage, device: Callable[..., tuple[str, Device]]
) -> None:
    device_id, dev = device()
    now = now_ms()
    # Over a year at one reading per 6 h, then one an hour for the last 31 days.
    year = [
        {"ts": now - 370 * DAY + i * 6 * HOUR, "values": {"temperature": round(10 + 8 * math.sin(i / 60), 3)}}
        for i in range((370 - 31) * 4)
    ]
    month = [
        {"ts": now - 31 * DAY + i * HOUR, "values": {"temperature": round(20 + 3 * math.sin(i / 12), 3)}}
        for i in range(31 * 24)
    ]
    dev.send(year + month)
    # Packed into blocks and rollups now, as the server does a few minutes after each hour.
    compacted = cli("db", "compact", "--data-dir", str(server.data_dir), "--retention-raw-days", "0")
    assert compacted.returncode == 0, compacted.stderr
    page, _ = open_page(f"{server.base}/#/device/{device_id}?range=7d")
    info = page.locator(".range-info")
    expect(info).to_have_text(re.compile(r"15 min averages"))

    # Each long range asks for whole hours per bucket, about a thousand or fewer across its span,
    # and draws exactly what the API answers to that query.
    for range_id, span, width, least in (("30d", 30 * DAY, HOUR, 715), ("1y", 365 * DAY, 12 * HOUR, 725)):
        with page.expect_request(loads_span(span)) as sent:
            page.locator(f'.ranges [data-range="{range_id}"]').click()
        query = telemetry_query(sent.value.url)
        assert query is not None and query["interval"] == width and query["interval"] % HOUR == 0, query
        # Whole-hour buckets come from the 1-hour rollups, and the line says so.
        expect(info).to_have_text(
            re.compile(
                rf"^[0-9,]+ points, {width // HOUR} h averages computed by the server from 1-hour rollups · live$"
            )
        )
        expect(page).to_have_url(re.compile(rf"\?range={range_id}$"))
        expect(page.locator(f'.ranges [data-range="{range_id}"]')).to_have_attribute("aria-pressed", "true")
        points = int(chart(page, "temperature").get_attribute("data-points") or 0)
        answer = server.telemetry(device_id, **query, agg="avg,min,max", order="asc")["temperature"]
        assert points == len(answer) and least <= points <= query["limit"], (range_id, points, len(answer))
        assert accent_pixels(page, "temperature") > 200, range_id
        screenshot(page, f"device-{range_id}")

    # Where raw readings have expired, the server says its edge buckets are approximate (shown here
    # with the headers such an answer carries).
    page.route(re.compile(r"/api/devices/[^/?]+/telemetry\?"), as_if_from_rollups)
    page.locator('.ranges [data-range="30d"]').click()
    expect(info).to_have_text(
        re.compile(
            r"^[0-9,]+ points, 1 h averages computed by the server from 1-hour rollups"
            r" · edge buckets approximate: raw readings have expired · live$"
        )
    )
    assert accent_pixels(page, "temperature") > 200
    screenshot(page, "device-30d-rollups")


def csv_value(text: str) -> float | bool:
    if text in ("true", "false"):
        return text == "true"
    return float(text)


def csv_rows(path: Path, header: list[str]) -> list[tuple[Any, ...]]:
    rows = list(csv.reader(io.StringIO(path.read_text())))
    assert rows[0] == header
    return [(m, int(ts), *map(csv_value, values)) for m, ts, *values in rows[1:]]


def test_the_csv_link_downloads_the_rows_the_api_returns(
    server: Server, open_page: OpenPage, device: Callable[..., tuple[str, Device]], tmp_path: Path
) -> None:
    device_id, dev = device()
    now = now_ms()
    dev.send(
        [
            {"ts": now - 30 * MINUTE + i * 10_000, "values": {"temperature": 20 + i / 100, "ok": i % 2 == 0}}
            for i in range(170)
        ]
    )
    for range_id in ("1h", "24h"):
        page, _ = open_page(f"{server.base}/#/device/{device_id}?range={range_id}")
        expect(chart(page, "temperature")).to_have_attribute("data-points", re.compile(r"^[1-9]"))
        with page.expect_download() as download:
            page.locator("a.csv").click()
        saved = tmp_path / f"{range_id}.csv"
        download.value.save_as(saved)
        assert download.value.suggested_filename == f"{device_id}-telemetry.csv"
        href = page.locator("a.csv").get_attribute("href") or ""
        query = dict(parse_qsl(urlsplit(href).query))
        api = server.telemetry(device_id, **query)
        # Raw readings have a value; buckets the average and the band's min and max, as drawn.
        fields = ["value"] if range_id == "1h" else ["avg", "min", "max"]
        expected = [
            (metric, p["ts"], *(p[f] if isinstance(p[f], bool) else float(p[f]) for f in fields))
            for metric, points in sorted(api.items())
            for p in points
        ]
        got = csv_rows(saved, ["metric", "ts", *fields])
        assert got == expected
        assert len(got) == sum(len(v) for v in api.values()) > 0
        if range_id == "1h":
            assert "interval" not in query and len(got) == 2 * 170
        else:
            assert query["interval"] == str(2 * MINUTE)
            assert query["agg"] == "avg,min,max"


def test_pause_holds_the_chart_and_resume_catches_up(
    server: Server, open_page: OpenPage, device: Callable[..., tuple[str, Device]]
) -> None:
    device_id, dev = device()
    base = now_ms() - 120_000
    dev.send(counter_readings(1, 2, base))
    page, _ = open_page(f"{server.base}/#/device/{device_id}?range=5m")
    live(page)
    expect(chart(page, "counter")).to_have_attribute("data-points", "2")
    page.locator("button.pause").click()
    expect(page.locator(".range-info")).to_have_text(re.compile("paused$"))
    dev.send(counter_readings(3, 5, base))
    expect(chart(page, "counter").locator(".value")).to_have_text("5")  # the header keeps up
    time.sleep(0.5)
    expect(chart(page, "counter")).to_have_attribute("data-points", "2")  # the chart holds still
    page.locator("button.pause").click()
    expect(chart(page, "counter")).to_have_attribute("data-points", "5")
    expect(page.locator(".range-info")).to_have_text(re.compile("live$"))


def test_phone_width_and_dark_theme(
    server: Server, open_page: OpenPage, device: Callable[..., tuple[str, Device]]
) -> None:
    device_id, dev = device("A device with a rather long name for a phone")
    dev.send(
        [
            {
                "ts": now_ms() - 60_000 + i * 1000,
                "values": {"temperature": 20 + i / 10, "pressure": 1013.25, "battery_v": 3.912},
            }
            for i in range(60)
        ]
    )
    page, _ = open_page(server.base + "/", viewport={"width": 320, "height": 700}, color_scheme="dark", is_mobile=True)
    live(page)
    expect(card(page, device_id).locator('[data-metric="pressure"] .value')).to_have_text("1,013 hPa")
    expect(card(page, device_id).locator('[data-metric="battery_v"] .value')).to_have_text("3.912 V")

    def fits() -> bool:
        return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))

    def background() -> str:
        return str(page.evaluate("getComputedStyle(document.body).backgroundColor"))

    assert fits()
    assert background() == "rgb(14, 17, 22)"
    screenshot(page, "overview-phone-dark")
    card(page, device_id).click()
    expect(chart(page, "temperature")).to_have_attribute("data-points", "60")
    assert fits()
    screenshot(page, "device-phone-dark")

    # The theme button goes system -> light -> dark, and the choice survives a reload.
    page.locator("#theme-toggle").click()
    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    assert background() == "rgb(245, 246, 248)"
    page.reload()
    expect(page.locator("html")).to_have_attribute("data-theme", "light")
    page.locator("#theme-toggle").click()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    expect(chart(page, "temperature")).to_have_attribute("data-points", "60")


def test_admin_actions_need_the_key_and_never_keep_it_in_sight(server: Server, open_page: OpenPage) -> None:
    page, log = open_page(server.base + "/")
    live(page)
    add = page.locator(".overview-head button", has_text="Add device")
    expect(add).to_be_hidden()
    _unlock_admin(page, log, server)
    expect(add).to_be_visible()
    token = _add_a_device(page, add)
    board = Device(server, token)
    expect(card(page, "dash-added").locator(".name")).to_have_text("Added by the dashboard")
    assert server.admin_key not in _in_sight(page)
    assert token not in _in_sight(page)
    _command_it(page, board)
    board.close()
    _rotate_its_token(page, server, token)
    _remove_it(page, server)
    assert server.admin_key not in _in_sight(page)

    page.locator("#admin-toggle").click()
    expect(add).to_be_hidden()
    page.reload()
    live(page)
    expect(page.locator(".overview-head button", has_text="Add device")).to_be_hidden()


def _in_sight(page: Page) -> str:
    """Everything the page keeps where a person or a script could find it later."""
    return str(
        page.evaluate(
            "JSON.stringify(localStorage) + JSON.stringify(sessionStorage) + document.cookie"
            " + location.href + document.documentElement.outerHTML"
        )
    )


def _unlock_admin(page: Page, log: ConsoleLog, server: Server) -> None:
    """A wrong key is refused; the right one unlocks the admin actions."""
    page.locator("#admin-toggle").click()
    page.locator("#admin-key").fill("not-the-key")
    page.locator("#admin-key").press("Enter")
    expect(page.locator("#admin-dialog .error")).to_have_text("The server refused this key.")
    log.allow(r"Failed to load resource: the server responded with a status of 403")
    page.locator("#admin-key").fill(server.admin_key)
    page.locator("#admin-key").press("Enter")
    expect(page.locator("#admin-dialog")).to_be_hidden()


def _add_a_device(page: Page, add: Any) -> str:
    """Register dash-added: its token is shown once, and is gone from the page when the dialog closes."""
    add.click()
    page.locator('#add-dialog input[name="id"]').fill("bad id!")
    page.locator('#add-dialog input[name="id"]').press("Enter")
    expect(page.locator("#add-dialog")).to_be_visible()  # refused by the field's own pattern
    assert not page.locator('#add-dialog input[name="id"]').evaluate("e => e.validity.valid")
    page.locator('#add-dialog input[name="name"]').fill("Added by the dashboard")
    page.locator('#add-dialog input[name="id"]').fill("dash-added")
    page.locator("#add-dialog button.primary").click()
    expect(page.locator("#token-dialog")).to_be_visible()
    token = page.locator("#token-value").input_value()
    assert token
    page.locator("#token-dialog button.primary").click()
    expect(page.locator("#token-value")).to_have_value("")
    return token


def _command_it(page: Page, board: Device) -> None:
    """Commands reach the connected device, and its answer is shown."""
    card(page, "dash-added").click()
    expect(page.locator(".device-admin")).to_be_visible()
    page.locator('.device-admin input[name="interval"]').fill("2.5")
    page.locator(".device-admin button", has_text="Set sampling interval").click()
    assert board.answer_command() == {"type": "command", "id": ANY_ID, "name": "set_interval", "args": {"ms": 2500}}
    expect(page.locator(".action-status")).to_have_text("Interval set.")
    page.locator(".device-admin button", has_text="Reboot").click()
    page.locator("#confirm-dialog button.primary").click()
    assert board.answer_command(ok=False)["name"] == "reboot"
    expect(page.locator(".action-status")).to_have_text("The device refused: no reason given")
    page.locator('.device-admin input[name="interval"]').fill("0")
    page.locator(".device-admin button", has_text="Set sampling interval").click()
    expect(page.locator(".action-status")).to_have_text("Give the sampling interval in seconds, for example 5.")


def _rotate_its_token(page: Page, server: Server, token: str) -> None:
    """A new token is shown; the old one is refused at once."""
    page.locator(".device-admin button", has_text="Rotate token").click()
    page.locator("#confirm-dialog button.primary").click()
    expect(page.locator("#token-dialog")).to_be_visible()
    new_token = page.locator("#token-value").input_value()
    assert new_token and new_token != token
    page.locator("#token-dialog button.primary").click()
    with pytest.raises(InvalidStatus):
        Device(server, token)
    Device(server, new_token).close()


def _remove_it(page: Page, server: Server) -> None:
    """Asked first; then the device is gone from the server and from the page."""
    page.locator(".device-admin button", has_text="Remove device").click()
    page.locator("#confirm-dialog .option input").check()
    page.locator("#confirm-dialog button.primary").click()
    expect(page).to_have_url(re.compile("#/$"))
    expect(card(page, "dash-added")).to_have_count(0)
    assert "dash-added" not in [d["id"] for d in httpx.get(server.base + "/api/devices").json()]


def test_a_server_with_a_read_key_asks_for_it(
    tmp_path: Path, request: pytest.FixtureRequest, open_page: OpenPage
) -> None:
    guarded = start_server(tmp_path, "sqlite", request, read_key="pwr_dashboard_read_key")
    device_id, token = guarded.register(name="Guarded")
    dev = Device(guarded, token)
    dev.reading(temperature=19.5)
    page, log = open_page(guarded.base + "/")
    log.allow(r"status of 401")
    expect(page.locator("#key-dialog")).to_be_visible()
    expect(page.locator("#key-dialog .error")).to_have_text("This server needs a read key to show its devices.")
    page.locator("#read-key").fill("pwr_dashboard_read_key")
    page.locator("#read-key").press("Enter")
    live(page)
    expect(card(page, device_id).locator('[data-metric="temperature"] .value')).to_have_text("19.5 °C")
    dev.reading(temperature=19.75)
    expect(card(page, device_id).locator('[data-metric="temperature"] .value')).to_have_text("19.75 °C")
    dev.close()


def test_an_unknown_device_or_a_refused_query_is_explained_and_the_page_goes_on(
    server: Server, open_page: OpenPage, device: Callable[..., tuple[str, Device]]
) -> None:
    device_id, dev = device()
    dev.reading(temperature=20.0)
    page, log = open_page(f"{server.base}/#/device/no-such-device?range=1h")
    log.allow(r"status of 404")
    expect(page.locator(".range-info")).to_have_text("Could not load this range: no device 'no-such-device'")
    expect(page.locator(".charts .chart")).to_have_count(0)
    # A hand-made address with a nonsense range falls back to the default, and the page still works.
    page.goto(f"{server.base}/#/device/{device_id}?range=forever&start=abc")
    expect(page.locator('.ranges [data-range="1h"]')).to_have_attribute("aria-pressed", "true")
    expect(chart(page, "temperature")).to_have_attribute("data-points", "1")
    page.locator("a.back").click()
    live(page)
    dev.reading(temperature=21.25)
    expect(card(page, device_id).locator('[data-metric="temperature"] .value')).to_have_text("21.25 °C")


# --- Charts: what the axes, legend, fill and band show -------------------------------------------

# What a chart drew on its axes, read back from its uPlot instance: each tick label's text, its
# width measured in the font it was drawn with, and its position in CSS pixels on the canvas.
AXES_JS = """(metric) => {
    const u = document.querySelector(`.chart[data-metric="${metric}"] .plot`).plot;
    const ratio = window.devicePixelRatio || 1;
    const ctx = document.createElement("canvas").getContext("2d");
    const labels = (i) => {
        const axis = u.axes[i];
        ctx.font = axis.font[0];
        const scale = i === 0 ? "x" : "y";
        const offset = (i === 0 ? u.bbox.left : u.bbox.top) / ratio;
        return axis._values.map((text, k) => text == null ? null : {
            text: String(text),
            width: Math.max(...String(text).split("\\n").map((line) => ctx.measureText(line).width)) / ratio,
            pos: offset + u.valToPos(axis._splits[k], scale),
        }).filter(Boolean);
    };
    const y = u.axes[1];
    return { x: labels(0), y: labels(1), ySize: y._size, yReserve: y.ticks.size + y.gap, width: u.width };
}"""


# Pixels of one canvas column, above and below the point at index `i` of series 1 (6 px away, so
# the line and its point marker are not counted): the share that has a translucent fill.
FILL_JS = """([metric, i]) => {
    const u = document.querySelector(`.chart[data-metric="${metric}"] .plot`).plot;
    const gap = 6 * (window.devicePixelRatio || 1);
    const x = Math.round(u.valToPos(u.data[0][i], "x", true));
    const y = Math.round(u.valToPos(u.data[1][i], "y", true));
    const column = u.ctx.getImageData(x, 0, 1, u.ctx.canvas.height).data;
    const share = (from, to) => {
        let filled = 0;
        for (let py = from; py < to; py++) if (column[py * 4 + 3] > 8 && column[py * 4 + 3] < 100) filled++;
        return filled / Math.max(1, to - from);
    };
    return { above: share(u.bbox.top, y - gap), below: share(y + gap, u.bbox.top + u.bbox.height) };
}"""


def drawn_fill(page: Page, metric: str, i: int) -> dict[str, float]:
    """FILL_JS once the chart has been drawn: a resize (the panels below the chart arriving) clears
    its canvas until the next frame draws it again, and a column read in between is empty."""
    found: dict[str, float] = {}

    def drawn() -> bool:
        found.update(page.evaluate(FILL_JS, [metric, i]))
        return found["above"] + found["below"] > 0

    wait_until(drawn, 5, f"the {metric} chart drawn")
    return found


def axes(page: Page, metric: str) -> dict[str, Any]:
    return dict(page.evaluate(AXES_JS, metric))


def number_in(label: str) -> float:
    """The number in a tick label as en-US writes it ("134,400,000", "3.90 V", "-61 dBm")."""
    return float(re.sub(r"[^\d.\-]", "", label))


def test_value_axes_fit_their_labels_and_show_the_unit(
    server: Server, open_page: OpenPage, device: Callable[..., tuple[str, Device]]
) -> None:
    device_id, dev = device()
    now = now_ms()
    dev.send(
        [
            {
                "ts": now - 290_000 + i * 10_000,
                "values": {
                    "pulses": 134_400_000 + (i % 7) * 10_000,
                    "battery_v": 3.9 + (i % 2) / 10,
                    "rssi": -60 - i % 5,
                },
            }
            for i in range(29)
        ]
    )
    page, _ = open_page(f"{server.base}/#/device/{device_id}?range=5m")
    for metric in ("pulses", "battery_v", "rssi"):
        expect(chart(page, metric)).to_have_attribute("data-points", "29")

    # Large values are shown whole: every label reads about 134.4 million, and the axis is wider
    # than the widest label with its tick and gap.
    pulses = axes(page, "pulses")
    assert len(pulses["y"]) >= 2 and all(134_000_000 < number_in(t["text"]) < 134_600_000 for t in pulses["y"])
    for metric in ("pulses", "battery_v", "rssi"):
        report = axes(page, metric)
        for label in report["y"]:
            assert label["width"] + report["yReserve"] <= report["ySize"], (metric, label, report["ySize"])
    # The unit is on the axis.
    assert all(t["text"].endswith(" V") for t in axes(page, "battery_v")["y"]), axes(page, "battery_v")["y"]
    assert all(t["text"].endswith(" dBm") for t in axes(page, "rssi")["y"]), axes(page, "rssi")["y"]
    screenshot(page, "device-axes-units")

    # An all-negative series is filled below its line, as a positive one is.
    fill = drawn_fill(page, "rssi", 14)
    assert fill["below"] > 0.8 and fill["above"] < 0.05, fill

    # The legend shows only while the pointer is over the chart.
    legend = chart(page, "battery_v").locator(".u-legend")
    expect(legend).to_be_hidden()
    chart(page, "battery_v").locator(".u-over").hover()
    expect(legend).to_be_visible()
    expect(legend).to_contain_text(re.compile(r"battery_v.*\d V"))
    screenshot(page, "device-legend-on-hover")
    page.mouse.move(1, 1)
    expect(legend).to_be_hidden()


# The chart's canvas ends inside its section's content box: nothing drawn is cut by the section.
PLOT_INSIDE_ITS_SECTION = """(metric) => {
    const section = document.querySelector(`.chart[data-metric="${metric}"]`);
    const style = getComputedStyle(section);
    const inner = section.getBoundingClientRect().right - parseFloat(style.borderRightWidth) - parseFloat(style.paddingRight);
    return section.querySelector("canvas").getBoundingClientRect().right <= inner + 0.5;
}"""


def test_time_axis_labels_never_overlap(
    server: Server, open_page: OpenPage, device: Callable[..., tuple[str, Device]]
) -> None:
    device_id, dev = device()
    now = now_ms()
    week = [{"ts": now - 7 * DAY + i * 5 * MINUTE, "values": {"temperature": 20 + i % 3}} for i in range(7 * 288 - 1)]
    recent = [{"ts": now - 290_000 + i * 10_000, "values": {"temperature": 21 + i % 2}} for i in range(29)]
    dev.send(week + recent)
    page, _ = open_page(f"{server.base}/#/device/{device_id}?range=5m")
    info = page.locator(".range-info")
    plan = {
        "5m": ([320, 375, 480, 768, 1024, 1280, 1440, 1920], r"readings"),
        "1h": ([320, 480, 1024, 1440], r"readings"),
        "24h": ([320, 480, 1024, 1440], r"2 min averages"),
        "7d": ([320, 480, 1024, 1440], r"15 min averages"),
        "30d": ([320, 1024], r"1 h averages"),
        "1y": ([320, 1024], r"12 h averages"),
    }
    for range_id, (widths, what) in plan.items():
        page.locator(f'.ranges [data-range="{range_id}"]').click()
        expect(info).to_have_text(re.compile(what))
        for width in widths:
            page.set_viewport_size({"width": width, "height": 900})
            page.wait_for_function(
                """() => {
                    const box = document.querySelector(".charts");
                    const u = box.querySelector('.chart[data-metric="temperature"] .plot').plot;
                    return u.width === Math.max(200, box.clientWidth - 2);
                }"""
            )
            labels = axes(page, "temperature")
            drawn = labels["x"]
            assert len(drawn) >= 2, (range_id, width, drawn)
            for a, b in itertools.pairwise(drawn):
                assert b["pos"] - a["pos"] >= (a["width"] + b["width"]) / 2, (range_id, width, a, b)
            assert drawn[0]["pos"] - drawn[0]["width"] / 2 >= 0, (range_id, width, drawn[0])
            assert drawn[-1]["pos"] + drawn[-1]["width"] / 2 <= labels["width"], (range_id, width, drawn[-1])
            assert page.evaluate(PLOT_INSIDE_ITS_SECTION, "temperature"), (range_id, width)
            if (range_id, width) in {("5m", 320), ("5m", 1280)}:
                screenshot(page, f"device-time-axis-{range_id}-{width}")


# One canvas column of a banded chart, midway between the buckets at `i` and `i + 1` (clear of
# the line's point markers and of grid lines, which fall on round times): the share of pixels
# with the band's translucent fill between the band's edges (clear of the average's line), above
# the maximum and below the minimum.
BAND_JS = """([metric, i]) => {
    const u = document.querySelector(`.chart[data-metric="${metric}"] .plot`).plot;
    const gap = 4 * (window.devicePixelRatio || 1);
    const x = Math.round(u.valToPos((u.data[0][i] + u.data[0][i + 1]) / 2, "x", true));
    const y = (k) => Math.round(u.valToPos((u.data[k][i] + u.data[k][i + 1]) / 2, "y", true));
    const [avg, low, high] = [y(1), y(2), y(3)];
    const column = u.ctx.getImageData(x, 0, 1, u.ctx.canvas.height).data;
    const share = (from, to) => {
        let filled = 0;
        for (let py = from; py < to; py++) if (column[py * 4 + 3] > 8 && column[py * 4 + 3] < 140) filled++;
        return filled / Math.max(1, to - from);
    };
    return {
        inside: (share(high + gap, avg - gap) + share(avg + gap, low - gap)) / 2,
        above: share(u.bbox.top, high - gap),
        below: share(low + gap, u.bbox.top + u.bbox.height),
    };
}"""


def test_bucketed_ranges_draw_a_min_max_band_equal_to_the_api(
    server: Server, open_page: OpenPage, device: Callable[..., tuple[str, Device]]
) -> None:
    device_id, dev = device()
    now = now_ms()
    # Every 2-minute bucket holds both 3.9 and 4.0: its band is 3.9..4.0 around an average of 3.95.
    dev.send([{"ts": now - 120 * MINUTE + i * 10_000, "values": {"battery_v": 3.9 + (i % 2) / 10}} for i in range(720)])
    page, _ = open_page(f"{server.base}/#/device/{device_id}?range=24h")
    expect(page.locator(".range-info")).to_have_text(re.compile(r"points, 2 min averages computed by the server"))
    drawn = page.evaluate(
        """() => {
            const u = document.querySelector('.chart[data-metric="battery_v"] .plot').plot;
            return { data: u.data.map((column) => Array.from(column)), bands: u.bands.map((b) => b.series) };
        }"""
    )
    ts, avg, low, high = drawn["data"]
    assert drawn["bands"] == [[3, 2]]
    api = server.telemetry(
        device_id, start=ts[0], end=ts[-1] + 2 * MINUTE - 1, interval=2 * MINUTE, agg="avg,min,max", order="asc"
    )["battery_v"]
    assert ts == [p["ts"] for p in api] and len(ts) >= 60
    assert avg == [p["avg"] for p in api]
    assert low == [p["min"] for p in api] and high == [p["max"] for p in api]
    assert set(low[1:-1]) == {3.9} and set(high[1:-1]) == {4.0}  # the end buckets may hold one reading

    band = page.evaluate(BAND_JS, ["battery_v", len(ts) // 2])
    assert band["inside"] > 0.8 and band["above"] < 0.05 and band["below"] < 0.05, band
    screenshot(page, "device-24h-band")
    # The legend names the average and the band's edges.
    chart(page, "battery_v").locator(".u-over").hover(position={"x": 1000, "y": 60})
    expect(chart(page, "battery_v").locator(".u-legend")).to_contain_text(re.compile(r"battery_v avg.*min.*max"))
    screenshot(page, "device-24h-band-legend")


def test_a_long_metric_name_on_a_card_has_a_tooltip(
    server: Server, open_page: OpenPage, device: Callable[..., tuple[str, Device]]
) -> None:
    device_id, dev = device()
    long_name = "greenhouse.north_wall.soil_moisture_at_30cm_sensor_7_pct"
    dev.reading(**{long_name: 41.5})
    page, _ = open_page(server.base + "/")
    name = card(page, device_id).locator(f'[data-metric="{long_name}"] .metric')
    expect(name).to_have_attribute("title", long_name)
    assert name.evaluate("e => e.scrollWidth > e.clientWidth"), "the name should be cut on the card"


# Whether the token box shows all of its text: nothing scrolled out of sight either way.
TOKEN_IN_SIGHT_JS = """() => {
    const box = document.getElementById("token-value");
    return box.value.length > 40 && box.scrollWidth <= box.clientWidth && box.scrollHeight <= box.clientHeight;
}"""


def test_the_token_dialog_shows_the_whole_token(server: Server, open_page: OpenPage) -> None:
    page, _ = open_page(server.base + "/")
    live(page)
    page.locator("#admin-toggle").click()
    page.locator("#admin-key").fill(server.admin_key)
    page.locator("#admin-key").press("Enter")
    page.locator(".overview-head button", has_text="Add device").click()
    page.locator('#add-dialog input[name="id"]').fill(f"token-shown-{now_ms()}")
    page.locator("#add-dialog button.primary").click()
    expect(page.locator("#token-dialog")).to_be_visible()
    for width in (1280, 320):
        page.set_viewport_size({"width": width, "height": 800})
        page.wait_for_function(TOKEN_IN_SIGHT_JS, timeout=3000)
    screenshot(page, "token-dialog-phone")


# --- Alert rules and channels (the admin's editor at #/alerts) ------------------------------------


def open_alert_admin(server: Server, open_page: OpenPage) -> tuple[Page, ConsoleLog]:
    """The alerts page with the admin key given."""
    page, log = open_page(server.base + "/#/alerts")
    expect(page.locator(".locked")).to_be_visible()
    page.locator("#admin-toggle").click()
    page.locator("#admin-key").fill(server.admin_key)
    page.locator("#admin-key").press("Enter")
    expect(page.locator(".locked")).to_be_hidden()
    expect(page.locator(".rules")).to_be_visible()
    return page, log


def api_rules(server: Server) -> list[dict[str, Any]]:
    return list(server.get("/api/rules").json())


def fill_rule(page: Page, **fields: str) -> None:
    form = page.locator(".rule-form")
    for name, value in fields.items():
        control = form.locator(f'[name="{name}"]')
        if control.evaluate("e => e.tagName") == "SELECT":
            control.select_option(value)
        else:
            control.fill(value)


def test_the_rule_editor_adds_changes_and_deletes_a_rule_and_shows_the_server_s_refusal(
    server: Server, open_page: OpenPage
) -> None:
    page, log = open_alert_admin(server, open_page)
    form = page.locator(".rule-form")
    rules = page.locator(".rule-list .rule")
    before = {r["id"] for r in api_rules(server)}

    fill_rule(page, name="freezer warm", device="freezer-1", metric="temperature", op=">", value="-10", for_s="300")
    form.locator('[name="severity"]').select_option("critical")
    form.locator("button", has_text="Save rule").click()
    added = page.locator(".rule-list .rule", has_text="freezer warm")
    expect(added.locator(".rule-what")).to_have_text("temperature > -10 for 5 min, on freezer-1")
    expect(added.locator(".sev")).to_have_text("critical")
    (stored,) = [r for r in api_rules(server) if r["id"] not in before]
    assert {k: stored[k] for k in ("name", "kind", "device", "metric", "op", "value", "for_s", "repeat_s")} == {
        "name": "freezer warm", "kind": "threshold", "device": "freezer-1", "metric": "temperature",
        "op": ">", "value": -10, "for_s": 300, "repeat_s": 0,
    }  # fmt: skip
    expect(form.locator('[name="name"]')).to_have_value("")  # the form is ready for the next rule

    # Changed into a band on every device: the form shows low and high instead of one value.
    added.locator("button", has_text="Edit").click()
    expect(form.locator("h3")).to_have_text("Edit rule")
    expect(form.locator('[name="value"]')).to_have_value("-10")
    form.locator('[name="op"]').select_option("outside")
    expect(form.locator(".field-value")).to_be_hidden()
    fill_rule(page, device="*", low="-25", high="-10", repeat_s="3600")
    form.locator("button", has_text="Save rule").click()
    expect(added.locator(".rule-what")).to_have_text(
        "temperature outside -25..-10 for 5 min, on every device, again every 1 h"
    )
    changed = server.get(f"/api/rules/{stored['id']}").json()
    assert (changed["op"], changed["low"], changed["high"], changed["device"]) == ("outside", -25, -10, "*")

    # A refusal is shown next to the form in the server's own words.
    log.allow(r"status of 400")
    fill_rule(page, name="bad one", metric="has space", op=">", value="1")
    body = {"name": "bad one", "kind": "threshold", "device": "*", "metric": "has space", "op": ">", "value": 1,
            "for_s": 0, "repeat_s": 0, "severity": "warning", "channels": []}  # fmt: skip
    refused = httpx.post(server.base + "/api/rules", json=body, headers=server.admin(), timeout=10)
    assert refused.status_code == 400
    form.locator("button", has_text="Save rule").click()
    expect(form.locator(".form-error")).to_have_text(refused.json()["detail"])
    assert len(api_rules(server)) == len(before) + 1
    screenshot(page, "alert-rules")

    # Deleted after asking.
    added.locator("button", has_text="Delete").click()
    expect(page.locator("#confirm-dialog")).to_be_visible()
    page.locator("#confirm-dialog button.primary").click()
    expect(page.locator(".rule-list .rule", has_text="freezer warm")).to_have_count(0)
    assert stored["id"] not in {r["id"] for r in api_rules(server)}
    expect(rules).to_have_count(len(before))


def test_channels_are_added_named_by_a_rule_and_deleted(server: Server, open_page: OpenPage) -> None:
    page, log = open_alert_admin(server, open_page)
    form = page.locator(".channel-form")
    expect(form.locator(".field-to")).to_be_hidden()
    form.locator('[name="name"]').fill("ops hook")
    form.locator('[name="url"]').fill("http://127.0.0.1:9/hook")
    form.locator('[name="secret"]').fill("a-secret-of-24-characters")
    form.locator("button", has_text="Add channel").click()
    hook = page.locator(".channel-list .channel", has_text="ops hook")
    expect(hook.locator(".channel-what")).to_have_text("webhook http://127.0.0.1:9/hook")

    form.locator('[name="type"]').select_option("email")
    expect(form.locator(".field-url")).to_be_hidden()
    form.locator('[name="name"]').fill("on call")
    form.locator('[name="to"]').fill("a@example.org, b@example.org")
    form.locator("button", has_text="Add channel").click()
    mail = page.locator(".channel-list .channel", has_text="on call")
    expect(mail.locator(".channel-what")).to_have_text("email to a@example.org, b@example.org")
    log.allow(r"status of 400")
    form.locator('[name="name"]').fill("broken")
    form.locator('[name="to"]').fill("not-an-address")
    form.locator("button", has_text="Add channel").click()
    expect(form.locator(".form-error")).to_have_text(re.compile(r"^to\[0\]: "))

    # The rule form offers the channels; a rule naming the webhook keeps it from being deleted (409).
    page.locator(".rule-channels label", has_text="ops hook").locator("input").check()
    fill_rule(page, name="hooked", metric="temperature", value="40")
    page.locator(".rule-form button", has_text="Save rule").click()
    expect(page.locator(".rule-list .rule", has_text="hooked")).to_be_visible()
    hook_id = hook.get_attribute("data-channel")
    assert [r["channels"] for r in api_rules(server) if r["name"] == "hooked"] == [[hook_id]]
    log.allow(r"status of 409")
    hook.locator("button", has_text="Delete").click()
    page.locator("#confirm-dialog button.primary").click()
    expect(hook.locator(".channel-outcome")).to_have_text(
        re.compile(r"^Could not delete: channel .* is named by rules")
    )
    expect(hook.locator(".channel-outcome")).to_have_class(re.compile(r"\berror\b"))

    mail.locator("button", has_text="Delete").click()
    page.locator("#confirm-dialog button.primary").click()
    expect(mail).to_have_count(0)
    names = [c["name"] for c in server.get("/api/channels", headers=server.admin()).json()]
    assert "ops hook" in names and "on call" not in names
    screenshot(page, "alert-channels")


MARKUP = '<img src=x onerror="window.pwned=1">'


def with_markup_names(route: Any) -> None:
    """The real server's rules, their names turned into markup (the server refuses such names; the
    page must not rely on that)."""
    answer = route.fetch()
    rules = [{**r, "name": MARKUP + r["name"]} for r in answer.json()]
    route.fulfill(response=answer, json=rules)


def test_markup_in_a_rule_name_is_shown_as_text(server: Server, open_page: OpenPage) -> None:
    page, log = open_alert_admin(server, open_page)
    # The server refuses a name with markup; the page shows why, as text.
    log.allow(r"status of 400")
    fill_rule(page, name=MARKUP, metric="temperature", value="1")
    page.locator(".rule-form button", has_text="Save rule").click()
    expect(page.locator(".rule-form .form-error")).to_have_text(re.compile(r"^name: markup"))
    # A name with what would be an entity in HTML stays as typed.
    fill_rule(page, name="a &lt;b&gt; & c < 5", metric="temperature", value="1")
    page.locator(".rule-form button", has_text="Save rule").click()
    expect(page.locator(".rule-list .rule-name", has_text="a &lt;b&gt; & c < 5")).to_have_count(1)

    page.route(re.compile(r"/api/rules$"), with_markup_names)
    page.reload()
    expect(page.locator(".rules")).to_be_hidden()  # the key went with the reload
    page.locator("#admin-toggle").click()
    page.locator("#admin-key").fill(server.admin_key)
    page.locator("#admin-key").press("Enter")
    shown = page.locator(".rule-list .rule-name", has_text="a &lt;b&gt; & c < 5")
    expect(shown).to_have_text(MARKUP + "a &lt;b&gt; & c < 5")
    assert page.locator(".rule-list img").count() == 0
    assert page.evaluate("window.pwned") is None
    # Edited, the markup goes back into the field as text as well.
    page.locator(".rule-list .rule", has_text="a &lt;b&gt;").locator("button", has_text="Edit").click()
    expect(page.locator('.rule-form [name="name"]')).to_have_value(MARKUP + "a &lt;b&gt; & c < 5")


CONTRAST_JS = """(el) => {
    const rgb = (text) => text.match(/[\\d.]+/g).slice(0, 3).map(Number);
    const lum = ([r, g, b]) => {
        const c = [r, g, b].map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
        return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
    };
    const style = getComputedStyle(el);
    const [a, b] = [lum(rgb(style.color)), lum(rgb(style.backgroundColor))];
    return { ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05), background: style.backgroundColor };
}"""


def test_severity_colours_are_distinct_and_readable_in_both_themes(server: Server, open_page: OpenPage) -> None:
    for severity in ("info", "warning", "critical"):
        body = {"name": f"contrast {severity}", "kind": "no_data", "device": "*", "metric": None,
                "for_s": 60, "severity": severity}  # fmt: skip
        assert httpx.post(server.base + "/api/rules", json=body, headers=server.admin(), timeout=10).status_code == 201
    for scheme in ("light", "dark"):
        page, _ = open_page(server.base + "/#/alerts", color_scheme=scheme)
        page.locator("#admin-toggle").click()
        page.locator("#admin-key").fill(server.admin_key)
        page.locator("#admin-key").press("Enter")
        backgrounds = set()
        for severity in ("info", "warning", "critical"):
            chip = page.locator(".rule-list .rule", has_text=f"contrast {severity}").locator(".sev")
            expect(chip).to_have_text(severity)
            seen = chip.evaluate(CONTRAST_JS)
            assert seen["ratio"] >= 4.5, (scheme, severity, seen)  # WCAG AA for text
            backgrounds.add(seen["background"])
        assert len(backgrounds) == 3, (scheme, backgrounds)
        screenshot(page, f"alert-rules-{scheme}")
