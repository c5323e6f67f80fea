"""Server-to-device commands (docs/protocol.md, `command` and `result`), without HTTP.

`send` puts a `command` frame on a device's connection and returns the pending command, whose
`answer` future resolves when the device's `result` with the same id arrives. The device channel
hands every `result` to `settle` and calls `abandon` when the connection ends. A `set_interval`
the device answers with `ok: true` is stored (through the writer) before its answer resolves, so
the device's next `welcome` carries the interval.

Pending commands live on the connection, at most `MAX_PENDING` of them: a device that never
answers (firmware without command support) cannot make the server keep commands forever; the
oldest is forgotten and its late result is then logged as unknown.
"""

from __future__ import annotations

import asyncio
import logging
import secrets

from pulsewire.channels.presence import Connection, PendingCommand
from pulsewire.protocol import device as codec
from pulsewire.protocol.rules import CMD_SET_INTERVAL
from pulsewire.storage import devices as store
from pulsewire.storage.writer import BatchingWriter

log = logging.getLogger("pulsewire.commands")

MAX_PENDING = 32  # commands of one connection waiting for their result
SEND_TIMEOUT_S = 5.0  # longest wait for the device's hello and the send when the caller does not wait for a result


class ConnectionEnded(Exception):
    """The connection ended before the command was sent, or before its result arrived."""


class NotStored(Exception):
    """The device carried the command out, but the server could not record its effect."""


def new_id() -> str:
    return "c-" + secrets.token_hex(6)


async def send(conn: Connection, name: str, args: dict[str, object], cid: str | None = None) -> PendingCommand:
    """Send a checked command (`rules.command_args`) once the device has said hello, with id `cid`
    (another instance's, for a command it routed here) or a new one.

    Raises `ConnectionEnded` when the connection ends first or the frame cannot be sent. The
    caller bounds the wait (a device may take its time to say hello).
    """
    await conn.ready.wait()
    if conn.ended:
        raise ConnectionEnded
    cid = cid or new_id()
    while cid in conn.commands:
        cid = new_id()
    answer: asyncio.Future[codec.Result] = asyncio.get_running_loop().create_future()
    answer.add_done_callback(_consume)
    pending = PendingCommand(cid, name, dict(args), answer)
    while len(conn.commands) >= MAX_PENDING:
        oldest = conn.commands.pop(next(iter(conn.commands)))
        log.warning(
            "too many commands without result; forgetting the oldest",
            extra={"device": conn.device_id, "id": oldest.id, "command": oldest.name},
        )
    # Registered before sending, so a result that comes back at once finds it.
    conn.commands[cid] = pending
    try:
        await conn.send(codec.command(cid, name, pending.args))
    except Exception as exc:
        conn.commands.pop(cid, None)
        raise ConnectionEnded from exc
    except BaseException:  # cancelled (the caller's time ran out): the command counts as not sent
        conn.commands.pop(cid, None)
        raise
    log.info(
        "command sent",
        extra={"device": conn.device_id, "id": cid, "command": name, "command_args": codec.encode(pending.args)},
    )
    return pending


async def settle(writer: BatchingWriter, conn: Connection, result: codec.Result) -> PendingCommand | None:
    """Match a device's `result` to its command; None when no command of this connection has its id."""
    pending = conn.commands.pop(result.id, None)
    if pending is None:
        return None
    if result.ok and pending.name == CMD_SET_INTERVAL:
        try:
            await writer.call(store.set_interval(conn.device_id, pending.args["ms"]))
        except Exception as exc:
            log.error(
                "device applied set_interval but storing it failed",
                extra={"device": conn.device_id, "id": pending.id, "error": f"{type(exc).__name__}: {exc}"[:300]},
            )
            if not pending.answer.done():
                pending.answer.set_exception(NotStored(str(exc)))
            return pending
    if not pending.answer.done():
        pending.answer.set_result(result)
    return pending


def abandon(conn: Connection) -> None:
    """The connection has ended: whoever waits for a hello or a result is told so."""
    conn.ended = True
    conn.ready.set()
    for pending in conn.commands.values():
        if not pending.answer.done():
            pending.answer.set_exception(ConnectionEnded())
    conn.commands.clear()


def _consume(answer: asyncio.Future[codec.Result]) -> None:
    """Nobody may be waiting any more (wait=0, or the caller timed out): retrieve the exception."""
    if not answer.cancelled():
        answer.exception()
