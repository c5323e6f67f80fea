"""main.py for a simulated board that runs a cases module: one PASS or FAIL line per case.

The cases module is named in CASES; a FAIL line carries the traceback, its lines joined by " | ".
FRAME lines give each of the module's sealed_frames() in hex, for a parser on the host; FIGURE
lines each of its figures(), a name and a number.
"""

import io
import sys

cases = __import__(CASES)  # noqa: F821  (CASES is set by the line the test puts in front)

names = sorted(name for name in dir(cases) if name.startswith("test_"))
for name in names:
    try:
        getattr(cases, name)()
    except Exception as exc:  # AssertionError and whatever else a case raises
        trace = io.StringIO()
        sys.print_exception(exc, trace)
        print("FAIL", name, trace.getvalue().strip().replace("\n", " | "))
    else:
        print("PASS", name)
if hasattr(cases, "figures"):
    for name, value in cases.figures():
        print("FIGURE", name, value)
if hasattr(cases, "sealed_frames"):
    for name, frame in cases.sealed_frames():
        print("FRAME", name, frame.hex())
print("DONE", len(names))
