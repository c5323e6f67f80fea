"""Which devices are connected now, and the handles to talk to and close each connection.

In a cluster (cluster/node.py) a device may be connected to another instance: `remote` mirrors
which instance holds each such device, from what the instances tell each other, so that a
listing says it is online and a command knows where to go, without asking Redis each time.
"""

from __future__ import annotations

import asyncio
import secrets
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
    # Tells this connection from the device's others across a cluster.
    nonce: str = field(default_factory=lambda: secrets.token_hex(8))
    # In a cluster: the connection it replaced ("<instance>:<nonce>", from the registry), and
    # whether a newer one elsewhere replaced it (then its end does not make the device offline).
    replaced: str | None = None
    moved: bool = False


class Presence:
    def __init__(self) -> None:
        self._current: dict[str, Connection] = {}
        self._remote: dict[str, str] = {}  # device id -> the other instance that holds it

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
        return device_id in self._current or device_id in self._remote

    def held_by(self, device_id: str) -> str | None:
        """The other instance that holds the device, if another does."""
        return self._remote.get(device_id)

    def hold_remote(self, device_id: str, instance: str) -> None:
        self._remote[device_id] = instance

    def drop_remote(self, device_id: str, instance: str) -> bool:
        """`instance` no longer holds the device; True when the mirror had it there."""
        if self._remote.get(device_id) == instance:
            del self._remote[device_id]
            return True
        return False

    def mirror(self, remote: dict[str, str]) -> None:
        """Every device held elsewhere, as the cluster's registry has it now."""
        self._remote = dict(remote)

    def forget_remote(self, device_id: str) -> None:
        """The device is connected here now."""
        self._remote.pop(device_id, None)

    def drop_instance(self, instance: str) -> list[str]:
        """Forget every device `instance` held (it left or died); returns them."""
        gone = [device_id for device_id, holder in self._remote.items() if holder == instance]
        for device_id in gone:
            del self._remote[device_id]
        return gone

    def local(self) -> list[Connection]:
        return list(self._current.values())

    def get(self, device_id: str) -> Connection | None:
        return self._current.get(device_id)

    def __len__(self) -> int:
        return len(self._current)
