"""What the benchmarks share: no benchmark imports another, and the server runner's parts they lean on
(tests/support/server.py, which the tests use too) do what the benchmarks' figures and notes rely on."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.env import ROOT
from tests.support.server import Server, ServerError, free_port
from tests.support.waiting import wait_until

BENCHMARKS = sorted((ROOT / "bench").glob("*.py"))


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_no_benchmark_imports_another_or_edits_sys_path() -> None:
    scripts = {path.stem for path in BENCHMARKS}
    assert {"ingest", "peers", "scale", "dashboard", "firmware_heap"} <= scripts
    for path in BENCHMARKS:
        assert not _imported_modules(path) & scripts, f"{path.name} imports another benchmark"
        assert "sys.path" not in path.read_text(), f"{path.name} edits sys.path (bench/harness does, once)"


def test_a_run_registers_many_reads_metrics_removes_and_stops(tmp_path: Path) -> None:
    server = Server(tmp_path, flags=["--sample-interval-ms", "250"], log_level="warning").start()
    try:
        tokens = server.register_many(["bench-a", "bench-b", "bench-c"])
        assert len(set(tokens)) == 3 and all(tokens)
        listed = {d["id"]: d for d in server.get("/api/devices").json()}
        assert {listed[d]["interval_ms"] for d in ("bench-a", "bench-b", "bench-c")} == {250}  # the flag applied
        with pytest.raises(ServerError, match="registering bench-a: HTTP 409"):
            server.register_many(["bench-a"])
        metrics = server.metrics()
        assert metrics["pulsewire_device_connections"] == 0
        assert not any(name.endswith("_bucket") for name in metrics)

        assert server.remove(["bench-a", "never-registered"]) == []  # already gone counts as removed
        assert server.get("/api/devices/bench-a/latest").status_code == 404
        refused = Server(tmp_path, port=server.port, admin_key="not-the-key")
        assert refused.remove(["bench-b"]) == ["bench-b"]
        assert server.log_lines() == [], "a quiet run logs nothing at warning level (the banner goes elsewhere)"
        assert server.crashed() is None
    finally:
        stopped = server.stop()
    assert stopped == "stopped on SIGINT (exit 0)"
    assert server.crashed() == 0 and server.stop() == "had already exited with 0"


def test_a_restarted_server_reports_only_the_lines_of_its_own_run(tmp_path: Path) -> None:
    first = Server(tmp_path).start()
    first.stop()
    second = Server(tmp_path, admin_key=first.admin_key).start()
    try:
        # /healthz may answer a moment before the server logs that it listens.
        wait_until(lambda: second.log_text().count("listening") == 2, 5, "the second run's listening line")
        assert sum("listening" in line for line in second.log_lines()) == 1
        assert second.log_text().count("listening") == 2  # both runs are in the file
    finally:
        second.stop()


def test_a_server_that_never_answers_is_reported_with_its_stacks(tmp_path: Path) -> None:
    server = Server(tmp_path, flags=["--port", str(free_port())])  # listens where the runner does not look
    with pytest.raises(ServerError) as raised:
        server.start(timeout=3)
    message = str(raised.value)
    assert "did not answer /healthz within 3 s" in message and f"port {server.port} listening: no" in message
    assert "most recent call first" in message, "faulthandler's stacks (SIGABRT) are not in the report"
    assert server.crashed() is not None
