"""Commands to devices over HTTP: `POST /api/devices/{id}/commands` (docs/protocol.md section 3)."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, Response
from starlette.concurrency import run_in_threadpool

from pulsewire import codec, commands
from pulsewire.routes.deps import AdminDep, ServicesDep, no_device
from pulsewire.routes.schemas import ID_PATTERN, CommandAcceptedOut, CommandIn, CommandResultOut
from pulsewire.services import Services
from pulsewire.storage import devices as store

log = logging.getLogger("pulsewire.commands")

router = APIRouter(prefix="/api/devices", tags=["commands"])

DeviceId = Annotated[str, Path(pattern=ID_PATTERN, description="Device id")]
MAX_WAIT_S = 60


def _exists(services: Services, device_id: str) -> bool:
    with services.engine.connect() as conn:
        return store.device_exists(conn, device_id)


@router.post(
    "/{device_id}/commands",
    response_model=CommandResultOut | CommandAcceptedOut,
    dependencies=[AdminDep],
    summary="Send a command to a device and wait for its result",
    responses={
        202: {"model": CommandAcceptedOut, "description": "sent without waiting (wait=0), or stored for later"},
        404: {"description": "no such device"},
        409: {"description": "the device is offline (reboot)"},
        503: {"description": "the connection ended before the device answered"},
        504: {"description": "no result from the device within `wait` seconds"},
    },
)
async def send_command(
    device_id: DeviceId,
    body: CommandIn,
    response: Response,
    services: ServicesDep,
    wait: Annotated[
        float, Query(ge=0, le=MAX_WAIT_S, description="Seconds to wait for the device's result; 0: do not wait.")
    ] = 10,
) -> CommandResultOut | CommandAcceptedOut:
    try:
        args = codec.command_args(body.name, body.args)
    except codec.CommandError as exc:
        raise HTTPException(400, exc.detail) from None
    name = body.name
    counted = services.metrics.commands
    if not await run_in_threadpool(_exists, services, device_id):
        raise no_device(device_id)

    conn = services.presence.get(device_id)
    if conn is None and name == codec.CMD_SET_INTERVAL:
        try:
            await services.writer.call(store.set_interval(device_id, args["ms"]))
        except store.DeviceNotFound:
            raise no_device(device_id) from None
        # If the device connected meanwhile, its welcome may hold the old interval: tell it now.
        conn = services.presence.get(device_id)
        if conn is None:
            counted.labels(name=name, outcome="queued").inc()
            log.info("interval stored for the next connection", extra={"device": device_id, "ms": args["ms"]})
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

    budget = wait or commands.SEND_TIMEOUT_S
    pending = None
    try:
        async with asyncio.timeout(budget):
            pending = await commands.send(conn, name, args)
            if wait == 0:
                counted.labels(name=name, outcome="sent").inc()
                response.status_code = 202
                return CommandAcceptedOut(id=pending.id, name=name, status="sent")
            result = await asyncio.shield(pending.answer)
    except TimeoutError:
        counted.labels(name=name, outcome="timeout").inc()
        if pending is None:
            raise HTTPException(
                504, f"the device did not say hello within {budget:g} s; the command was not sent"
            ) from None
        log.info("no command result in time", extra={"device": device_id, "id": pending.id, "wait_s": wait})
        raise HTTPException(504, f"no result from the device within {wait:g} s") from None
    except commands.ConnectionEnded:
        counted.labels(name=name, outcome="lost").inc()
        if pending is None:
            raise HTTPException(503, "the device's connection ended; the command was not sent") from None
        raise HTTPException(
            503, "the device's connection ended before it answered; the command may or may not have been carried out"
        ) from None
    except commands.NotStored:
        counted.labels(name=name, outcome="lost").inc()
        raise HTTPException(
            503, "the device applied the interval, but the server could not store it; send the command again"
        ) from None
    assert pending is not None
    counted.labels(name=name, outcome="ok" if result.ok else "failed").inc()
    return CommandResultOut(id=pending.id, name=name, ok=result.ok, detail=result.detail)
