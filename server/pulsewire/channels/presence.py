"""Which devices are connected now, and the handles to talk to and close each connection."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from pulsewire.protocol.device import Result

Closer = Callable[[int, str], Awaitable[None]]
Sender = Callable[[str], Awaitable[None]]


@dataclass(eq=False, slots=True)
class PendingCommand:
    """A command sent on a connection whose `result` has not arrived yet (see pulsewire.channels.commands)."""

    id: str
    name: str
    args: dict[str, Any]
    answer: asyncio.Future[Result] = field(repr=False)


@dataclass(eq=False, slots=True)
class Connection:
    device_id: str
    close: Closer = field(repr=False)
    send: Sender = field(repr=False)
    # Set once the device said hello and got its welcome (it takes commands from then on), and
    # also when the connection ends, with `ended` True, so nobody waits for a hello that never comes.
    ready: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    ended: bool = False
    # Commands sent on this connection still waiting for their result, by id, oldest first.
    commands: dict[str, PendingCommand] = field(default_factory=dict, repr=False)


class Presence:
    def __init__(self) -> None:
        self._current: dict[str, Connection] = {}

    def arrive(self, conn: Connection) -> Connection | None:
        """Make `conn` the device's connection; returns the one it replaces, if any."""
        previous = self._current.get(conn.device_id)
        self._current[conn.device_id] = conn
        return previous

    def leave(self, conn: Connection) -> bool:
        """Forget `conn`; True when it was still the device's current connection (so it is now offline)."""
        if self._current.get(conn.device_id) is conn:
            del self._current[conn.device_id]
            return True
        return False

    def is_online(self, device_id: str) -> bool:
        return device_id in self._current

    def get(self, device_id: str) -> Connection | None:
        return self._current.get(device_id)

    def __len__(self) -> int:
        return len(self._current)
