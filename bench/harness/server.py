"""The server under test, as the benchmarks run it: the tests' runner with the benchmarks' defaults, and
what a run reads back from the server's own metrics.

The runner, tests/support/server.py, is the one both the tests and the benchmarks use (why it lives
there: its docstring). Benchmarks are run from a checkout, so the repository root goes on sys.path
here, once, to import it.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

import httpx

from harness.cli import BenchError
from harness.paths import ROOT

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.server import Server, ServerError, free_port  # noqa: E402

__all__ = ["RUN_FAILURES", "Server", "ServerError", "bench_server", "free_port", "summarize_metrics"]

# What ends one run but not the benchmark: its own checks, the runner's, an HTTP call that failed.
RUN_FAILURES = (BenchError, ServerError, httpx.HTTPError)


def bench_server(data_dir: Path, database_url: str | None = None, flags: Sequence[str] = ()) -> Server:
    """A server for one run, not yet started: `flags` go to `pulsewire serve`; it logs warnings and errors
    only, so every line of its log is worth a note in the results."""
    admin_key = "bench-admin-" + secrets.token_hex(16)
    return Server(data_dir, database_url, flags=list(flags), log_level="warning", admin_key=admin_key)


def summarize_metrics(samples: dict[str, float]) -> dict[str, float | None]:
    """The server's own count of what it committed, acked and refused during a run."""

    def get(name: str) -> float:
        return samples.get(name, 0.0)

    commits = get("pulsewire_commit_seconds_count")
    return {
        "committed_readings": get("pulsewire_readings_total"),
        "committed_values": get("pulsewire_values_total"),
        "acked_batches": get("pulsewire_acks_total"),
        "rejects": get("pulsewire_rejects_total"),
        "frame_closes": get("pulsewire_frame_closes_total"),
        "auth_refusals": get("pulsewire_auth_refusals_total"),
        "storage_errors": get("pulsewire_storage_errors_total"),
        "live_clients_dropped": get("pulsewire_live_dropped_clients_total"),
        "group_commits": commits,
        "mean_commit_ms": round(1000 * get("pulsewire_commit_seconds_sum") / commits, 2) if commits else None,
        "mean_batches_per_commit": round(get("pulsewire_group_batches_sum") / commits, 1) if commits else None,
    }
