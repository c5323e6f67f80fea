"""The simulated board's side of the bridge: runs inside MicroPython (WebAssembly), not CPython.

The WebAssembly port has asyncio but no sockets: bridge.mjs registers `pwsim_host` (Node's TCP
and TLS), and this module turns it into what the firmware uses on an ESP32:
`asyncio.open_connection` streams with MicroPython's Stream API, and `asyncio.run`. It also
starts boot.py and main.py the way the board does.

Bytes cross the bridge as hex strings (see bridge.mjs); received bytes are copied into the
caller's buffer, as a socket's readinto would.
"""

import asyncio
import gc
import sys

import pwsim_host as host

import __main__


class TLSContext:
    """What hardware.tls_context() gives on the simulated board: open_connection hands it to Node's tls."""

    def __init__(self, cadata: str, verify: bool) -> None:
        self.cadata = cadata
        self.verify = verify


class Stream:
    """One TCP connection as MicroPython's asyncio.Stream (extmod/asyncio/stream.py) offers it.

    The host calls `_notify` whenever the connection changes (data, end, error, connected,
    flushed); a task waits on an asyncio.Event for that and asks again. Awaiting the host's JS
    promises instead would break cancellation: in this port a task cancelled while awaiting one
    is not told (see bridge.mjs).
    """

    def __init__(self) -> None:
        self.sid = 0
        self._changed = asyncio.Event()

    def _notify(self) -> None:
        self._changed.set()

    async def _until(self, ask, *args):
        while True:
            answer = ask(self.sid, *args)
            if answer is not None:
                return answer
            self._changed.clear()
            await self._changed.wait()

    def get_extra_info(self, name: str) -> None:
        return None

    async def readinto(self, buf) -> int:  # buf: bytearray or memoryview
        """Read into `buf`; the count, 0 at the end of the stream."""
        got = await self._until(host.take, len(buf))
        if isinstance(got, int):
            raise OSError(got)
        n = len(got) >> 1
        if n:
            buf[:n] = bytes.fromhex(got)
        return n

    async def read(self, n: int = -1) -> bytes:
        """Up to n bytes (n < 0: until the end of the stream); b"" at the end."""
        if n >= 0:
            buf = bytearray(n)
            return bytes(buf[: await self.readinto(buf)])
        out = b""
        while True:
            part = await self.read(512)
            if not part:
                return out
            out += part

    async def readexactly(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            part = await self.read(n - len(out))
            if not part:
                raise EOFError
            out += part
        return out

    async def readline(self) -> bytes:
        out = b""
        while not out.endswith(b"\n"):
            part = await self.read(1)
            if not part:
                break
            out += part
        return out

    def write(self, buf) -> None:  # buf: bytes, bytearray or memoryview
        err = host.write(self.sid, buf.hex())  # hex copies: the caller may reuse buf at once
        if err:
            raise OSError(err)

    async def drain(self) -> None:
        err = await self._until(host.flushed)
        if err:
            raise OSError(err)

    def close(self) -> None:
        pass  # as on the board: the socket is closed by wait_closed()

    async def wait_closed(self) -> None:
        host.close(self.sid)


async def open_connection(hostname: str, port: int, ssl=None, server_hostname: str | None = None) -> tuple:
    """asyncio.open_connection of MicroPython: a (reader, writer) pair, the same Stream twice."""
    secure = ssl is not None and ssl is not False
    cadata = ssl.cadata if isinstance(ssl, TLSContext) else ""
    verify = ssl.verify if isinstance(ssl, TLSContext) else secure
    stream = Stream()
    stream.sid = host.connect(hostname, port, secure, cadata, verify, stream._notify)
    try:
        err = await stream._until(host.state)
    except BaseException:  # cancelled (a wait_for timeout): the socket must not outlive the caller
        host.close(stream.sid)
        raise
    if err:
        host.close(stream.sid)
        raise OSError(err)
    return stream, stream


_started = [False]


def run(coro) -> None:
    """asyncio.run: starts `coro` and returns at once; Node's event loop runs it from then on.

    On the board asyncio.run blocks until `coro` ends; here it cannot (main.py runs inside a
    call from JS), so main.py goes on after it, and the end of `coro` halts the board instead.
    """
    _started[0] = True
    asyncio.create_task(_main(coro))


async def _main(coro) -> None:
    try:
        await coro
        why = "asyncio.run() returned"
    except BaseException as exc:  # noqa: B036  (the board prints any exception that ends main)
        sys.print_exception(exc)
        why = "asyncio.run() raised " + repr(exc)
    host.halt(why)


def _run_file(path: str) -> bool:
    """Run a file as the board runs boot.py and main.py; False when it raised."""
    try:
        with open(path) as f:
            source = f.read()
    except OSError:
        return True
    try:
        exec(compile(source, path, "exec"), __main__.__dict__)  # main.py's globals live on, as on the board
    except BaseException as exc:  # noqa: B036  (what ends main.py is printed, as on the board)
        sys.print_exception(exc)
        host.halt(path + " raised " + repr(exc))
        return False
    return True


def boot(files: list) -> None:
    """Run the boot files named, in order, as the board runs boot.py and main.py at power-on."""
    asyncio.open_connection = open_connection
    asyncio.run = run
    gc.collect()
    for path in files:
        if not _run_file(path):
            return
    if "main.py" in files and not _started[0]:
        host.halt("main.py returned")
