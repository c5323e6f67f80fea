"""The dashboard's pure JavaScript modules (dashboard/js), unit-tested under Node's built-in runner.

The tests are tests/dashboard/js/*.test.mjs (node:test, node:assert/strict). Like the simulated-board
tests (tests/simboard.py), they need Node.js: a workstation without it skips them, CI (CI=true) fails
them. They need no npm package, so tests.simboard.require_node() (which wants npm and installs
MicroPython) is not used.

dashboard/js/package.json says "type": "module", so every Node since 18 loads its .js files as ES modules.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.env import IN_CI, ROOT

JS = ROOT / "dashboard" / "js"
TESTS = Path(__file__).resolve().parent / "js"
MIN_NODE_MAJOR = 18  # node:test and `node --test`
RUN_TIMEOUT_S = 60  # the whole run takes about a second

# Modules whose every export must be named in some test file, so a new export comes with a test.
COVERED = [
    "alerts.js",
    "chartseries.js",
    "format.js",
    "livefeed.js",
    "rangeinfo.js",
    "ranges.js",
    "resolution.js",
    "rollouts.js",
    "ruleform.js",
    "series.js",
    "store.js",
    "timeaxis.js",
    "urls.js",
    "valueaxis.js",
]
TEST_FILES = [
    "alerts.test.mjs",
    "chartseries.test.mjs",
    "format.test.mjs",
    "livefeed.test.mjs",
    "rangeinfo.test.mjs",
    "ranges.test.mjs",
    "resolution.test.mjs",
    "rollouts.test.mjs",
    "ruleform.test.mjs",
    "series.test.mjs",
    "store.test.mjs",
    "live.test.mjs",
    "timeaxis.test.mjs",
    "urls.test.mjs",
    "valueaxis.test.mjs",
]
EXPORT = re.compile(r"^export\s+(?:async\s+)?(?:function\*?|const|let|class)\s+([A-Za-z_$][\w$]*)", re.MULTILINE)


def require_node() -> str:
    """The path of node; skip without a usable one on a workstation, fail in CI."""
    node = shutil.which("node")
    if node is None:
        problem = "node not found on PATH: the dashboard's JavaScript tests run on Node.js"
    else:
        version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout.strip()
        found = re.match(r"v?(\d+)", version)
        if found is not None and int(found.group(1)) >= MIN_NODE_MAJOR:
            return node
        problem = f"Node.js {version or '(unknown version)'} is too old for node:test"
    problem += f" (install Node.js {MIN_NODE_MAJOR}+)"
    if IN_CI:
        pytest.fail(f"{problem} (CI runs every test: tests/run installs Node.js)")
    pytest.skip(problem)


def test_test_files_hold_tests() -> None:
    found = sorted(path.name for path in TESTS.glob("*.test.mjs"))
    assert found, f"no *.test.mjs in {TESTS}"
    assert set(TEST_FILES) <= set(found), f"missing: {sorted(set(TEST_FILES) - set(found))}"
    for name in found:
        text = (TESTS / name).read_text(encoding="utf-8")
        assert re.search(r"\btest\(", text), f"{name} has no test( call"


@pytest.mark.parametrize("module", COVERED)
def test_every_export_is_tested(module: str) -> None:
    names = EXPORT.findall((JS / module).read_text(encoding="utf-8"))
    assert names, f"no `export function` or `export const` found in {module}: has the pattern changed?"
    tests = "\n".join(path.read_text(encoding="utf-8") for path in sorted(TESTS.glob("*.test.mjs")))
    untested = [name for name in names if not re.search(rf"(?<![\w$]){re.escape(name)}(?![\w$])", tests)]
    assert not untested, f"exports of dashboard/js/{module} that no test in tests/dashboard/js names: {untested}"


@pytest.mark.timeout(RUN_TIMEOUT_S * 2 + 30)
def test_dashboard_js() -> None:
    node = require_node()
    # The files by name, not the folder: Node 21+ reads `--test` arguments as glob patterns.
    files = [str(path.relative_to(ROOT)) for path in sorted(TESTS.glob("*.test.mjs"))]
    assert files, f"no *.test.mjs in {TESTS}"
    try:
        done = subprocess.run(
            [node, "--test", *files],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        pytest.fail(f"node --test did not finish within {RUN_TIMEOUT_S} s:\n{out[-20000:]}")
    output = done.stdout + done.stderr
    if done.returncode != 0:
        pytest.fail(f"node --test {' '.join(files)} failed (exit {done.returncode}):\n{output}", pytrace=False)
    ran = re.search(r"^(?:# |ℹ )tests (\d+)", output, re.MULTILINE)
    assert ran is None or int(ran.group(1)) > 0, f"node --test ran no tests:\n{output}"
