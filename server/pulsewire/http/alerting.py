"""Alert rules and notification channels over HTTP (docs/protocol.md, alerts; docs/alerts.md).

Bodies are checked by the pure cores (`parse_rule`, `parse_channel`), whose `detail` is the 400's.
The request-body schemas in OpenAPI describe the same bodies for readers and generators; where
they cannot say everything (what a URL, an address or a name may hold), the cores decide.
"""

from __future__ import annotations

import logging
import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Path
from pydantic import BaseModel, Field

from pulsewire.alerts.channels import MAX_RECIPIENTS, MAX_SECRET, MAX_URL, MIN_SECRET, ChannelError, parse_channel
from pulsewire.alerts.channels import channel_to_json as channel_json
from pulsewire.alerts.deliver import Notice, deliver
from pulsewire.alerts.names import MAX_NAME
from pulsewire.alerts.rules import (
    ANY_DEVICE,
    BANDS,
    COMPARISONS,
    MAX_CHANNELS,
    MAX_DURATION_S,
    SEVERITIES,
    Rule,
    RuleError,
    parse_rule,
    rule_to_json,
)
from pulsewire.alerts.webhook import idempotency_key
from pulsewire.app.access import AdminDep, ReaderDep
from pulsewire.app.services import AlertingDep, HttpClientDep, ReadsDep, SettingsDep, WriterDep
from pulsewire.clock import now_ms
from pulsewire.http.responses import ADMIN, READ, answers
from pulsewire.protocol.rules import DEVICE_ID_PATTERN, NAME_CHARS
from pulsewire.storage import alerting as store

log = logging.getLogger("pulsewire.alerting")

router = APIRouter(tags=["alerts"])

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"  # what `parse_rule` takes as a channel id; ids are made here
RuleId = Annotated[str, Path(pattern=ID_PATTERN, description="Rule id")]
ChannelId = Annotated[str, Path(pattern=ID_PATTERN, description="Channel id")]


class RuleOut(BaseModel):
    id: str
    name: str
    kind: str = Field(description="threshold or no_data")
    device: str = Field(description='A device id, or "*" for every device.')
    metric: str | None = Field(description="null only for a no_data rule on the whole device.")
    op: str | None = Field(None, description="Threshold rules: >, >=, <, <=, outside or inside.")
    value: float | None = Field(None, description="With a comparison op.")
    low: float | None = Field(None, description="With a band op.")
    high: float | None = Field(None, description="With a band op.")
    for_s: int
    repeat_s: int
    severity: str
    channels: list[str]
    created_ms: int
    updated_ms: int


class ChannelOut(BaseModel):
    id: str
    name: str
    type: str = Field(description="webhook or email")
    url: str | None = Field(None, description="Webhook channels. The secret is never shown.")
    to: list[str] | None = Field(None, description="Email channels: the recipients.")
    created_ms: int


class CreatedOut(BaseModel):
    id: str


class DeletedOut(BaseModel):
    id: str


class TestOut(BaseModel):
    delivered: bool = Field(description="The receiver took it: a 2xx webhook answer, or the SMTP server's 250.")
    status: int | None = Field(description="The HTTP status or SMTP reply code; null when there was no answer.")
    detail: str = Field(description="What happened, in one line.")


def _name_schema() -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": MAX_NAME, "description": "Plain text on one line."}


def _rule_schema() -> dict[str, Any]:
    duration = {"type": "integer", "minimum": 0, "maximum": MAX_DURATION_S, "default": 0}
    common: dict[str, Any] = {
        "name": _name_schema(),
        "device": {"anyOf": [{"type": "string", "pattern": DEVICE_ID_PATTERN}, {"const": "*"}]},
        "metric": {"type": "string", "pattern": f"^{NAME_CHARS}$"},
        "for_s": duration,
        "repeat_s": duration,
        "severity": {"enum": list(SEVERITIES)},
        "channels": {
            "type": "array",
            "maxItems": MAX_CHANNELS,
            "uniqueItems": True,
            "items": {"type": "string", "pattern": ID_PATTERN},
        },
    }
    required = ["name", "kind", "device", "severity"]

    def kind(name: str, extra: dict[str, Any], needs: list[str]) -> dict[str, Any]:
        props = {**common, "kind": {"const": name}, **extra}
        return {"type": "object", "properties": props, "required": required + needs, "additionalProperties": False}

    number = {"type": "number"}
    return {
        "oneOf": [
            kind("threshold", {"op": {"enum": list(COMPARISONS)}, "value": number}, ["metric", "op", "value"]),
            kind(
                "threshold",
                {"op": {"enum": list(BANDS)}, "low": number, "high": number},
                ["metric", "op", "low", "high"],
            ),
            kind("no_data", {"metric": {"anyOf": [common["metric"], {"type": "null"}]}}, ["metric"]),
        ]
    }


