"""HTTP request and response bodies (separate from the tables and from the device wire codec)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

from pulsewire.protocol.rules import DEVICE_ID_PATTERN, STORED_DEVICE_ID_PATTERN

# Any registered id, also "." or ".." that older versions took (sent as %2E%2E), so those can be removed.
DeviceId = Annotated[str, Path(pattern=STORED_DEVICE_ID_PATTERN, description="Device id")]


class DeviceIn(BaseModel):
    # The id rule has a lookahead (not "." or ".."), which pydantic's default regex engine lacks.
    model_config = ConfigDict(extra="forbid", regex_engine="python-re")
    id: str = Field(pattern=DEVICE_ID_PATTERN, description="Device id: letters, digits, _ . - (1-64), but not . or ..")
    name: str | None = Field(None, max_length=200, description="Display name; defaults to the id.")


class DeviceOut(BaseModel):
    id: str
    name: str
    online: bool
    last_seen: int | None = Field(description="Server time (epoch ms) the device was last heard from.")
    fw: str | None = Field(description="Firmware version from the device's last hello.")
    interval_ms: int = Field(
        description="Sampling interval the device gets in welcome, ms: its own (set_interval) or the server default."
    )
    metrics: list[str]
    created_at: int


class DeviceWithToken(DeviceOut):
    token: str = Field(description="Device token. Shown only in this response; stored hashed.")


class PointOut(BaseModel):
    ts: int
    value: float | bool | None


class RemovedOut(BaseModel):
    id: str
    purged_readings: int


class CommandIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(description="Command: reboot or set_interval.")
    args: dict[str, Any] | None = Field(
        None, description='Arguments: set_interval takes {"ms": <int>}; reboot takes none.'
    )


class CommandResultOut(BaseModel):
    """The device answered (200)."""

    id: str = Field(description="Command id the server gave the command.")
    name: str
    ok: bool = Field(description="The device's outcome: true when it carried the command out.")
    detail: str | None = Field(description="The device's own words, if any.")


class CommandAcceptedOut(BaseModel):
    """Nothing to wait for (202): sent without waiting (wait=0), or stored for the next connection."""

    id: str | None = Field(description="Command id; null when nothing was sent (status queued).")
    name: str
    status: Literal["sent", "queued"]
    detail: str | None = None
