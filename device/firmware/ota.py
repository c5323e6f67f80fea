"""Over-the-air updates: download a release, check it, stage it beside the running version, switch.

The server's `update` command names the release's files with their sha256 and size, and where
they are (`base`, a path on the server the board streams to). Each file is fetched over HTTP(S)
with the device's token, read in _CHUNK pieces into one buffer and hashed as it arrives; a
connection that breaks is picked up where it stopped with a Range request, and so is a download
cut by a reset (the part already in flash is hashed again first). Files go into
/fw/<version>.part/; once every file matches, the manifest is written and the folder renamed to
/fw/<version>/ (staged), then otaboot.switch() makes it the next boot's version, on trial
(otaboot.py). A file that does not match its sha256 is deleted and the update refused.
"""

import asyncio
import gc
import json
import os
import time
from hashlib import sha256

import config
import hardware
import otaboot

try:
    from typing import TYPE_CHECKING
except ImportError:
    TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any, Awaitable, Callable

    Stream = Any  # MicroPython's asyncio.Stream (readinto, write, drain), which the stubs lack
    Answer = Callable[[bool, str], Awaitable[None]]

try:
    from micropython import const
except ImportError:

    def const(expr: int) -> int:
        return expr


UPDATE = "update"  # the command's name
_CHUNK = const(1024)  # bytes read from the network (and hashed, and written) at a time
_HEAD = const(768)  # the longest HTTP response head taken
_TRIES = const(5)  # connections per file before the update is given up
_ANSWER_MS = const(10000)  # connect, and each read, at most
_PART = ".part"


class UpdateError(Exception):
    """The update cannot go on; the message is the `result`'s reason."""


class _Again(Exception):
    """This connection failed; another may do better (the server restarted, the network dropped)."""


class Progress:
    """What one update measured: bytes fetched, connections made, the heap's peak."""

    def __init__(self) -> None:
        gc.collect()
        self.heap_before = gc.mem_alloc()
        self.heap_peak = self.heap_before
        self.fetched = 0
        self.requests = 0
        self.started = time.ticks_ms()

    def sample(self) -> None:
        # Measured after a collection: what the update holds, not garbage waiting to be swept.
        gc.collect()
        used = gc.mem_alloc()
        if used > self.heap_peak:
            self.heap_peak = used


def check(args: dict) -> "tuple[str, list, str]":
    """(version, files, base) of an `update` command's args; UpdateError says what is wrong."""
    version = args.get("version")
    files = args.get("files")
    base = args.get("base")
    if not isinstance(version, str) or not otaboot.valid_name(version):
        raise UpdateError("version: expected a plain name such as 0.4.0")
    if not isinstance(base, str) or not base.startswith("/"):
        raise UpdateError("base: expected a path on the server, /api/releases/%s/files/" % version)
    if not isinstance(files, list) or not files:
        raise UpdateError("files: expected a list of {path, sha256, size}")
    for entry in files:
        ok = isinstance(entry, dict) and isinstance(entry.get("path"), str) and otaboot.valid_name(entry["path"])
        ok = ok and isinstance(entry.get("sha256"), str) and len(entry["sha256"]) == 64
        ok = ok and isinstance(entry.get("size"), int) and entry["size"] >= 0
        if not ok:
            raise UpdateError("files: each needs a plain path, a sha256 (64 hex digits) and a size")
    if not any(e["path"] in ("main.py", "main.mpy") for e in files):
        raise UpdateError("files: no main.py; the board would have nothing to run")
    rollout = args.get("rollout", "")
    if not isinstance(rollout, str) or len(rollout) > 64:
        raise UpdateError("rollout: expected an id of at most 64 characters")
    return version, files, base


