"""Where the benchmarks are, where they keep their work, and the repository they measure."""

from __future__ import annotations

from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parents[1]
ROOT = BENCH_DIR.parent
WORK_DIR = BENCH_DIR / ".work"  # the load generator's packages, cached databases (gitignored)
