"""The firmware's flash journal (device/firmware/journal.py) on CPython and on real MicroPython.

tests/firmware/cases/journal_cases.py holds the cases as plain functions; each is one test per
interpreter here. Under CPython a case runs in its own temporary folder; MicroPython runs them all
at once on a simulated board (pulsewire_devkit.simboard), on the board's own filesystem, and
prints a PASS or FAIL line per case, then the figures docs/firmware.md quotes.
"""

from __future__ import annotations

import ast
import importlib.util
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from pulsewire import firmware
from pulsewire_devkit.simboard.runner import EXIT_STOPPED
from tests.support.simboard import FIRMWARE, board

CASES_DIR = Path(__file__).resolve().parent / "cases"
CASES_FILE = CASES_DIR / "journal_cases.py"
CASES = sorted(
    node.name
    for node in ast.parse(CASES_FILE.read_text()).body
    if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
)


def load_cases() -> ModuleType:
    """The cases module under CPython, its imports given the firmware's own files."""
    spec = importlib.util.spec_from_file_location("journal_cases", CASES_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved = {name: sys.modules.get(name) for name in ("journal", "ring")}
    sys.modules.update({name: firmware.load(name) for name in saved})
    try:
        spec.loader.exec_module(module)
    finally:
        for name, old in saved.items():
            if old is None:
                del sys.modules[name]
            else:
                sys.modules[name] = old
    return module


@pytest.fixture(scope="module")
def micropython() -> Iterator[dict[str, str]]:
    """What the cases module printed on MicroPython: PASS/FAIL lines by case, FIGURE values by name."""
    files = {
        "/main.py": "CASES = 'journal_cases'\n" + (CASES_DIR / "run_cases.py").read_text(),
        "/journal_cases.py": CASES_FILE.read_bytes(),
        "/journal.py": (FIRMWARE / "journal.py").read_bytes(),
        "/ring.py": (FIRMWARE / "ring.py").read_bytes(),
    }
    with board(None, files=files) as sim:
        assert sim.wait_exit(240) == EXIT_STOPPED, sim.output()
    results: dict[str, str] = {}
    for line in sim.lines:
        kind, _, rest = line.partition(" ")
        if kind in ("PASS", "FAIL"):
            results[rest.partition(" ")[0]] = line
        elif kind == "FIGURE":
            name, _, value = rest.partition(" ")
            results[f"FIGURE {name}"] = value
    assert f"DONE {len(CASES)}" in sim.lines, sim.output()
    yield results


@pytest.mark.parametrize("case", CASES)
def test_case_on_cpython(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    getattr(load_cases(), case)()


@pytest.mark.parametrize("case", CASES)
def test_case_on_micropython(case: str, micropython: dict[str, str]) -> None:
    line = micropython.get(case, f"{case}: no result line")
    if not line.startswith("PASS "):
        pytest.fail(line.replace(" | ", "\n"), pytrace=False)


def test_the_figures_in_the_docs_are_what_the_journal_does(micropython: dict[str, str]) -> None:
    """docs/firmware.md "Readings across a reboot" quotes these; they hold on both interpreters."""
    figures = {k.split(" ", 1)[1]: int(v) for k, v in micropython.items() if k.startswith("FIGURE ")}
    print("journal figures on MicroPython:", figures)
    # One reading a second offline, four values: a write a minute, 30 bytes a reading.
    assert figures["writes_per_hour_1s"] <= 60 and figures["bytes_per_hour_1s"] <= 3600 * 30 + 60 * 9
    assert figures["writes_per_hour_5s"] <= 60 and figures["bytes_per_hour_5s"] <= 720 * 30 + 60 * 9
    assert figures["heap_journal"] < 3500  # the page, the CRC table, the bookkeeping
    # Short-lived, collected like the rest: the timestamp and the values read out as objects.
    assert figures["heap_per_reading"] <= 128
    docs = (Path(__file__).resolve().parents[2] / "docs" / "firmware.md").read_text()
    section = docs.split("## Readings across a reboot", 1)[1].split("\n## ", 1)[0]
    quoted = re.search(r"\*\*([\d,]+) writes and ([\d,]+) bytes an hour\*\*", section)
    assert quoted, "docs/firmware.md does not quote the write rate"
    assert quoted.groups() == (f"{figures['writes_per_hour_1s']:,}", f"{figures['bytes_per_hour_1s']:,}")
    heap = re.search(r"\*\*Memory\.\*\* About ([\d.]+) KB for the journal", section)
    assert heap, "docs/firmware.md does not quote the journal's heap"
    assert abs(float(heap.group(1)) * 1000 - figures["heap_journal"]) <= 100, figures["heap_journal"]
    per_reading = re.search(r"about (\d+) bytes of short-lived", section)
    assert per_reading and abs(int(per_reading.group(1)) - figures["heap_per_reading"]) <= 16
