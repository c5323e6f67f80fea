"""What the benchmarks do as a device: open the device channel and say hello, with enough open files."""

from __future__ import annotations

import asyncio
import json
import resource
from typing import Any

from harness.cli import BenchError
from pulsewire.protocol.device import SUBPROTOCOL


async def open_device(url: str, token: str, fw: str, timeout_s: float = 30, **options: Any) -> Any:
    """One device: handshake with its token, hello, welcome (docs/protocol.md section 1); the open connection.

    `options` go to websockets' `connect` (ping_interval=None for idle devices, max_size, ...).
    """
    from websockets.asyncio.client import connect
    from websockets.typing import Subprotocol

    ws = await connect(
        url,
        additional_headers={"Authorization": f"Bearer {token}"},
        subprotocols=[Subprotocol(SUBPROTOCOL)],
        compression=None,  # the server does not offer per-message deflate
        proxy=None,  # never through a proxy from the environment
        open_timeout=timeout_s,
        **options,
    )
    try:
        await ws.send(json.dumps({"type": "hello", "fw": fw, "uptime": 1}))
        welcome = json.loads(await asyncio.wait_for(ws.recv(), timeout_s))
        if welcome.get("type") != "welcome":
            raise BenchError(f"expected welcome after hello, got {welcome}")
    except BaseException:
        await ws.close()
        raise
    return ws


def raise_open_files_limit(needed: int) -> int:
    """Soft RLIMIT_NOFILE up to the hard limit (inherited by the server and the client processes).

    Raises BenchError when even the hard limit is below `needed`.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise BenchError(
            f"{needed:,} open files needed per process for these connections, but the hard limit is {hard:,} "
            "(`ulimit -Hn`): raise it (e.g. in /etc/security/limits.conf, or `ulimit -Hn` as root) or ask for "
            "fewer connections"
        )
    return hard
