"""Live-channel codec: the messages of docs/protocol.md section 2, with no I/O.

The server sends `snapshot`, `telemetry`, `status`, `alert`, `rollout` and `error`; a client sends `subscribe`.
Encoders return the JSON text that goes on the wire, so the hub encodes each message once and
shares it between clients.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

ERR_INVALID = "invalid"


class SubscribeError(Exception):
    """A client message that is not a valid `subscribe`; answered with an `error`, the connection stays."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True, slots=True)
class DeviceState:
    """One device as a snapshot shows it."""

    id: str
    name: str
    online: bool
    last_seen: int | None
    latest: Mapping[str, tuple[int, float | bool]]  # metric -> (ts, value)


def _text(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()


def snapshot(devices: Iterable[DeviceState]) -> str:
    return _text(
        {
            "type": "snapshot",
            "devices": [
                {
                    "id": d.id,
                    "name": d.name,
                    "online": d.online,
                    "last_seen": d.last_seen,
                    "latest": {m: {"ts": ts, "value": v} for m, (ts, v) in d.latest.items()},
                }
                for d in devices
            ],
        }
    )


def telemetry(device_id: str, data: list[dict[str, Any]]) -> str:
    """Readings as the device sent them (validated: ts and values only)."""
    return _text({"type": "telemetry", "device": device_id, "data": data})


def status(device_id: str, online: bool, ts: int) -> str:
    return _text({"type": "status", "device": device_id, "online": online, "ts": ts})


def alert(event: str, alert: Mapping[str, Any]) -> str:
    """An alert fired, repeated, resolved or was acknowledged (docs/protocol.md, alerts)."""
    return _text({"type": "alert", "event": event, "alert": dict(alert)})


def rollout(summary: Mapping[str, Any], device: Mapping[str, Any] | None) -> str:
    """A rollout's progress (docs/fleet.md): its summary, and the device whose step moved (None:
    the rollout's own state changed)."""
    return _text({"type": "rollout", "rollout": dict(summary), "device": None if device is None else dict(device)})


def error(code: str, detail: str) -> str:
    return _text({"type": "error", "code": code, "detail": detail})


def decode_subscribe(text: str | None) -> list[str] | None:
    """The device ids of a `subscribe` message; None (or an empty list) means every device.

    `text` is None for a binary frame. Raises `SubscribeError`.
    """
    try:
        msg = orjson.loads(text) if text is not None else None
    except orjson.JSONDecodeError:
        msg = None
    if not isinstance(msg, dict) or msg.get("type") != "subscribe":
        raise SubscribeError('expected {"type":"subscribe","devices":[...]}')
    ids = msg.get("devices")
    if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
        raise SubscribeError("devices: expected a list of device ids")
    return ids
