"""HTTP request and response bodies (separate from the tables and from the device wire codec)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"


class DeviceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=ID_PATTERN, description="Device id: letters, digits, _ . - (1-64).")
    name: str | None = Field(None, max_length=200, description="Display name; defaults to the id.")


class DeviceOut(BaseModel):
    id: str
    name: str
    online: bool
    last_seen: int | None = Field(description="Server time (epoch ms) the device was last heard from.")
    fw: str | None = Field(description="Firmware version from the device's last hello.")
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
