"""The connection to the server: connect, say hello, stream batches, obey commands, reconnect.

One connection at a time. Whatever ends it (the server closing, a broken link, a server gone
silent, a protocol error) ends in the same place: a pause that grows with each failure, with
jitter so a fleet that lost its server together does not come back together, and a try again.
Readings wait in the ring meanwhile; batches not acked are sent again on the next connection.
A server that says when to come back (a close reason "... retry in N s", a Retry-After header:
its storage is failing) gets at least that long.
"""

import asyncio
import random
import time

import config
import hardware
import otaboot
import rules
import wifi
import wsclient
import wsframe
from session import ACKED, COMMAND, REJECTED, WELCOME, retry_hint_ms

try:
    from typing import TYPE_CHECKING
except ImportError:
    TYPE_CHECKING = False

if TYPE_CHECKING:
    from session import Session
    from state import Device

try:
    from micropython import const
except ImportError:

    def const(expr: int) -> int:
        return expr


SUBPROTOCOL = "pulsewire.v1"
_ANSWER_MS = const(10000)  # connect + upgrade, and hello to welcome, at most (less if silence_ms is)
_RX_BYTES = const(512)  # the server's messages are short: ack, welcome, error, command
_RX_MESSAGE = const(4096)  # an `update` command lists each release file: about 110 bytes a file
_STABLE_MS = const(60000)  # a connection that lasted this long resets the backoff
_REFUSED_BASE_MS = const(60000)  # a refused token waits long: hammering will not fix it


def backoff_ms(failures: int, base: int, cap: int) -> int:
    """Exponential backoff with "equal jitter": half fixed, half random."""
    step = base << (failures if failures < 12 else 12)
    if step > cap:
        step = cap
    half = step // 2
    return half + random.getrandbits(20) % (half + 1)