async def stage(cfg: dict, args: dict, running_fw: str) -> str:
    """Download, check and stage the release, and switch to it; returns the `result` detail.

    "" when there is nothing to do (that version runs already). Raises UpdateError.
    """
    version, files, base = check(args)
    if version == running_fw:
        return ""
    progress = Progress()
    folder = otaboot.folder_of(version)
    if otaboot.verify(folder):  # not staged already (a cut after staging leaves it whole)
        _tidy(version)
        part = folder + _PART
        otaboot.make_folder(otaboot.ROOT)
        otaboot.make_folder(part)
        secure, host, port, path = config.parse_url(cfg["server"])
        where = (secure, host, port, path[: -len("/ws/device")] + base, cfg["ca"])
        buf = bytearray(_CHUNK)
        auth = "Bearer " + cfg["token"]
        for entry in files:
            await _fetch(where, auth, part, entry, buf, progress)
            progress.sample()  # between files: a collection for every piece would slow the download
        _write_manifest(part, version, files)
        problem = otaboot.verify(part)  # read back from flash: what the boot layer will check
        progress.sample()
        if problem:
            raise UpdateError(problem)
        _remove_tree(folder)
        os.rename(part, folder)
    otaboot.switch(version, running_fw, cfg["trial_ms"], args.get("rollout", ""))
    _tidy(version)  # what the switch left unreferenced: the version before the one running
    seconds = time.ticks_diff(time.ticks_ms(), progress.started) / 1000
    heap_kb = (progress.heap_peak - progress.heap_before) / 1024
    print(
        "ota: staged %s: %d files, %d bytes fetched in %d requests, %.1f s; heap +%.1f KB at most (%d bytes before)"
        % (version, len(files), progress.fetched, progress.requests, seconds, heap_kb, progress.heap_before)
    )
    return "staged %s; restarting into it on trial" % version


async def _fetch(where: tuple, auth: str, part: str, entry: dict, buf: bytearray, progress: Progress) -> None:
    """One file into part/, resuming what an earlier try left; checked against its sha256."""
    target = part + "/" + entry["path"]
    size = entry["size"]
    digest, have = otaboot.file_sha256(target, buf)
    if have == size and digest == entry["sha256"]:
        return  # fetched whole before a cut
    h = sha256()
    if 0 < have < size:  # a cut left the first `have` bytes: hash them again and ask for the rest
        _hash_prefix(target, h, buf)
    else:
        _remove(target)
        have = 0
    failures = 0
    while have < size:
        try:
            have = await _get(where, auth, entry["path"], target, have, size, h, buf, progress)
        except _Again as exc:
            failures += 1
            if failures >= _TRIES:
                raise UpdateError("could not fetch %s: %s" % (entry["path"], exc))
            print("ota: %s: %s; trying again" % (entry["path"], exc))
            await asyncio.sleep_ms(500 << failures)
        if have < 0:  # the server sent the whole file instead of the rest: start it again
            _remove(target)
            h = sha256()
            have = 0
    if otaboot.hex_digest(h) != entry["sha256"]:
        _remove(target)
        raise UpdateError("%s does not match its sha256; refused" % entry["path"])


def _hash_prefix(target: str, h: "sha256", buf: bytearray) -> None:
    view = memoryview(buf)
    with open(target, "rb") as f:
        while True:
            n = f.readinto(buf)
            if not n:
                return
            h.update(view[:n])


async def _get(
    where: tuple, auth: str, name: str, target: str, have: int, size: int, h: "sha256", buf: bytearray, p: Progress
) -> int:
    """One request for the file's bytes from `have` on, appended to target; returns how many it has now.

    -1: the server ignored the Range and sent the file from its start (the caller starts over).
    """
    secure, host, port, prefix, ca = where
    ctx = hardware.tls_context(ca) if secure else None
    try:
        if ctx is None:
            opening = asyncio.open_connection(host, port)
        else:
            opening = asyncio.open_connection(host, port, ssl=ctx, server_hostname=host)
        pair: "tuple[Stream, Stream]" = await asyncio.wait_for_ms(opening, _ANSWER_MS)
        reader, writer = pair
    except (OSError, asyncio.TimeoutError) as exc:
        raise _Again("cannot connect: %r" % (exc,))
    p.requests += 1
    try:
        hostname = host if port == (443 if secure else 80) else "%s:%d" % (host, port)
        request = "GET %s%s HTTP/1.0\r\nHost: %s\r\nAuthorization: %s\r\nRange: bytes=%d-\r\n\r\n"
        writer.write((request % (prefix, name, hostname, auth, have)).encode())
        await writer.drain()
        start, end = await _head(reader, buf, have, size)
        if start < 0:
            return -1
        view = memoryview(buf)
        with open(target, "ab") as f:
            while True:
                if start < end:  # what came with the head first, then what is read
                    n = min(end - start, size - have)
                    f.write(view[start : start + n])
                    h.update(view[start : start + n])
                    have += n
                    p.fetched += n
                if have >= size:
                    return have
                start = 0
                end = await asyncio.wait_for_ms(reader.readinto(view[: min(_CHUNK, size - have)]), _ANSWER_MS)
                if not end:
                    raise _Again("the server closed the connection at byte %d of %d" % (have, size))
    except (OSError, asyncio.TimeoutError) as exc:
        raise _Again("%r at byte %d of %d" % (exc, have, size))
    finally:
        try:
            writer.close()
            await writer.wait_closed()
        except OSError:
            pass


