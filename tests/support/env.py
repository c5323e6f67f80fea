"""Where the tests run: the repository's folders, and whether this is CI (where nothing may be skipped)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]  # the repository
TEST_OUTPUT = ROOT / "test-output"
IN_CI = os.environ.get("CI", "").lower() == "true"


def missing(problem: str, remedy: str) -> None:
    """Something a test needs is not here: skip on a workstation, fail in CI (where tests/run provides it)."""
    if IN_CI:
        pytest.fail(f"{problem} (CI runs every test: {remedy})")
    pytest.skip(problem)
