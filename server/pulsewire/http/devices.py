"""Devices: list, register, rotate a token, remove, latest values (docs/protocol.md section 3)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from starlette.concurrency import run_in_threadpool

from pulsewire.app.access import AdminDep, ReaderDep
from pulsewire.app.services import ClusterDep, PresenceDep, ReadsDep, SettingsDep, WriterDep
from pulsewire.channels.presence import Presence
from pulsewire.clock import now_ms
from pulsewire.cluster.node import ClusterNode
from pulsewire.http.errors import no_device
from pulsewire.http.responses import ADMIN, READ, answers
from pulsewire.http.schemas import DeviceId, DeviceIn, DeviceOut, DeviceWithToken, PointOut, RemovedOut
from pulsewire.protocol.device import CLOSE_TOKEN_REVOKED
from pulsewire.settings import Settings
from pulsewire.storage import devices as store
from pulsewire.storage.reads import Reads
from pulsewire.tokens import new_device_token, token_hash

log = logging.getLogger("pulsewire.devices")

router = APIRouter(prefix="/api/devices", tags=["devices"])


def _out(rec: store.DeviceRecord, settings: Settings, presence: Presence) -> DeviceOut:
    return DeviceOut(
        id=rec.id,
        name=rec.name,
        online=presence.is_online(rec.id),
        last_seen=rec.last_seen,
        fw=rec.fw,
        interval_ms=settings.sample_interval_ms if rec.interval_ms is None else rec.interval_ms,
        metrics=list(rec.metrics),
        created_at=rec.created_at,
    )


async def _with_token(
    device_id: str, token: str, reads: Reads, settings: Settings, presence: Presence
) -> DeviceWithToken:
    rec = await run_in_threadpool(reads.device, device_id)
    if rec is None:  # removed again meanwhile
        raise no_device(device_id)
    return DeviceWithToken(**_out(rec, settings, presence).model_dump(), token=token)


async def _disconnect(presence: Presence, cluster: ClusterNode | None, device_id: str, reason: str) -> None:
    """End the device's connection, on whichever instance of the cluster holds it."""
    if cluster is not None:
        cluster.close_everywhere(device_id, CLOSE_TOKEN_REVOKED, reason)
    conn = presence.get(device_id)
    if conn is not None:
        await conn.close(CLOSE_TOKEN_REVOKED, reason)


@router.get(
    "", response_model=list[DeviceOut], dependencies=[ReaderDep], summary="Every device", responses=answers(*READ)
)
def list_devices(reads: ReadsDep, settings: SettingsDep, presence: PresenceDep) -> list[DeviceOut]:
    return [_out(rec, settings, presence) for rec in reads.devices()]


@router.post(
    "",
    status_code=201,
    response_model=DeviceWithToken,
    dependencies=[AdminDep],
    summary="Register a device; the answer holds its token, shown once",
    responses=answers(400, *ADMIN, 503, words={409: "the id is already registered"}),
)
async def add_device(
    body: DeviceIn, writer: WriterDep, reads: ReadsDep, settings: SettingsDep, presence: PresenceDep
) -> DeviceWithToken:
    token = new_device_token()
    try:
        await writer.call(store.add_device(body.id, body.name or body.id, token_hash(token), now_ms()))
    except store.DeviceExists:
        raise HTTPException(409, f"device {body.id!r} already exists; rotate its token instead") from None
    log.info("device registered", extra={"device": body.id})
    return await _with_token(body.id, token, reads, settings, presence)


@router.post(
    "/{device_id}/token",
    response_model=DeviceWithToken,
    dependencies=[AdminDep],
    summary="Rotate the token; the old one stops working at once",
    responses=answers(400, *ADMIN, 404, 503),
)
async def rotate_token(
    device_id: DeviceId,
    writer: WriterDep,
    reads: ReadsDep,
    settings: SettingsDep,
    presence: PresenceDep,
    cluster: ClusterDep,
) -> DeviceWithToken:
    token = new_device_token()
    try:
        await writer.call(store.set_token(device_id, token_hash(token)))
    except store.DeviceNotFound:
        raise no_device(device_id) from None
    await _disconnect(presence, cluster, device_id, "token rotated")
    log.info("device token rotated", extra={"device": device_id})
    return await _with_token(device_id, token, reads, settings, presence)


@router.delete(
    "/{device_id}",
    response_model=RemovedOut,
    dependencies=[AdminDep],
    summary="Remove a device (its readings stay unless purge=true)",
    responses=answers(400, *ADMIN, 404, 503),
)
async def remove_device(
    device_id: DeviceId,
    writer: WriterDep,
    presence: PresenceDep,
    cluster: ClusterDep,
    purge: Annotated[bool, Query(description="Also delete every stored reading of the device.")] = False,
) -> RemovedOut:
    try:
        purged = await writer.call(store.remove_device(device_id, purge=purge))
    except store.DeviceNotFound:
        raise no_device(device_id) from None
    await _disconnect(presence, cluster, device_id, "device removed")
    log.info("device removed", extra={"device": device_id, "purged_readings": purged})
    return RemovedOut(id=device_id, purged_readings=purged)


@router.get(
    "/{device_id}/latest",
    response_model=dict[str, PointOut],
    dependencies=[ReaderDep],
    summary="The latest value of each metric",
    responses=answers(400, *READ, 404),
)
def latest(device_id: DeviceId, reads: ReadsDep) -> dict[str, PointOut]:
    values = reads.latest(device_id)
    if values is None:
        raise no_device(device_id)
    return {metric: PointOut(ts=v.ts, value=v.value) for metric, v in values.items()}