async def _head(reader: "Stream", buf: bytearray, have: int, size: int) -> "tuple[int, int]":
    """Read the response head into buf; (where the body starts in buf, where it ends so far).

    (-1, -1) when a 200 brought the whole file though the rest was asked for.
    """
    end = 0
    while True:
        n = await asyncio.wait_for_ms(reader.readinto(memoryview(buf)[end:_HEAD]), _ANSWER_MS)
        if not n:
            raise _Again("the server closed the connection before answering")
        end += n
        at = bytes(buf[:end]).find(b"\r\n\r\n")
        if at >= 0:
            break
        if end >= _HEAD:
            raise UpdateError("the server's answer has a head over %d bytes" % _HEAD)
    lines = bytes(buf[:at]).decode().split("\r\n")
    parts = lines[0].split(" ")
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    if status == 206:
        for line in lines[1:]:
            if line[:14].lower() == "content-range:":
                first, _, total = line[14:].strip()[6:].partition("/")  # "bytes 100-4210/4211"
                if int(first.partition("-")[0]) != have:
                    raise _Again("the server sent a range from another byte")
                if total != "*" and int(total) != size:
                    raise UpdateError("the server's file is %s bytes, the release says %d" % (total, size))
    elif status == 200:
        if have:
            return -1, -1
    elif status in (401, 403):
        raise UpdateError("the server refused the device's token (HTTP %d)" % status)
    elif status == 404:
        raise UpdateError("the server has no such release file (HTTP 404)")
    else:
        raise _Again("HTTP %d" % status)
    return at + 4, end


def _write_manifest(part: str, version: str, files: list) -> None:
    with open(part + "/" + otaboot.MANIFEST, "w") as f:
        json.dump({"version": version, "files": files}, f)


def _tidy(version: str) -> None:
    """Remove what /fw holds beyond the running version, the one to go back to and this download."""
    keep = otaboot.kept()
    try:
        names = os.listdir(otaboot.ROOT)
    except OSError:
        return
    for name in names:
        if name in keep or name == version + _PART or not otaboot.valid_name(name) or name.startswith("boot."):
            continue
        _remove_tree(otaboot.folder_of(name))


def _remove_tree(folder: str) -> None:
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        _remove(folder + "/" + name)
    try:
        os.rmdir(folder)
    except OSError:
        pass


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


async def run(cfg: dict, args: dict, running_fw: str, answer: "Answer") -> None:
    """The `update` command from start to restart: stage, answer, and boot the new version.

    `answer(ok, detail)` sends the command's result (a coroutine from link.py); when the
    connection is gone by then, the next hello tells the server where the board stands.
    """
    try:
        detail = await stage(cfg, args, running_fw)
    except (UpdateError, OSError, ValueError) as exc:
        reason = exc.args[0] if isinstance(exc, UpdateError) else "%r" % (exc,)
        print("ota: update refused:", reason)
        await answer(False, reason)
        return
    if not detail:
        await answer(True, "already running %s" % running_fw)
        return
    await answer(True, detail)
    print("ota: restarting into", args["version"])
    hardware.reset()