def _channel_schema() -> dict[str, Any]:
    def kind(props: dict[str, Any]) -> dict[str, Any]:
        props = {"name": _name_schema(), **props}
        return {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}

    return {
        "oneOf": [
            kind(
                {
                    "type": {"const": "webhook"},
                    "url": {"type": "string", "format": "uri", "maxLength": MAX_URL},
                    "secret": {"type": "string", "minLength": MIN_SECRET, "maxLength": MAX_SECRET},
                }
            ),
            kind(
                {
                    "type": {"const": "email"},
                    "to": {
                        "type": "array",
                        "minItems": 1,
                        "maxItems": MAX_RECIPIENTS,
                        "items": {"type": "string", "format": "email"},
                    },
                }
            ),
        ]
    }


def _body_doc(schema: dict[str, Any]) -> dict[str, Any]:
    return {"requestBody": {"content": {"application/json": {"schema": schema}}}}


RawBody = Annotated[Any, Body()]

# --- channels -------------------------------------------------------------------------------------


def _channel_out(stored: store.StoredChannel) -> ChannelOut:
    return ChannelOut(id=stored.id, created_ms=stored.created_ms, **channel_json(stored.channel))


@router.post(
    "/api/channels",
    status_code=201,
    response_model=CreatedOut,
    dependencies=[AdminDep],
    summary="Add a notification channel (a webhook or an email)",
    responses=answers(400, *ADMIN, 503),
    openapi_extra=_body_doc(_channel_schema()),
)
async def add_channel(body: RawBody, writer: WriterDep) -> CreatedOut:
    try:
        channel = parse_channel(body)
    except ChannelError as exc:
        raise HTTPException(400, exc.detail) from None
    channel_id = "ch_" + secrets.token_hex(8)
    await writer.call(store.add_channel(channel_id, channel, now_ms()))
    log.info("alert channel added", extra={"channel": channel_id, "type": channel.kind})
    return CreatedOut(id=channel_id)


@router.get(
    "/api/channels",
    response_model=list[ChannelOut],
    response_model_exclude_none=True,
    dependencies=[AdminDep],
    summary="Every notification channel (secrets are never shown)",
    responses=answers(*ADMIN, 503),
)
def list_channels(reads: ReadsDep) -> list[ChannelOut]:
    return [_channel_out(stored) for stored in reads.channels()]


@router.delete(
    "/api/channels/{channel_id}",
    response_model=DeletedOut,
    dependencies=[AdminDep],
    summary="Delete a channel that no rule names",
    responses=answers(400, *ADMIN, 503, words={404: "no such channel", 409: "rules still name the channel"}),
)
async def delete_channel(channel_id: ChannelId, writer: WriterDep) -> DeletedOut:
    try:
        await writer.call(store.delete_channel(channel_id))
    except store.ChannelNotFound:
        raise HTTPException(404, f"no channel {channel_id!r}") from None
    except store.ChannelInUse as exc:
        named = ", ".join(exc.rule_ids)
        raise HTTPException(409, f"channel {channel_id!r} is named by rules {named}; change them first") from None
    log.info("alert channel deleted", extra={"channel": channel_id})
    return DeletedOut(id=channel_id)


# The sample a test notification carries: shaped as a real alert and rule, marked as a test by the
# event, alert id 0 (real ids start at 1) and the rule id r_test (real ones are r_ and 16 hex digits).
TEST_ALERT_ID = 0
TEST_RULE_ID = "r_test"


def _test_sample(channel_id: str, now: int) -> tuple[dict[str, Any], dict[str, Any]]:
    rule = {
        "id": TEST_RULE_ID,
        "name": "test notification",
        "kind": "threshold",
        "device": ANY_DEVICE,
        "metric": "temperature",
        "op": ">",
        "value": 30.0,
        "low": None,
        "high": None,
        "for_s": 0,
        "repeat_s": 0,
        "severity": "info",
        "channels": [channel_id],
        "created_ms": now,
        "updated_ms": now,
    }
    alert = {
        "id": TEST_ALERT_ID,
        "rule": TEST_RULE_ID,
        "rule_name": rule["name"],
        "severity": rule["severity"],
        "device": "test-device",
        "metric": "temperature",
        "state": "firing",
        "since": now,
        "value": 31.5,
        "ts": now,
        "resolved_at": None,
        "acked": False,
        "acked_at": None,
        "silenced_until": None,
    }
    return alert, rule


