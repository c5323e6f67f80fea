"""HTTP request and response bodies (separate from the tables and from the device wire codec)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, field_validator

from pulsewire.protocol.rules import (
    CMD_REBOOT,
    CMD_SET_INTERVAL,
    COMMANDS,
    DEVICE_ID_PATTERN,
    MAX_INTERVAL_MS,
    MIN_INTERVAL_MS,
    STORED_DEVICE_ID_PATTERN,
)

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


def _one_schema_per_command(schema: dict[str, Any]) -> None:
    """The body as command_args checks it: each command with its own `args`.

    The model itself takes any name and object, so that command_args words every refusal."""
    no_args = {"anyOf": [{"type": "null"}, {"type": "object", "maxProperties": 0}]}
    interval = {
        "type": "object",
        "properties": {"ms": {"type": "integer", "minimum": MIN_INTERVAL_MS, "maximum": MAX_INTERVAL_MS}},
        "required": ["ms"],
        "additionalProperties": False,
    }
    args = {CMD_REBOOT: no_args, CMD_SET_INTERVAL: interval}
    schema["properties"]["name"] = {"enum": list(COMMANDS), "description": "Command: reboot or set_interval."}
    schema["properties"]["args"] = {"description": schema["properties"]["args"]["description"]}
    schema["oneOf"] = [
        {
            "type": "object",
            "properties": {"name": {"const": name}, "args": args[name]},
            "required": ["name", "args"] if name == CMD_SET_INTERVAL else ["name"],
            "additionalProperties": False,
        }
        for name in COMMANDS
    ]


class CommandIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_one_schema_per_command)
    name: str = Field(description="Command: reboot or set_interval.")
    args: dict[str, Any] | None = Field(
        None, description='Arguments: set_interval takes {"ms": <int>}; reboot takes none.'
    )

    @field_validator("args")
    @classmethod
    def _whole_numbers_as_integers(cls, args: dict[str, Any] | None) -> dict[str, Any] | None:
        """JSON has one kind of number: `1000.0` is the integer 1000, as JSON Schema counts it."""
        if not args:
            return args
        return {k: int(v) if type(v) is float and v.is_integer() else v for k, v in args.items()}


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
