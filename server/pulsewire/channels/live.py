"""Live channel `/ws/live` (docs/protocol.md section 2): snapshot, subscribe, pushed telemetry, status and alerts.

Each client drains its own bounded queue; a client that falls behind is closed with 1013 and may
reconnect for a fresh snapshot. Ingest never waits for a dashboard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import APIRouter, WebSocket
from starlette.concurrency import run_in_threadpool

from pulsewire.app.access import read_key_ok
from pulsewire.app.services import Services, ServicesDep
from pulsewire.channels.hub import LiveClient
from pulsewire.protocol import live
from pulsewire.protocol.device import CLOSE_POLICY, CLOSE_TRY_AGAIN_LATER
from pulsewire.storage.devices import DeviceRecord
from pulsewire.storage.health import StorageError, close_reason, is_storage_error
from pulsewire.storage.reads import Latest

log = logging.getLogger("pulsewire.live")

router = APIRouter()

CLOSE_WAIT_S = 1.0


def snapshot(services: Services) -> list[str]:
    """The snapshot, then one `alert` message per alert firing now."""
    records, latest = services.reads.devices_and_latest()
    firing = services.reads.firing_alerts()
    return [_devices(services, records, latest), *(live.alert("firing", a) for a in reversed(firing))]


def _devices(services: Services, records: list[DeviceRecord], latest: Latest) -> str:
    return live.snapshot(
        live.DeviceState(
            id=rec.id,
            name=rec.name,
            online=services.presence.is_online(rec.id),
            last_seen=rec.last_seen,
            latest={m: (v.ts, v.value) for m, v in latest.get(rec.id, {}).items()},
        )
        for rec in records
    )


async def _receive_subscriptions(ws: WebSocket, client: LiveClient) -> None:
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        try:
            ids = live.decode_subscribe(message.get("text"))
        except live.SubscribeError as exc:
            await ws.send_text(live.error(live.ERR_INVALID, exc.detail))
            continue
        client.subscribe(ids)


async def _until_behind(client: LiveClient) -> None:
    await client.behind.wait()


async def _send_queued(ws: WebSocket, client: LiveClient) -> None:
    while True:
        await ws.send_text(await client.queue.get())


@router.websocket("/ws/live")
async def live_channel(ws: WebSocket, services: ServicesDep) -> None:
    if not read_key_ok(ws):
        await ws.close(CLOSE_POLICY, "read key required (?key=)")
        return
    await ws.accept()
    # Join before the snapshot: the queue then holds what is pushed from now on, after what was pushed
    # before but is not stored yet (LiveHub.join), so nothing falls between the two. A reading may come twice.
    client = services.hub.join()
    tasks: list[asyncio.Task[None]] = []
    try:
        for message in await run_in_threadpool(snapshot, services):
            await ws.send_text(message)
        tasks = [
            asyncio.create_task(_receive_subscriptions(ws, client)),
            asyncio.create_task(_send_queued(ws, client)),
            asyncio.create_task(_until_behind(client)),
        ]
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        if tasks[2] in done:
            log.warning("live client too slow; dropped", extra={"queued": client.queue.qsize()})
            # The close frame waits behind data the client is not reading: give it a moment only.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    ws.close(CLOSE_TRY_AGAIN_LATER, "too slow: reconnect for a fresh snapshot"), CLOSE_WAIT_S
                )
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.debug("live connection ended", extra={"error": repr(task.exception())})
    except Exception as exc:
        if is_storage_error(exc):  # the snapshot could not be read: come back later, not at once
            await _close_for_storage(ws, services, exc)
        log.debug("live connection ended", extra={"error": repr(exc)})
    finally:
        services.hub.leave(client)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _close_for_storage(ws: WebSocket, services: Services, exc: Exception) -> None:
    health = services.writer.health
    if not isinstance(exc, StorageError):
        health.failed(exc, "live")
    with contextlib.suppress(Exception):
        await ws.close(CLOSE_TRY_AGAIN_LATER, close_reason(health.refused("live")))
