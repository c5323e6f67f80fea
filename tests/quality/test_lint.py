"""The server's code passes the linter and the type checker configured in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys

from tests.support.env import ROOT


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_finds_nothing() -> None:
    out = run("ruff", "check", "server", "tests", "bench", "device")
    assert out.returncode == 0, out.stdout + out.stderr


def test_mypy_finds_nothing() -> None:
    out = run("mypy")
    assert out.returncode == 0, out.stdout + out.stderr
