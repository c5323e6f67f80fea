"""Commands to devices over HTTP: `POST /api/devices/{id}/commands` (docs/protocol.md section 3)."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response
from starlette.concurrency import run_in_threadpool

from pulsewire.app.access import AdminDep
from pulsewire.app.services import ClusterDep, MetricsDep, PresenceDep, ReadsDep, WriterDep
from pulsewire.channels import commands
from pulsewire.channels.presence import Connection, PendingCommand, Presence
from pulsewire.cluster import envelope
from pulsewire.cluster.node import UNREACHABLE, ClusterNode, RemoteFailed
from pulsewire.http.errors import no_device
from pulsewire.http.responses import ADMIN, answers
from pulsewire.http.schemas import CommandAcceptedOut, CommandIn, CommandResultOut, DeviceId
from pulsewire.metrics import Metrics
from pulsewire.protocol.device import Result
from pulsewire.protocol.rules import CMD_SET_INTERVAL, CommandError, command_args
from pulsewire.storage import devices as store
from pulsewire.storage.writer import BatchingWriter

log = logging.getLogger("pulsewire.commands")

router = APIRouter(prefix="/api/devices", tags=["commands"])

MAX_WAIT_S = 60


class _Failed(Exception):
    """The command did not get a result: answer `status` with `detail`, counted as `outcome`."""

    def __init__(self, outcome: str, status: int, detail: str) -> None:
        super().__init__(detail)
        self.outcome, self.status, self.detail = outcome, status, detail


@router.post(
    "/{device_id}/commands",
    response_model=CommandResultOut | CommandAcceptedOut,
    dependencies=[AdminDep],
    summary="Send a command to a device and wait for its result",
    responses={
        202: {"model": CommandAcceptedOut, "description": "sent without waiting (wait=0), or stored for later"},
        **answers(
            400,
            *ADMIN,
            404,
            words={
                409: "the device is offline (reboot)",
                503: "the connection ended before the device answered, or storage is unavailable (with Retry-After)",
                504: "no result from the device within `wait` seconds",
            },
            retry_after_always=False,
        ),
    },
)
async def send_command(
    device_id: DeviceId,
    body: CommandIn,
    response: Response,
    reads: ReadsDep,
    writer: WriterDep,
    presence: PresenceDep,
    metrics: MetricsDep,
    cluster: ClusterDep,
    wait: Annotated[
        float, Query(ge=0, le=MAX_WAIT_S, description="Seconds to wait for the device's result; 0: do not wait.")
    ] = 10,
) -> CommandResultOut | CommandAcceptedOut:
    try:
        args = command_args(body.name, body.args)
    except CommandError as exc:
        raise HTTPException(400, exc.detail) from None
    name = body.name
    counted = metrics.commands
    if not await run_in_threadpool(reads.exists, device_id):
        raise no_device(device_id)
    conn = presence.get(device_id)
    if conn is None and cluster is not None and presence.held_by(device_id) is not None:
        return await _elsewhere(cluster, device_id, name, args, wait, response, metrics)
    if conn is None and name == CMD_SET_INTERVAL:
        conn = await _store_interval(writer, presence, device_id, args["ms"])
        if conn is None:
            counted.labels(name=name, outcome="queued").inc()
            response.status_code = 202
            return CommandAcceptedOut(
                id=None,
                name=name,
                status="queued",
                detail=f"device is offline; it gets interval {args['ms']} ms in welcome when it next connects",
            )
    if conn is None:
        counted.labels(name=name, outcome="offline").inc()
        raise HTTPException(409, "device is offline")
    try:
        pending, result = await _send_and_wait(conn, name, args, wait)
    except _Failed as failed:
        counted.labels(name=name, outcome=failed.outcome).inc()
        raise HTTPException(failed.status, failed.detail) from None
    if result is None:
        counted.labels(name=name, outcome="sent").inc()
        response.status_code = 202
        return CommandAcceptedOut(id=pending.id, name=name, status="sent")
    counted.labels(name=name, outcome="ok" if result.ok else "failed").inc()
    return CommandResultOut(id=pending.id, name=name, ok=result.ok, detail=result.detail)


# Why a command sent to the device's instance got no answer: (outcome, status, detail), as for a local one.
_REMOTE_FAILURES = {
    envelope.ERR_OFFLINE: ("offline", 409, "device is offline"),
    UNREACHABLE: (
        "unreachable",
        503,
        "the device is connected to another instance of the cluster, which cannot be reached now; try again",
    ),
    envelope.ERR_TIMEOUT: ("timeout", 504, "no result from the device within {wait:g} s"),
    envelope.ERR_ENDED: (
        "lost",
        503,
        "the device's connection ended before it answered; the command may or may not have been carried out",
    ),
}


async def _elsewhere(
    cluster: ClusterNode,
    device_id: str,
    name: str,
    args: dict[str, Any],
    wait: float,
    response: Response,
    metrics: Metrics,
) -> CommandResultOut | CommandAcceptedOut:
    """The device is connected to another instance of the cluster: that one sends the command."""
    try:
        result = await cluster.command(device_id, name, args, wait)
    except RemoteFailed as failed:
        outcome, status, detail = _REMOTE_FAILURES[failed.error]
        metrics.commands.labels(name=name, outcome=outcome).inc()
        raise HTTPException(status, detail.format(wait=wait or commands.SEND_TIMEOUT_S)) from None
    if wait == 0:
        metrics.commands.labels(name=name, outcome="sent").inc()
        response.status_code = 202
        return CommandAcceptedOut(id=result.id, name=name, status="sent")
    metrics.commands.labels(name=name, outcome="ok" if result.ok else "failed").inc()
    return CommandResultOut(id=result.id, name=name, ok=result.ok, detail=result.detail)


async def _store_interval(writer: BatchingWriter, presence: Presence, device_id: str, ms: int) -> Connection | None:
    """Keep the interval for the offline device's next welcome; its connection if it came online meanwhile."""
    try:
        await writer.call(store.set_interval(device_id, ms))
    except store.DeviceNotFound:
        raise no_device(device_id) from None
    # If the device connected meanwhile, its welcome may hold the old interval: it is told now.
    conn = presence.get(device_id)
    if conn is None:
        log.info("interval stored for the next connection", extra={"device": device_id, "ms": ms})
    return conn


async def _send_and_wait(
    conn: Connection, name: str, args: dict[str, Any], wait: float
) -> tuple[PendingCommand, Result | None]:
    """Send the command and wait up to `wait` s for its result (None with wait=0: not waited for)."""
    budget = wait or commands.SEND_TIMEOUT_S
    pending = None
    try:
        async with asyncio.timeout(budget):
            pending = await commands.send(conn, name, args)
            if wait == 0:
                return pending, None
            return pending, await asyncio.shield(pending.answer)
    except TimeoutError:
        if pending is None:
            raise _Failed(
                "timeout", 504, f"the device did not say hello within {budget:g} s; the command was not sent"
            ) from None
        log.info("no command result in time", extra={"device": conn.device_id, "id": pending.id, "wait_s": wait})
        raise _Failed("timeout", 504, f"no result from the device within {wait:g} s") from None
    except commands.ConnectionEnded:
        if pending is None:
            raise _Failed("lost", 503, "the device's connection ended; the command was not sent") from None
        raise _Failed(
            "lost",
            503,
            "the device's connection ended before it answered; the command may or may not have been carried out",
        ) from None
    except commands.NotStored:
        raise _Failed(
            "lost", 503, "the device applied the interval, but the server could not store it; send the command again"
        ) from None
