"""Fixtures of the dashboard's browser tests: Debian's Chromium under Playwright, a page that fails
its test on any console error, and devices on the real device channel of the module's `server`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.browser import CHROMIUM, LAUNCH_ARGS, ConsoleLog, Device, OpenPage, require_chromium, watch_console
from tests.support.server import Server

pytest.importorskip("playwright")
from playwright.sync_api import Browser, Page, sync_playwright  # noqa: E402


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    require_chromium()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        yield b
        b.close()


@pytest.fixture
def open_page(browser: Browser) -> Iterator[OpenPage]:
    """Open a URL in a fresh browser context; every console error it logs fails the test."""
    opened: list[tuple[Any, ConsoleLog]] = []

    def open_(url: str, **options: Any) -> tuple[Page, ConsoleLog]:
        options = {"viewport": {"width": 1280, "height": 900}, "color_scheme": "light", **options}
        context = browser.new_context(accept_downloads=True, **options)
        page = context.new_page()
        log = watch_console(page)
        opened.append((context, log))
        page.goto(url)
        return page, log

    yield open_
    for context, _ in opened:
        context.close()
    errors = [e for _, log in opened for e in log.unexpected()]
    assert not errors, "the page logged errors:\n" + "\n".join(errors)


@pytest.fixture
def device(server: Server) -> Iterator[Callable[..., tuple[str, Device]]]:
    made: list[Device] = []

    def make(name: str | None = None) -> tuple[str, Device]:
        device_id, token = server.register(name=name)
        d = Device(server, token)
        made.append(d)
        return device_id, d

    yield make
    for d in made:
        d.close()
