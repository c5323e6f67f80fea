"""Alerts over HTTP: what fires now, the history, acknowledging and silencing (docs/protocol.md, alerts)."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException, Path, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool

from pulsewire.app.access import AdminDep, ReaderDep
from pulsewire.app.services import AlertingDep, ReadsDep, SettingsDep
from pulsewire.http.alerting import ID_PATTERN
from pulsewire.http.responses import ADMIN, READ, answers
from pulsewire.http.timeparse import TIME_SCHEMA, parse_time
from pulsewire.protocol.rules import MAX_TS, STORED_DEVICE_ID_PATTERN

log = logging.getLogger("pulsewire.alerts")

router = APIRouter(tags=["alerts"])

AlertId = Annotated[int, Path(ge=1, le=2**31 - 1, description="Alert id")]


class AlertOut(BaseModel):
    id: int
    rule: str = Field(description="The rule's id.")
    rule_name: str = Field(description="The rule's name when the alert fired.")
    severity: str = Field(description="info, warning or critical")
    device: str
    metric: str | None = Field(description="null for a no_data rule on the whole device.")
    state: Literal["firing", "resolved"]
    since: int = Field(description="Start of the episode (ms): the first reading that met the condition.")
    value: float | None = Field(description="The value that fired it (or of its last repeat); null for no-data.")
    ts: int = Field(description="ms of the last reading behind the alert (the server clock for no-data).")
    resolved_at: int | None
    acked: bool
    acked_at: int | None
    silenced_until: int | None = Field(description="Notifications for this rule and device held back until then.")


class AlertsOut(BaseModel):
    alerts: list[AlertOut]


class NotificationOut(BaseModel):
    id: int
    channel: str
    event: str = Field(description="firing, repeat or resolved")
    key: str = Field(description="The idempotency key every attempt carries.")
    status: Literal["pending", "sent", "failed"]
    attempts: int
    created_at: int
    next_at: int | None = Field(description="When a pending notification is tried next.")
    done_at: int | None = Field(description="When it was delivered, or given up on.")
    last_error: str | None = Field(description="What the last failed attempt got.")


class NotificationsOut(BaseModel):
    notifications: list[NotificationOut]


class AckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    until: int | None = Field(
        None, ge=0, le=MAX_TS, description="Also hold back every notification of this rule and device until then (ms)."
    )

    @field_validator("until", mode="before")
    @classmethod
    def _a_number(cls, value: object) -> object:
        # JSON has numbers, not ints: 5.0 is the integer 5, as JSON Schema says; true and "5" are not numbers.
        if isinstance(value, bool) or not isinstance(value, (int, float, type(None))):
            raise ValueError("expected milliseconds since the epoch (a whole number)")
        return value


@router.get(
    "/api/alerts",
    response_model=AlertsOut,
    dependencies=[ReaderDep],
    summary="Alerts firing now (state=firing), or the history of a time range",
    responses=answers(400, *READ),
)
def list_alerts(
    reads: ReadsDep,
    settings: SettingsDep,
    state: Annotated[
        Literal["firing"] | None,
        Query(description="firing: the alerts firing now (start and end are then checked but not used)."),
    ] = None,
    start: Annotated[
        str | None,
        Query(
            description="History: episodes still going at or after this (ms or ISO 8601).",
            json_schema_extra=TIME_SCHEMA,
        ),
    ] = None,
    end: Annotated[
        str | None, Query(description="History: episodes begun at or before this.", json_schema_extra=TIME_SCHEMA)
    ] = None,
    device: Annotated[str | None, Query(pattern=STORED_DEVICE_ID_PATTERN, description="Only this device.")] = None,
    rule: Annotated[str | None, Query(pattern=ID_PATTERN, description="Only this rule.")] = None,
    limit: Annotated[
        int | None,
        Query(description="Most alerts, newest first (default query_default_limit, at most query_max_limit)."),
    ] = None,
) -> dict[str, Any]:
    if limit is None:
        limit = settings.query_default_limit
    if not 1 <= limit <= settings.query_max_limit:
        raise HTTPException(400, f"limit: {limit} is out of range 1..{settings.query_max_limit}")
    try:
        lo = parse_time(start, "start") if start is not None else 0
        hi = parse_time(end, "end") if end is not None else MAX_TS
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    if lo > hi:
        raise HTTPException(400, f"start ({lo}) is after end ({hi})")
    if state == "firing":
        found = [
            a
            for a in reads.firing_alerts()
            if (device is None or a["device"] == device) and (rule is None or a["rule"] == rule)
        ]
        return {"alerts": found[:limit]}
    return {"alerts": reads.alert_history(lo, hi, limit, device, rule)}


@router.post(
    "/api/alerts/{alert_id}/ack",
    response_model=AlertOut,
    dependencies=[AdminDep],
    summary="Acknowledge an alert (its repeats stop); with until, silence its rule on its device",
    responses=answers(400, *ADMIN, 503, words={404: "no such alert"}),
)
async def acknowledge(
    alert_id: AlertId, alerting: AlertingDep, body: Annotated[AckIn | None, Body()] = None
) -> dict[str, Any]:
    until = body.until if body is not None else None
    alert = await alerting.acknowledge(alert_id, until)
    if alert is None:
        raise HTTPException(404, f"no alert {alert_id}")
    log.info("alert acknowledged", extra={"alert": alert_id, "until": until})
    return alert


@router.get(
    "/api/alerts/{alert_id}/notifications",
    response_model=NotificationsOut,
    dependencies=[AdminDep],
    summary="The notifications of an alert: sent, pending (when next) or failed (why)",
    responses=answers(400, *ADMIN, 503, words={404: "no such alert"}),
)
async def notifications(alert_id: AlertId, reads: ReadsDep) -> dict[str, Any]:
    found = await run_in_threadpool(reads.notifications, alert_id)
    if found is None:
        raise HTTPException(404, f"no alert {alert_id}")
    return {"notifications": found}
