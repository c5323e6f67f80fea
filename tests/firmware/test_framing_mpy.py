"""The firmware's RFC 6455 framing (device/firmware/wsframe.py) on CPython and on real MicroPython.

tests/firmware/cases/wsframe_cases.py holds the cases as plain functions; each is one test per
interpreter here. MicroPython runs them all at once on a simulated board (pulsewire_devkit.simboard) and
prints a PASS or FAIL line per case. The frames the client seals on each interpreter are parsed
by the websockets library, an implementation the firmware shares no code with.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from pulsewire import firmware
from pulsewire_devkit.simboard.runner import EXIT_STOPPED
from tests.support.simboard import FIRMWARE, board

CASES_DIR = Path(__file__).resolve().parent / "cases"
CASES_FILE = CASES_DIR / "wsframe_cases.py"


def load_cases() -> ModuleType:
    """The cases module under CPython, its `import wsframe` given the firmware's own file."""
    spec = importlib.util.spec_from_file_location("wsframe_cases", CASES_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved = sys.modules.get("wsframe")
    sys.modules["wsframe"] = firmware.load("wsframe")
    try:
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            del sys.modules["wsframe"]
        else:
            sys.modules["wsframe"] = saved
    return module


CPYTHON = load_cases()
CASES = sorted(
    node.name
    for node in ast.parse(CASES_FILE.read_text()).body
    if isinstance(node, ast.FunctionDef) and node.name.startswith("test_")
)
FRAMES = dict(CPYTHON.sealed_frames())


@pytest.fixture(scope="module")
def micropython() -> Iterator[dict[str, str]]:
    """What the cases module printed on MicroPython: PASS/FAIL lines by case, FRAME hex by name."""
    files = {
        "/main.py": "CASES = 'wsframe_cases'\n" + (CASES_DIR / "run_cases.py").read_text(),
        "/wsframe_cases.py": CASES_FILE.read_bytes(),
        "/wsframe.py": (FIRMWARE / "wsframe.py").read_bytes(),
    }
    with board(None, files=files) as sim:
        assert sim.wait_exit(120) == EXIT_STOPPED, sim.output()
    results: dict[str, str] = {}
    for line in sim.lines:
        kind, _, rest = line.partition(" ")
        if kind in ("PASS", "FAIL", "FRAME"):
            name, _, detail = rest.partition(" ")
            results[f"{kind} {name}" if kind == "FRAME" else name] = line if kind != "FRAME" else detail
    assert f"DONE {len(CASES)}" in sim.lines, sim.output()
    yield results


@pytest.mark.parametrize("case", CASES)
def test_case_on_cpython(case: str) -> None:
    getattr(CPYTHON, case)()


@pytest.mark.parametrize("case", CASES)
def test_case_on_micropython(case: str, micropython: dict[str, str]) -> None:
    line = micropython.get(case, f"{case}: no result line")
    if not line.startswith("PASS "):
        pytest.fail(line.replace(" | ", "\n"), pytrace=False)


def parse_client_frame(data: bytes) -> Frame:
    """One frame as a server parses it: websockets insists a client frame is masked."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=True)
    try:
        next(parser)
    except StopIteration as done:
        assert reader.at_eof() and not reader.buffer, "bytes left after the frame"
        frame: Frame = done.value
        return frame
    raise AssertionError("websockets wanted more bytes than the frame has")


def expected(name: str) -> tuple[Opcode, bytes]:
    if name.startswith("text-"):
        n = int(name.split("-")[1])
        return Opcode.TEXT, bytes(48 + i % 75 for i in range(n))
    return {
        "ping": (Opcode.PING, b""),
        "pong": (Opcode.PONG, b"abc"),
        "close": (Opcode.CLOSE, b"\x03\xe9rebooting"),
    }[name]


@pytest.mark.parametrize("name", sorted(FRAMES))
@pytest.mark.parametrize("interpreter", ["cpython", "micropython"])
def test_sealed_frame_parses_with_websockets(interpreter: str, name: str, micropython: dict[str, str]) -> None:
    data = FRAMES[name] if interpreter == "cpython" else bytes.fromhex(micropython[f"FRAME {name}"])
    frame = parse_client_frame(data)
    opcode, payload = expected(name)
    assert (frame.opcode, frame.fin, frame.rsv1, frame.rsv2, frame.rsv3) == (opcode, True, False, False, False)
    assert frame.data == payload
    assert data == FRAMES[name]  # the same bytes on both interpreters


@pytest.mark.parametrize(
    ("opcode", "payload", "fin"),
    [
        (Opcode.TEXT, b"hi", True),
        (Opcode.BINARY, bytes(300), False),
        (Opcode.CONT, bytes(70000), True),
        (Opcode.PING, b"p", True),
        (Opcode.CLOSE, b"\x03\xe8", True),
    ],
)
def test_the_cases_server_frames_are_what_websockets_sends(opcode: Opcode, payload: bytes, fin: bool) -> None:
    assert CPYTHON.server_frame(opcode.value, payload, fin=fin) == Frame(opcode, payload, fin).serialize(mask=False)
