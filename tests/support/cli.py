"""Running the `pulsewire` command as a user would."""

from __future__ import annotations

import os
import subprocess
import sys


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """Run `pulsewire ARGS...` with a clean environment (no PULSEWIRE_* of the caller's)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PULSEWIRE_")}
    return subprocess.run(
        [sys.executable, "-m", "pulsewire", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**clean, **(env or {})},
    )