async def run(dev: "Device", cfg: dict, session: "Session") -> None:
    secure, host, port, path = config.parse_url(cfg["server"])
    rx = wsframe.Reader(_RX_BYTES, _RX_MESSAGE)
    tx = bytearray(wsframe.HEADER_ROOM + cfg["frame_bytes"])
    authorization = "Bearer " + cfg["token"]
    answer_ms = min(_ANSWER_MS, cfg["silence_ms"])  # a server that accepts TCP and says nothing
    failures = 0
    refusals = 0
    while True:
        while dev.restarting:  # an update was staged: the restart comes, not another connection
            await asyncio.sleep_ms(100)
        if cfg.get("wifi") and not hardware.wifi_connected():
            await wifi.join(cfg["wifi"]["ssid"], cfg["wifi"].get("password", ""), dev)
        dev.status = "connecting"
        delay = 0
        hint = 0  # the wait the server asked for
        try:
            conn: wsclient.Conn = await asyncio.wait_for_ms(
                wsclient.connect(host, port, path, secure, authorization, SUBPROTOCOL, rx, tx, cfg["ca"]),
                answer_ms,
            )
        except wsclient.HandshakeError as exc:
            if exc.status in (401, 403):
                dev.status = "refused"
                delay = backoff_ms(refusals, _REFUSED_BASE_MS, 900_000)
                refusals += 1
                print("link: token refused (%s); check the token, next try in %d s" % (exc.detail, delay // 1000))
            else:
                print("link: handshake failed:", exc.detail)
                hint = retry_hint_ms(exc.retry_after)
        except asyncio.TimeoutError:
            print("link: no answer from %s:%d within %d s" % (host, port, answer_ms // 1000))
        except (OSError, wsframe.ProtocolError) as exc:
            print("link: cannot connect to %s:%d: %r" % (host, port, exc))
        else:
            refusals = 0
            started = time.ticks_ms()
            why = await serve(dev, cfg, session, conn, answer_ms)
            print("link: disconnected:", why)
            if time.ticks_diff(time.ticks_ms(), started) > _STABLE_MS:
                failures = 0
            hint = retry_hint_ms(conn.close_reason)
        if not delay:
            delay = backoff_ms(failures, 1000, 60000)
        if hint > delay:
            delay = hint
        if hint:
            print("link: the server asked to wait; next try in %d s" % (delay // 1000))
        failures += 1
        if dev.status != "refused":
            dev.status = "offline"
        await asyncio.sleep_ms(delay)


async def serve(dev: "Device", cfg: dict, session: "Session", conn: wsclient.Conn, answer_ms: int) -> str:
    """Run one connection until it ends; returns why it ended."""
    room = wsframe.HEADER_ROOM
    try:
        session.connected()
        n = session.hello(conn.tx, room, dev.fw, dev.uptime_ms(), otaboot.report())
        await conn.send_text(n - room)
        while True:
            message: "tuple[int, memoryview]" = await asyncio.wait_for_ms(conn.recv(), answer_ms)
            if session.handle(message[1], hardware.ticks_ms()) == WELCOME:
                break
        otaboot.confirm()  # a version on trial has reached the server: it stays
        if session.interval_ms:
            dev.interval_ms = session.interval_ms
        print("link: online, interval %d ms, %d readings waiting" % (dev.interval_ms, len(session.ring)))
    except asyncio.TimeoutError:
        await conn.hang_up()
        return "no welcome from the server"
    except (wsclient.Closed, OSError, ValueError) as exc:
        await conn.hang_up()
        return "during hello: %r" % (exc,)
    dev.status = "online"
    ended = [""]
    receiver = asyncio.create_task(_receive(dev, cfg, session, conn, ended))
    try:
        while conn.open and not ended[0]:
            dev.wake.clear()
            while session.can_send():
                end = session.next_batch(conn.tx, room, len(conn.tx))
                if end > room:
                    await conn.send_text(end - room)
            silent = time.ticks_diff(time.ticks_ms(), conn.last_rx)
            if silent > cfg["silence_ms"]:
                ended[0] = "server silent for %d s" % (silent // 1000)
                break
            try:
                await asyncio.wait_for_ms(dev.wake.wait(), 1000)
            except asyncio.TimeoutError:
                pass
    except (wsclient.Closed, OSError) as exc:
        ended[0] = ended[0] or "send failed: %r" % (exc,)
    finally:
        receiver.cancel()
        await conn.hang_up()
    return ended[0] or "closed"


async def _receive(dev: "Device", cfg: dict, session: "Session", conn: wsclient.Conn, ended: "list[str]") -> None:
    try:
        while True:
            opcode, payload = await conn.recv()
            if opcode != wsframe.OP_TEXT:
                print("link: ignored a binary message")
                continue
            try:
                kind = session.handle(payload, hardware.ticks_ms())
            except (ValueError, TypeError) as exc:
                print("link: ignored a bad message from the server:", exc)
                continue
            if kind in (ACKED, REJECTED):
                dev.wake.set()
                if kind == REJECTED:
                    print("link: the server refused a batch; it is dropped")
            elif kind == COMMAND:
                await _command(dev, cfg, session, conn)
    except wsclient.Closed as exc:
        if exc.code == 1006:  # no close frame: the TCP connection just ended
            ended[0] = "connection lost"
        else:
            ended[0] = ("server closed (%d %s" % (exc.code, exc.reason)).rstrip() + ")"
    except wsframe.ProtocolError as exc:
        ended[0] = "protocol error: " + exc.reason
        await conn.close(exc.code, exc.reason)
    except OSError as exc:
        ended[0] = "link broke: %r" % (exc,)
    finally:
        conn.open = False
        dev.wake.set()


async def _command(dev: "Device", cfg: dict, session: "Session", conn: wsclient.Conn) -> None:
    if session.command_name == "update":
        _update(dev, cfg, session, conn)
        return
    ok, detail, interval_ms = rules.answer(session.command_name, session.command_args)
    if interval_ms:
        dev.interval_ms = interval_ms
        print("link: interval set to %d ms" % interval_ms)
    n = session.result(conn.ctl, wsframe.HEADER_ROOM, ok, detail)
    await conn.send_ctl_text(n - wsframe.HEADER_ROOM)
    if ok and session.command_name == rules.REBOOT:
        print("link: rebooting on the server's command")
        await conn.close(wsframe.CLOSE_GOING_AWAY, "rebooting")
        hardware.reset()


def _update(dev: "Device", cfg: dict, session: "Session", conn: wsclient.Conn) -> None:
    """Start the update in a task of its own: acks and pings go on while it downloads."""
    import ota  # loaded when an update comes, not before: its code takes heap

    command_id = session.command_id
    args = session.command_args

    async def answer(ok: bool, detail: str) -> None:
        session.command_id = command_id  # another command may have come meanwhile
        n = session.result(conn.ctl, wsframe.HEADER_ROOM, ok, detail)
        if ok and detail.startswith("staged"):
            dev.restarting = True  # the restart follows at once: no reconnect on this version
        try:
            await conn.send_ctl_text(n - wsframe.HEADER_ROOM)
            if dev.restarting:
                await conn.close(wsframe.CLOSE_GOING_AWAY, "updating")
        except (wsclient.Closed, OSError):
            pass  # the connection is gone: the next hello says where the board stands

    async def answer_last(ok: bool, detail: str) -> None:
        await dev.update_answer(ok, detail)

    async def run() -> None:
        try:
            await ota.run(cfg, args, dev.fw, answer_last)
        finally:
            dev.updating = ""

    version = str(args.get("version"))
    if dev.updating:
        if version == dev.updating:  # sent again after a reconnect: the running update answers it
            dev.update_answer = answer
            return
        asyncio.create_task(answer(False, "an update is running already"))
        return
    dev.updating = version
    dev.update_answer = answer
    print("link: update to %r requested" % args.get("version"))
    asyncio.create_task(run())