@router.post(
    "/api/channels/{channel_id}/test",
    response_model=TestOut,
    dependencies=[AdminDep],
    summary="Send a test notification through a channel now, and say how it went",
    responses=answers(400, *ADMIN, 503, words={404: "no such channel"}),
)
async def try_channel(channel_id: ChannelId, reads: ReadsDep, settings: SettingsDep, client: HttpClientDep) -> TestOut:
    stored = reads.channel(channel_id)
    if stored is None:
        raise HTTPException(404, f"no channel {channel_id!r}")
    alert, rule = _test_sample(channel_id, now_ms())
    # A fresh key each time (alert-0-test-<random>): a receiver that drops repeated keys still
    # shows every test.
    key = idempotency_key(TEST_ALERT_ID, "test", secrets.randbits(48))
    outcome = await deliver(stored.channel, Notice("test", alert, rule, key), settings, client)
    log.info(
        "alert channel tested",
        extra={
            "channel": channel_id,
            "delivered": outcome.delivered,
            "status": outcome.status,
            "detail": outcome.detail,
        },
    )
    return TestOut(delivered=outcome.delivered, status=outcome.status, detail=outcome.detail)


# --- rules ----------------------------------------------------------------------------------------


def _rule_out(stored: store.StoredRule) -> RuleOut:
    return RuleOut(
        id=stored.id, created_ms=stored.created_ms, updated_ms=stored.updated_ms, **rule_to_json(stored.rule)
    )


def _checked_rule(body: object) -> Rule:
    try:
        return parse_rule(body)
    except RuleError as exc:
        raise HTTPException(400, exc.detail) from None


def _no_rule(rule_id: str) -> HTTPException:
    return HTTPException(404, f"no rule {rule_id!r}")


def _unknown_channels(exc: store.UnknownChannels) -> HTTPException:
    return HTTPException(400, f"channels: no channel {', '.join(repr(c) for c in exc.ids)}")


@router.post(
    "/api/rules",
    status_code=201,
    response_model=RuleOut,
    dependencies=[AdminDep],
    summary="Add an alert rule; it is evaluated from the next reading on",
    responses=answers(400, *ADMIN, 503),
    openapi_extra=_body_doc(_rule_schema()),
)
async def add_rule(body: RawBody, alerting: AlertingDep) -> RuleOut:
    rule = _checked_rule(body)
    rule_id = "r_" + secrets.token_hex(8)
    try:
        stored = await alerting.write_rules(store.add_rule(rule_id, rule, now_ms()))
    except store.UnknownChannels as exc:
        raise _unknown_channels(exc) from None
    log.info("alert rule added", extra={"rule": rule_id})
    return _rule_out(stored)


@router.get(
    "/api/rules",
    response_model=list[RuleOut],
    dependencies=[ReaderDep],
    summary="Every alert rule",
    responses=answers(*READ),
)
def list_rules(reads: ReadsDep) -> list[RuleOut]:
    return [_rule_out(stored) for stored in reads.rules()]


@router.get(
    "/api/rules/{rule_id}",
    response_model=RuleOut,
    dependencies=[ReaderDep],
    summary="One alert rule",
    responses=answers(400, *READ, words={404: "no such rule"}),
)
def get_rule(rule_id: RuleId, reads: ReadsDep) -> RuleOut:
    stored = reads.rule(rule_id)
    if stored is None:
        raise _no_rule(rule_id)
    return _rule_out(stored)


@router.put(
    "/api/rules/{rule_id}",
    response_model=RuleOut,
    dependencies=[AdminDep],
    summary="Replace an alert rule; its pairs start afresh, firing alerts resolve",
    responses=answers(400, *ADMIN, 503, words={404: "no such rule"}),
    openapi_extra=_body_doc(_rule_schema()),
)
async def replace_rule(rule_id: RuleId, body: RawBody, alerting: AlertingDep) -> RuleOut:
    rule = _checked_rule(body)
    try:
        stored = await alerting.write_rules(store.replace_rule(rule_id, rule, now_ms()))
    except store.RuleNotFound:
        raise _no_rule(rule_id) from None
    except store.UnknownChannels as exc:
        raise _unknown_channels(exc) from None
    log.info("alert rule replaced", extra={"rule": rule_id})
    return _rule_out(stored)


@router.delete(
    "/api/rules/{rule_id}",
    response_model=DeletedOut,
    dependencies=[AdminDep],
    summary="Delete an alert rule; its firing alerts resolve",
    responses=answers(400, *ADMIN, 503, words={404: "no such rule"}),
)
async def delete_rule(rule_id: RuleId, alerting: AlertingDep) -> DeletedOut:
    try:
        await alerting.write_rules(store.delete_rule(rule_id))
    except store.RuleNotFound:
        raise _no_rule(rule_id) from None
    log.info("alert rule deleted", extra={"rule": rule_id})
    return DeletedOut(id=rule_id)
