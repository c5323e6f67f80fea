"""Stored readings over HTTP: raw or aggregated per bucket in the database, as JSON or streamed CSV."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from typing import Annotated, cast

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import AfterValidator
from pydantic_core import PydanticCustomError
from starlette.concurrency import run_in_threadpool

from pulsewire.app.access import ReaderDep
from pulsewire.app.services import ReadsDep, SettingsDep
from pulsewire.http.errors import no_device
from pulsewire.http.responses import READ, answers
from pulsewire.http.schemas import DeviceId, PointOut
from pulsewire.http.timeparse import TIME_SCHEMA, parse_time
from pulsewire.protocol.rules import MAX_TS, METRIC_NAME, NAME_CHARS
from pulsewire.settings import Settings
from pulsewire.storage.layout import RESOLUTIONS
from pulsewire.storage.queries import AGGREGATES, Agg, Answer, Order, Point, TelemetryQuery
from pulsewire.storage.reads import Reads

RESOLUTION_HEADER = "X-Pulsewire-Resolution"
EXACT_HEADER = "X-Pulsewire-Exact"

router = APIRouter(prefix="/api/devices", tags=["telemetry"], dependencies=[ReaderDep])


_ONE_OF = ", ".join(f"'{a}'" for a in AGGREGATES[:-1]) + f" or '{AGGREGATES[-1]}'"


def parse_aggs(text: str) -> tuple[Agg, ...]:
    """`avg,min,max` -> ("avg", "min", "max"). Raises ValueError saying what is wrong with the list."""
    items = text.split(",")
    if len(items) == 1 and text not in AGGREGATES:
        raise ValueError(f"Input should be {_ONE_OF}")  # one name: the answer it always had
    seen: list[Agg] = []
    for n, item in enumerate(items, start=1):
        if not item:
            raise ValueError(f"item {n} of {text!r} is empty; give names separated by single commas")
        if item not in AGGREGATES:
            raise ValueError(f"{item!r} (item {n}) should be {_ONE_OF}")
        if item in seen:
            raise ValueError(f"{item!r} is asked for twice; give each aggregate once")
        seen.append(cast(Agg, item))
    return tuple(seen)


def _checked_aggs(text: str | None) -> str | None:
    """The query parameter, checked with parse_aggs: its message becomes the 400's detail, after `agg: `.

    Checked while FastAPI reads the parameters, so it is reported together with their other
    problems, as when `agg` was a single name."""
    try:
        if text is not None:
            parse_aggs(text)
    except ValueError as exc:
        raise PydanticCustomError("agg", "{problem}", {"problem": str(exc)}) from None
    return text


_AGG = "(?:" + "|".join(AGGREGATES) + ")"
# Each aggregate at most once: no name that comes again after a comma.
AGG_LIST = rf"^(?!(?:.*,)?({_AGG}),(?:.*,)?\1(?:,|$)){_AGG}(?:,{_AGG}){{0,{len(AGGREGATES) - 1}}}$"
KEYS = rf"^$|^ *{NAME_CHARS} *(?:, *{NAME_CHARS} *)*$"
_KEYS = re.compile(KEYS)
# An epoch-ms integer or an ISO 8601 time (http/timeparse.py), as OpenAPI states it.


@dataclass
class TelemetryParams:
    """The query parameters shared by /telemetry and /telemetry.csv.

    Some are checked here rather than by FastAPI, for refusals in their own words; their OpenAPI
    schema (json_schema_extra) states the same rule. `limit`'s bounds come from the settings
    (http/openapi_doc.py)."""

    keys: Annotated[
        str | None,
        Query(
            description="Comma-separated metric names; default: every metric of the device.",
            json_schema_extra={"pattern": KEYS},
        ),
    ] = None
    start: Annotated[
        str | None,
        Query(
            description="Earliest ts, inclusive: epoch ms or ISO 8601. Default: the beginning.",
            json_schema_extra=TIME_SCHEMA,
        ),
    ] = None
    end: Annotated[
        str | None,
        Query(
            description="Latest ts, inclusive: epoch ms or ISO 8601. Default: no bound.", json_schema_extra=TIME_SCHEMA
        ),
    ] = None
    limit: Annotated[int | None, Query(description="Most points per metric (default 1000, at most 100000).")] = None
    order: Annotated[Order, Query(description="asc: oldest first; desc: newest first.")] = "desc"
    interval: Annotated[
        int | None, Query(ge=1, le=MAX_TS, description="Bucket width in ms; with it, one value per bucket.")
    ] = None
    agg: Annotated[
        str | None,
        Query(
            description="Aggregate(s) per bucket, comma-separated, each at most once: avg, min, max, sum, count "
            "(default avg when interval is given). With several, each point has one field per aggregate.",
            json_schema_extra={"pattern": AGG_LIST},
        ),
        AfterValidator(_checked_aggs),
    ] = None


Params = Annotated[TelemetryParams, Depends()]
# `key` is the read key, when the server has one.
PARAMS = {f.name for f in fields(TelemetryParams)} | {"key"}


def _plan(
    request: Request, reads: Reads, settings: Settings, device_id: str, p: TelemetryParams
) -> tuple[dict[str, int], TelemetryQuery]:
    """Check every parameter and resolve the series, so a streamed answer never fails half-way."""
    unknown = sorted(set(request.query_params) - PARAMS)
    if unknown:
        raise HTTPException(
            400, f"unknown query parameter(s): {', '.join(unknown)}; known: {', '.join(sorted(PARAMS - {'key'}))}"
        )
    try:
        lo = parse_time(p.start, "start") if p.start is not None else 0
        hi = parse_time(p.end, "end") if p.end is not None else MAX_TS
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    if lo > hi:
        raise HTTPException(400, f"start ({lo}) is after end ({hi})")
    limit = settings.query_default_limit if p.limit is None else p.limit
    if not 1 <= limit <= settings.query_max_limit:
        raise HTTPException(400, f"limit: {limit} is out of range 1..{settings.query_max_limit}")
    if p.agg is not None and p.interval is None:
        raise HTTPException(400, "agg needs interval (bucket width in ms)")
    wanted = _wanted_keys(p.keys) if p.keys else None
    known = reads.series_of(device_id)
    if known is None:
        raise no_device(device_id)
    if wanted is None:
        chosen = dict(sorted(known.items()))
    else:
        missing = [k for k in wanted if k not in known]
        if missing:
            have = ", ".join(sorted(known)) or "none yet"
            raise HTTPException(404, f"device {device_id!r} has no metric {', '.join(missing)} (it has: {have})")
        chosen = {k: known[k] for k in dict.fromkeys(wanted)}
    aggs = parse_aggs(p.agg or "avg") if p.interval else None
    query = TelemetryQuery(start=lo, end=hi, limit=limit, order=p.order, interval=p.interval, agg=aggs)
    return chosen, query


def _wanted_keys(text: str) -> list[str]:
    if not _KEYS.fullmatch(text):
        items = [k.strip(" ") for k in text.split(",")]
        bad = [k for k in items if k and not METRIC_NAME.match(k)]
        if bad:
            raise HTTPException(400, f"keys: bad metric name(s) {bad!r}")
        if not any(items):
            raise HTTPException(400, "keys: empty list")
        raise HTTPException(400, f"keys: {text[:80]!r} has an empty item; separate names with single commas")
    return [k.strip(" ") for k in text.split(",")]


def _fields(query: TelemetryQuery) -> tuple[str, ...]:
    """The names of a point's values: `value`, or with several aggregates one field per aggregate."""
    aggs = query.aggs
    return aggs if len(aggs) > 1 else ("value",)


