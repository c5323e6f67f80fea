"""Device channel `/ws/device` (docs/protocol.md section 1): a thin I/O shell around the device codec.

The handshake checks the subprotocol and the token; then a `DeviceConnection` owns the
connection until it ends, with one `handle_*` method per kind of message. A connection is the
device's (online, in `presence`) only once it has said hello, within `hello_timeout_s`.

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

from pulsewire.app import guard
from pulsewire.app.admission import TokenBucket
from pulsewire.app.services import Services, ServicesDep
from pulsewire.channels import commands
from pulsewire.channels.presence import Connection
from pulsewire.clock import now_ms
from pulsewire.protocol import device as codec
from pulsewire.storage.health import StorageError, close_reason, is_storage_error
from pulsewire.storage.writer import DeviceRemoved
from pulsewire.tokens import bearer, token_hash

log = logging.getLogger("pulsewire.device")

router = APIRouter()

NO_CLOSE_CODE = (1005, 1006)  # RFC 6455: no status received, closed abnormally


@router.websocket("/ws/device")
async def device_channel(ws: WebSocket, services: ServicesDep) -> None:
    offered = ws.scope.get("subprotocols", ())
    if codec.SUBPROTOCOL not in offered:
        detail = f"subprotocol {codec.SUBPROTOCOL} required (offered: {', '.join(offered) or 'none'})"
        await _refuse(ws, services, 400, "subprotocol", detail)
        return
    token = bearer(ws.headers.get("authorization"))
    if token is None:
        await _refuse(ws, services, 401, "missing_token", "device token required: Authorization: Bearer <token>")
        return
    try:
        device_id = await run_in_threadpool(services.reads.device_for_token, token_hash(token))
    except Exception as exc:
        if not is_storage_error(exc):
            raise
        await _refuse_for_storage(ws, services, exc)
        return
    if device_id is None:
        await _refuse(ws, services, 401, "bad_token", "unknown or revoked device token")
        return
    await ws.accept(subprotocol=codec.SUBPROTOCOL)
    await DeviceConnection(ws, services, device_id, token).run()


async def _refuse(ws: WebSocket, services: Services, status: int, reason: str, detail: str) -> None:
    services.metrics.auth_refusals.labels(reason=reason).inc()
    client = ws.client.host if ws.client else "?"
    fields: dict[str, object] = {"reason": reason, "client": client}
    services.throttle.log(log, logging.WARNING, f"handshake:{reason}", "device handshake refused", fields)
    try:
        await ws.send_denial_response(JSONResponse({"detail": detail}, status_code=status))
    except RuntimeError:  # server without the denial-response extension
        await ws.close(codec.CLOSE_POLICY, detail[:120])


async def _refuse_for_storage(ws: WebSocket, services: Services, exc: Exception) -> None:
    """503 with Retry-After: the token cannot be checked while storage fails (logged once per cause per interval)."""
    health = services.writer.health
    cause = exc.cause if isinstance(exc, StorageError) else health.failed(exc, "handshake")
    retry_s = health.refused("handshake")
    detail = f"storage unavailable ({cause}); retry in {retry_s} s"
    response = JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": str(retry_s)})
    try:
        await ws.send_denial_response(response)
    except RuntimeError:  # server without the denial-response extension
        await ws.close(codec.CLOSE_TRY_AGAIN_LATER, close_reason(retry_s))


class DeviceConnection:
    """One accepted device connection, from its arrival in `presence` to its teardown."""

    def __init__(self, ws: WebSocket, services: Services, device_id: str, token: str) -> None:
        self.ws = ws
        self.services = services
        self.device_id = device_id
        self.token = token
        self.session = codec.DeviceSession()
        self.closing: tuple[int, str] | None = None  # the close code and reason, once closing
        self.closed_by_device: tuple[int, str] | None = None  # the code and reason the device closed with
        self.me = Connection(device_id, self.close, ws.send_text)
        # Batches handed to the writer, in arrival order, with the future of their commit.
        self.pending: asyncio.Queue[tuple[int, asyncio.Future[None]]] = asyncio.Queue()
        self.window = asyncio.Semaphore(services.settings.inflight_batches)
        self.push_on_arrival = not services.settings.live_after_commit
        self.acker: asyncio.Task[None] | None = None
        self.registered = False  # in `presence` and counted in device_connections, from hello on
        self.clock = asyncio.get_running_loop().time
        rate = services.settings.device_batches_per_s
        self.batches = TokenBucket(rate, max(1.0, rate), self.clock())

    async def close(self, code: int, reason: str) -> None:
        if self.closing is None:
            self.closing = (code, reason)
            with contextlib.suppress(Exception):
                await self.ws.close(code, reason)

    async def run(self) -> None:
        try:
            hello = await self._await_hello()
            if hello is None or not await self._register():
                return
            await self.handle_hello(hello)
            self.acker = asyncio.create_task(self._ack_in_order())
            await self._read_frames()
        except Exception as exc:
            if is_storage_error(exc):
                await self._storage_failed(exc)
            else:
                await self._failed(exc)
        finally:
            await self._teardown()

    async def _await_hello(self) -> codec.Hello | None:
        """The device's hello, within `hello_timeout_s` of the accept; None if the connection ended first.

        Until then the connection is nobody's: not online, not counted, and it replaces no other.
        """
        timeout = self.services.settings.hello_timeout_s
        try:
            async with asyncio.timeout(timeout):
                msg = await self._receive()
        except TimeoutError:
            self.services.metrics.hello_timeouts.inc()
            client = self.ws.client.host if self.ws.client else "?"
            fields = {"device": self.device_id, "client": client, "timeout_s": timeout}
            self.services.throttle.log(log, logging.INFO, "hello_timeout", "no hello in time; closed", fields)
            await self.close(codec.CLOSE_POLICY, f"no hello within {timeout:g} s")
            return None
        return msg if isinstance(msg, codec.Hello) else None  # the session takes nothing else first

    async def _register(self) -> bool:
        """Make this the device's connection (online from now), closing an older one; False if the token went."""
        previous = self.services.presence.arrive(self.me)
        self.registered = True
        self.services.metrics.device_connections.inc()
        guard.prove(self.ws.scope)  # a device now: no longer counted against its address
        if not await self._still_registered(previous):
            return False
        if self.services.cluster is not None:  # the device's connection on another instance closes
            await self.services.cluster.claim(self.me)
        if previous is not None:
            await previous.close(codec.CLOSE_REPLACED, "replaced by a newer connection of the same device")
        else:
            self.services.hub.publish_status(self.device_id, True, now_ms())
        client = self.ws.client.host if self.ws.client else "?"
        log.info("device connected", extra={"device": self.device_id, "client": client})
        return True

    async def _still_registered(self, previous: Connection | None) -> bool:
        """Check the token again now that this connection is in `presence`.

        A rotation or removal between the handshake's check and `arrive` would have missed this
        connection. Until this passes, the device's current connection (if any) stays.
        """
        if await run_in_threadpool(self.services.reads.device_for_token, token_hash(self.token)) == self.device_id:
            return True
        self.services.presence.leave(self.me)
        if previous is not None:
            self.services.presence.arrive(previous)
        await self.close(codec.CLOSE_TOKEN_REVOKED, "token revoked")
        return False

    async def _receive(self) -> codec.Message | None:
        """The next message the session takes; None once the connection ends or is closing.

        A refused message gets its `error` here; an unusable frame closes the connection.
        """
        while self.closing is None:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                self.closed_by_device = (message.get("code", 1005), message.get("reason") or "")
                return None
            frame = message.get("text")
            if frame is None:
                frame = message.get("bytes", b"")
            try:
                return self.session.receive(frame, self.ts_window())
            except codec.FrameError as exc:
                await self.handle_unusable(exc)
                return None
            except codec.MessageError as exc:
                await self.handle_refused(exc)
        return None

    async def _read_frames(self) -> None:
        while (msg := await self._receive()) is not None:
            if isinstance(msg, codec.Telemetry):
                if not await self.handle_telemetry(msg):
                    return
            elif isinstance(msg, codec.Hello):
                await self.handle_hello(msg)
            else:
                await self.handle_result(msg)

    # --- one method per message -------------------------------------------------------------

    async def handle_unusable(self, exc: codec.FrameError) -> None:
        self.services.metrics.frame_closes.labels(close_code=str(exc.close_code)).inc()
        log.warning(
            "unusable frame", extra={"device": self.device_id, "close_code": exc.close_code, "reason": exc.reason}
        )
        await self.close(exc.close_code, exc.reason)

    async def handle_refused(self, exc: codec.MessageError) -> None:
        self.services.metrics.rejects.labels(code=exc.code).inc()
        log.info(
            "message refused",
            extra={"device": self.device_id, "code": exc.code, "seq": exc.seq, "detail": exc.detail},
        )
        await self.ws.send_text(codec.error(exc))

    def ts_window(self) -> codec.TsWindow:
        """The stamps storage takes now: within raw retention, and not far ahead of the clock."""
        retention, now = self.services.settings.retention, now_ms()
        return codec.TsWindow(retention.oldest_accepted(now), now, retention.raw_days)

    async def handle_telemetry(self, msg: codec.Telemetry) -> bool:
        """Hand the batch to the writer (and, on arrival, to dashboards); False once the acker has ended."""
        await self._within_batch_rate()
        if not await self._take_slot():
            return False  # the acker closed the connection
        services = self.services
        done = await services.writer.submit(self.device_id, msg.data)
        self.pending.put_nowait((msg.seq, done))
        if self.push_on_arrival:
            services.hub.publish_arrived(self.device_id, msg.data)  # settled by the writer (app/factory.py)
        if services.rollouts.on_trial(self.device_id):  # streaming after its welcome: confirmed
            await services.rollouts.streaming(self.device_id)
        return True

    async def handle_hello(self, msg: codec.Hello) -> None:
        services = self.services
        await services.writer.touch(self.device_id, now_ms(), msg.fw)
        own = await run_in_threadpool(services.reads.interval_of, self.device_id)
        interval = services.settings.sample_interval_ms if own is None else own
        await self.ws.send_text(codec.welcome(now_ms(), interval))
        self.me.ready.set()  # commands may go out now
        log.info("device hello", extra={"device": self.device_id, "fw": msg.fw, "uptime": msg.uptime})
        try:  # where an update left it, and its update if its turn has come (releases/runtime.py)
            await services.rollouts.hello(self.me, msg.fw, msg.boot)
        except Exception as exc:
            if is_storage_error(exc):
                raise
            log.exception("following the device's rollout failed", extra={"device": self.device_id})

    async def handle_result(self, msg: codec.Result) -> None:
        # A successful set_interval is stored here, before its waiter hears of it.
        answered = await commands.settle(self.services.writer, self.me, msg)
        fields = {"device": self.device_id, "id": msg.id, "ok": msg.ok, "detail": msg.detail}
        if answered is None:
            log.warning("result for an unknown command id; ignored", extra=fields)
        else:
            log.info("command result", extra={**fields, "command": answered.name})

    # --- acks, errors, teardown -------------------------------------------------------------

    async def _within_batch_rate(self) -> None:
        """Past `device_batches_per_s`, stop reading until the allowance refills: TCP slows the device
        down, as a full in-flight window does, and nothing it sent is lost."""
        if self.batches.take(self.clock()):
            return
        self.services.metrics.telemetry_throttled.inc()
        fields = {"device": self.device_id, "batches_per_s": self.services.settings.device_batches_per_s}
        self.services.throttle.log(
            log, logging.INFO, "batch_rate", "device over its batch rate; reading paused", fields
        )
        while not self.batches.take(self.clock()):  # the loop's timers may wake a hair early
            await asyncio.sleep(self.batches.wait_for_one(self.clock()))

    async def _take_slot(self) -> bool:
        """Wait for room in the in-flight window; False if the acker ended (and closed) meanwhile."""
        if not self.window.locked():
            await self.window.acquire()
            return True
        assert self.acker is not None
        slot = asyncio.ensure_future(self.window.acquire())
        await asyncio.wait({slot, self.acker}, return_when=asyncio.FIRST_COMPLETED)
        if slot.done():
            return True
        slot.cancel()
        return False

    async def _ack_in_order(self) -> None:
        acks = self.services.metrics.acks
        while True:
            seq, done = await self.pending.get()
            try:
                await done
            except DeviceRemoved:
                await self.close(codec.CLOSE_TOKEN_REVOKED, "device removed")
                return
            except StorageError as exc:
                # Neither ack nor error: the device keeps the batch and sends it again after reconnecting.
                await self._storage_failed(exc)
                return
            finally:
                self.window.release()
            try:
                await self.ws.send_text(codec.ack(seq))
            except Exception:
                return  # connection gone; the device resends and the store keeps one copy
            acks.inc()

    async def _storage_failed(self, exc: Exception) -> None:
        """Close with 1013 and the wait in the reason: the device keeps its batches and comes back then."""
        health = self.services.writer.health
        if not isinstance(exc, StorageError):
            health.failed(exc, "device")
        if self.closing is None:
            await self.close(codec.CLOSE_TRY_AGAIN_LATER, close_reason(health.refused("device")))

    async def _failed(self, exc: Exception) -> None:
        # A send failing because the peer vanished ends the connection like a disconnect.
        ws = self.ws
        if ws.application_state != WebSocketState.DISCONNECTED and ws.client_state != WebSocketState.DISCONNECTED:
            log.exception("device connection failed", extra={"device": self.device_id})
            await self.close(codec.CLOSE_INTERNAL_ERROR, "internal error")
        else:
            log.debug("device connection lost", extra={"device": self.device_id, "error": repr(exc)})

    async def _teardown(self) -> None:
        services = self.services
        commands.abandon(self.me)
        if self.acker is not None:
            self.acker.cancel()
            await asyncio.gather(self.acker, return_exceptions=True)
        while not self.pending.empty():  # batches still being committed: their outcome has no reader now
            self.pending.get_nowait()[1].add_done_callback(_consume)
        if self.registered:
            services.metrics.device_connections.dec()
        if services.presence.leave(self.me) and (services.cluster is None or await services.cluster.release(self.me)):
            seen = now_ms()
            services.hub.publish_status(self.device_id, False, seen)
            with contextlib.suppress(Exception):
                await services.writer.touch(self.device_id, seen)
        log.info("device disconnected", extra={"device": self.device_id, **self._how_closed()})

    def _how_closed(self) -> dict[str, object]:
        """Who closed, with which code and reason. The ASGI server reports a connection that ended
        without a close code as 1005 or 1006: lost, as far as anyone can tell."""
        if self.closing is not None:
            return {"by": "server", "close_code": self.closing[0], "reason": self.closing[1]}
        code, reason = self.closed_by_device or (1006, "")
        return {"by": "lost" if code in NO_CLOSE_CODE else "device", "close_code": code, "reason": reason}


def _consume(done: asyncio.Future[None]) -> None:
    if not done.cancelled():
        done.exception()
