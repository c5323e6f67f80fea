"""Debian's Chromium, as the browser tests and the dashboard benchmark start it (no pytest needed here).

The flags keep a headless Chromium from reaching for Google's services at start, which a machine
with no outside network refuses, many times over.
"""

from __future__ import annotations

from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