@router.get(
    "/{device_id}/telemetry",
    response_class=Response,
    responses={
        200: {
            "model": dict[str, list[PointOut]],
            "description": "metric -> points: {ts, value}, or {ts, <agg1>, <agg2>, ...} with several aggregates",
        },
        **answers(400, *READ, words={404: "no such device, or a metric in `keys` it has no readings for"}),
    },
    summary="Stored readings, raw or aggregated per interval",
)
def telemetry(
    request: Request, reads: ReadsDep, settings: SettingsDep, device_id: DeviceId, params: Params
) -> Response:
    chosen, query = _plan(request, reads, settings, device_id, params)
    names = ("ts", *_fields(query))
    answers = reads.series(chosen, query)
    out = {
        metric: [dict(zip(names, point, strict=True)) for point in answer.points] for metric, answer in answers.items()
    }
    return Response(orjson.dumps(out), media_type="application/json", headers=served_headers(answers.values()))


def served_headers(answers: Iterable[Answer]) -> dict[str, str]:
    """Which resolutions held the answer, coarsest first, and whether every bucket is exact (docs/protocol.md)."""
    answers = list(answers)
    used = {name for a in answers for name in a.served}
    names = [r.name for r in reversed(RESOLUTIONS) if r.name in used] or ["raw"]
    headers = {RESOLUTION_HEADER: ",".join(names)}
    if not all(a.exact for a in answers):
        headers[EXACT_HEADER] = "false"
    return headers


def _csv_rows(query: TelemetryQuery, chunks: Iterator[tuple[str, list[Point]]]) -> Iterator[bytes]:
    yield ",".join(("metric", "ts", *_fields(query))).encode() + b"\r\n"
    for metric, chunk in chunks:
        yield "".join(_csv_line(metric, point) for point in chunk).encode()


def _csv_line(metric: str, point: Point) -> str:
    ts, *values = point
    return ",".join((metric, str(ts), *map(_csv_value, values))) + "\r\n"


def _csv_value(value: float | int | bool | None) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, float) else str(value)


@router.get(
    "/{device_id}/telemetry.csv",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/csv": {}},
            "description": "metric,ts,value rows (metric,ts,<agg>,... with several aggregates), streamed",
        },
        **answers(400, *READ, words={404: "no such device, or a metric in `keys` it has no readings for"}),
    },
    summary="The same rows as /telemetry, as CSV, streamed",
)
async def telemetry_csv(
    request: Request, reads: ReadsDep, settings: SettingsDep, device_id: DeviceId, params: Params
) -> StreamingResponse:
    chosen, query = await run_in_threadpool(_plan, request, reads, settings, device_id, params)
    if query.interval is None:  # raw readings stream from the database as they are sent
        rows, headers = reads.stream_raw(chosen, query), served_headers([])
    else:  # buckets are few (at most `limit` per metric): computed first, so the headers can say how
        answers = await run_in_threadpool(reads.series, chosen, query)
        rows, headers = ((metric, a.points) for metric, a in answers.items()), served_headers(answers.values())
    return StreamingResponse(
        _csv_rows(query, rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{device_id}-telemetry.csv"', **headers},
    )
