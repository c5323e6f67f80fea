"""Device channel `/ws/device` (PROTOCOL.md section 1): a thin I/O shell around `codec.DeviceSession`.

Reading and acking run apart: the reader hands each batch to the writer and goes on with the
next frame; the acker waits for commits in order and sends acks. At most `inflight_batches`
batches wait for their ack; past that the reader stops reading and TCP slows the device down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketState

from pulsewire import codec, commands
from pulsewire.clock import now_ms
from pulsewire.presence import Closer, Connection
from pulsewire.routes.deps import ServicesDep
from pulsewire.services import Services
from pulsewire.storage import devices as store
from pulsewire.storage.writer import DeviceRemoved, StorageError
from pulsewire.tokens import bearer, token_hash

log = logging.getLogger("pulsewire.device")

router = APIRouter()


async def _refuse(ws: WebSocket, services: Services, status: int, reason: str, detail: str) -> None:
    services.metrics.auth_refusals.labels(reason=reason).inc()
    client = ws.client.host if ws.client else "?"
    log.warning("device handshake refused", extra={"reason": reason, "client": client})
    try:
        await ws.send_denial_response(JSONResponse({"detail": detail}, status_code=status))
    except RuntimeError:  # server without the denial-response extension
        await ws.close(codec.CLOSE_POLICY, detail[:120])


def _lookup(services: Services, token: str) -> str | None:
    with services.engine.connect() as conn:
        return store.device_for_token(conn, token_hash(token))


def _interval(services: Services, device_id: str) -> int:
    """The interval for the device's welcome: its own (set_interval), else the server's default."""
    with services.engine.connect() as conn:
        own = store.interval_of(conn, device_id)
    return services.settings.sample_interval_ms if own is None else own


@router.websocket("/ws/device")
async def device_channel(ws: WebSocket, services: ServicesDep) -> None:
    if codec.SUBPROTOCOL not in ws.scope.get("subprotocols", ()):
        offered = ", ".join(ws.scope.get("subprotocols", ())) or "none"
        await _refuse(
            ws, services, 400, "subprotocol", f"subprotocol {codec.SUBPROTOCOL} required (offered: {offered})"
        )
        return
    token = bearer(ws.headers.get("authorization"))
    if token is None:
        await _refuse(ws, services, 401, "missing_token", "device token required: Authorization: Bearer <token>")
        return
    device_id = await run_in_threadpool(_lookup, services, token)
    if device_id is None:
        await _refuse(ws, services, 401, "bad_token", "unknown or revoked device token")
        return
    await ws.accept(subprotocol=codec.SUBPROTOCOL)
    await _serve(ws, services, device_id, token)


async def _serve(ws: WebSocket, services: Services, device_id: str, token: str) -> None:
    metrics = services.metrics
    closing: list[tuple[int, str]] = []

    async def close(code: int, reason: str) -> None:
        if not closing:
            closing.append((code, reason))
            with contextlib.suppress(Exception):
                await ws.close(code, reason)

    me = Connection(device_id, close, ws.send_text)
    previous = services.presence.arrive(me)
    metrics.device_connections.inc()
    pending: asyncio.Queue[tuple[int, asyncio.Future[None]]] = asyncio.Queue()
    window = asyncio.Semaphore(services.settings.inflight_batches)
    push_on_arrival = not services.settings.live_after_commit
    acker: asyncio.Task[None] | None = None
    try:
        # A rotation or removal between the token check and `arrive` would have missed this
        # connection; checking again now that it is registered closes that gap. Until it passes,
        # the device's current connection (if any) stays.
        if await run_in_threadpool(_lookup, services, token) != device_id:
            services.presence.leave(me)
            if previous is not None:
                services.presence.arrive(previous)
            previous = None
            await close(codec.CLOSE_TOKEN_REVOKED, "token revoked")
            return
        if previous is not None:
            await previous.close(codec.CLOSE_REPLACED, "replaced by a newer connection of the same device")
        else:
            services.hub.publish_status(device_id, True, now_ms())
        client = ws.client.host if ws.client else "?"
        log.info("device connected", extra={"device": device_id, "client": client})
        acker = asyncio.create_task(_ack_in_order(ws, services, pending, window, close))
        session = codec.DeviceSession()
        while not closing:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            frame = message.get("text")
            if frame is None:
                frame = message.get("bytes", b"")
            try:
                msg = session.receive(frame)
            except codec.FrameError as exc:
                metrics.frame_closes.labels(close_code=str(exc.close_code)).inc()
                log.warning(
                    "unusable frame", extra={"device": device_id, "close_code": exc.close_code, "reason": exc.reason}
                )
                await close(exc.close_code, exc.reason)
                break
            except codec.MessageError as exc:
                metrics.rejects.labels(code=exc.code).inc()
                log.info(
                    "message refused",
                    extra={"device": device_id, "code": exc.code, "seq": exc.seq, "detail": exc.detail},
                )
                await ws.send_text(codec.error(exc))
                continue
            if isinstance(msg, codec.Telemetry):
                if not await _take_slot(window, acker):
                    break  # the acker closed the connection
                done = await services.writer.submit(device_id, msg.data, codec.rows(msg.data))
                pending.put_nowait((msg.seq, done))
                if push_on_arrival:
                    services.hub.publish_arrived(device_id, msg.data)  # settled by the writer (app.py)
            elif isinstance(msg, codec.Hello):
                await services.writer.touch(device_id, now_ms(), msg.fw)
                interval = await run_in_threadpool(_interval, services, device_id)
                await ws.send_text(codec.welcome(now_ms(), interval))
                me.ready.set()  # commands may go out now
                log.info("device hello", extra={"device": device_id, "fw": msg.fw, "uptime": msg.uptime})
            else:
                # A successful set_interval is stored here, before its waiter hears of it.
                answered = await commands.settle(services.writer, me, msg)
                if answered is None:
                    log.warning(
                        "result for an unknown command id; ignored",
                        extra={"device": device_id, "id": msg.id, "ok": msg.ok, "detail": msg.detail},
                    )
                else:
                    log.info(
                        "command result",
                        extra={
                            "device": device_id,
                            "id": msg.id,
                            "command": answered.name,
                            "ok": msg.ok,
                            "detail": msg.detail,
                        },
                    )
    except StorageError:
        await close(codec.CLOSE_INTERNAL_ERROR, "storage unavailable; reconnect and resend")
    except Exception as exc:
        # A send failing because the peer vanished ends the connection like a disconnect.
        if ws.application_state != WebSocketState.DISCONNECTED and ws.client_state != WebSocketState.DISCONNECTED:
            log.exception("device connection failed", extra={"device": device_id})
            await close(codec.CLOSE_INTERNAL_ERROR, "internal error")
        else:
            log.debug("device connection lost", extra={"device": device_id, "error": repr(exc)})
    finally:
        commands.abandon(me)
        if acker is not None:
            acker.cancel()
            await asyncio.gather(acker, return_exceptions=True)
        while not pending.empty():  # batches still being committed: their outcome has no reader now
            pending.get_nowait()[1].add_done_callback(_consume)
        metrics.device_connections.dec()
        if services.presence.leave(me):
            seen = now_ms()
            services.hub.publish_status(device_id, False, seen)
            with contextlib.suppress(Exception):
                await services.writer.touch(device_id, seen)
        code, reason = closing[0] if closing else (None, "closed by device or lost")
        log.info("device disconnected", extra={"device": device_id, "close_code": code, "reason": reason})


def _consume(done: asyncio.Future[None]) -> None:
    if not done.cancelled():
        done.exception()


async def _take_slot(window: asyncio.Semaphore, acker: asyncio.Task[None]) -> bool:
    """Wait for room in the in-flight window; False if the acker ended (and closed) meanwhile."""
    if not window.locked():
        await window.acquire()
        return True
    slot = asyncio.ensure_future(window.acquire())
    await asyncio.wait({slot, acker}, return_when=asyncio.FIRST_COMPLETED)
    if slot.done():
        return True
    slot.cancel()
    return False


async def _ack_in_order(
    ws: WebSocket,
    services: Services,
    pending: asyncio.Queue[tuple[int, asyncio.Future[None]]],
    window: asyncio.Semaphore,
    close: Closer,
) -> None:
    acks = services.metrics.acks
    while True:
        seq, done = await pending.get()
        try:
            await done
        except DeviceRemoved:
            await close(codec.CLOSE_TOKEN_REVOKED, "device removed")
            return
        except StorageError:
            # Neither ack nor error: the device keeps the batch and sends it again after reconnecting.
            await close(codec.CLOSE_INTERNAL_ERROR, "storage unavailable; reconnect and resend")
            return
        finally:
            window.release()
        try:
            await ws.send_text(codec.ack(seq))
        except Exception:
            return  # connection gone; the device resends and the store keeps one copy
        acks.inc()
