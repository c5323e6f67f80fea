"""What every benchmark's command line shares: argument types, progress on stderr, giving up on a set-up
that cannot work, and the error that ends one run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

# Lines of a process's output (the server's log, the load generator's stderr) kept in the results:
# the temporary folders they were written to are removed at the end.
LOG_LINES_KEPT = 50


class BenchError(Exception):
    """A run or the set-up failed; the message says what and where to look."""


def say(message: str) -> None:
    """A progress line on stderr (stdout carries only results)."""
    print(message, file=sys.stderr, flush=True)


def give_up(message: str) -> NoReturn:
    """Stop before any run: the set-up is incomplete (exit status 2). Named after the bench that runs."""
    say(f"bench/{Path(sys.argv[0]).name}: {message}")
    raise SystemExit(2)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
    return value
