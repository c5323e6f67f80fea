"""Devices: list, register, rotate a token, remove, latest values (PROTOCOL.md section 3)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from starlette.concurrency import run_in_threadpool

from pulsewire.clock import now_ms
from pulsewire.codec import CLOSE_TOKEN_REVOKED
from pulsewire.routes.deps import AdminDep, ReaderDep, ServicesDep, no_device
from pulsewire.routes.schemas import ID_PATTERN, DeviceIn, DeviceOut, DeviceWithToken, PointOut, RemovedOut
from pulsewire.services import Services
from pulsewire.storage import devices as store
from pulsewire.tokens import new_device_token, token_hash

log = logging.getLogger("pulsewire.devices")

router = APIRouter(prefix="/api/devices", tags=["devices"])

DeviceId = Annotated[str, Path(pattern=ID_PATTERN, description="Device id")]


def _out(services: Services, rec: store.DeviceRecord) -> DeviceOut:
    return DeviceOut(
        id=rec.id,
        name=rec.name,
        online=services.presence.is_online(rec.id),
        last_seen=rec.last_seen,
        fw=rec.fw,
        interval_ms=services.settings.sample_interval_ms if rec.interval_ms is None else rec.interval_ms,
        metrics=list(rec.metrics),
        created_at=rec.created_at,
    )


def _read_device(services: Services, device_id: str) -> store.DeviceRecord:
    with services.engine.connect() as conn:
        rec = store.get_device(conn, device_id)
    if rec is None:
        raise no_device(device_id)
    return rec


async def _with_token(services: Services, device_id: str, token: str) -> DeviceWithToken:
    rec = await run_in_threadpool(_read_device, services, device_id)
    return DeviceWithToken(**_out(services, rec).model_dump(), token=token)


async def _disconnect(services: Services, device_id: str, reason: str) -> None:
    conn = services.presence.get(device_id)
    if conn is not None:
        await conn.close(CLOSE_TOKEN_REVOKED, reason)


@router.get("", response_model=list[DeviceOut], dependencies=[ReaderDep], summary="Every device")
def list_devices(services: ServicesDep) -> list[DeviceOut]:
    with services.engine.connect() as conn:
        return [_out(services, rec) for rec in store.list_devices(conn)]


@router.post(
    "",
    status_code=201,
    response_model=DeviceWithToken,
    dependencies=[AdminDep],
    summary="Register a device; the answer holds its token, shown once",
)
async def add_device(body: DeviceIn, services: ServicesDep) -> DeviceWithToken:
    token = new_device_token()
    try:
        await services.writer.call(store.add_device(body.id, body.name or body.id, token_hash(token), now_ms()))
    except store.DeviceExists:
        raise HTTPException(409, f"device {body.id!r} already exists; rotate its token instead") from None
    log.info("device registered", extra={"device": body.id})
    return await _with_token(services, body.id, token)


@router.post(
    "/{device_id}/token",
    response_model=DeviceWithToken,
    dependencies=[AdminDep],
    summary="Rotate the token; the old one stops working at once",
)
async def rotate_token(device_id: DeviceId, services: ServicesDep) -> DeviceWithToken:
    token = new_device_token()
    try:
        await services.writer.call(store.set_token(device_id, token_hash(token)))
    except store.DeviceNotFound:
        raise no_device(device_id) from None
    await _disconnect(services, device_id, "token rotated")
    log.info("device token rotated", extra={"device": device_id})
    return await _with_token(services, device_id, token)


@router.delete(
    "/{device_id}",
    response_model=RemovedOut,
    dependencies=[AdminDep],
    summary="Remove a device (its readings stay unless purge=true)",
)
async def remove_device(
    device_id: DeviceId,
    services: ServicesDep,
    purge: Annotated[bool, Query(description="Also delete every stored reading of the device.")] = False,
) -> RemovedOut:
    try:
        purged = await services.writer.call(store.remove_device(device_id, purge=purge))
    except store.DeviceNotFound:
        raise no_device(device_id) from None
    await _disconnect(services, device_id, "device removed")
    log.info("device removed", extra={"device": device_id, "purged_readings": purged})
    return RemovedOut(id=device_id, purged_readings=purged)


@router.get(
    "/{device_id}/latest",
    response_model=dict[str, PointOut],
    dependencies=[ReaderDep],
    summary="The latest value of each metric",
)
def latest(device_id: DeviceId, services: ServicesDep) -> dict[str, PointOut]:
    with services.engine.connect() as conn:
        if not store.device_exists(conn, device_id):
            raise no_device(device_id)
        values = store.latest_values(conn, device_id).get(device_id, {})
    return {metric: PointOut(ts=v.ts, value=v.value) for metric, v in values.items()}
