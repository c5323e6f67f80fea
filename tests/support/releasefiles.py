"""Firmware releases for the board's update tests: built from device/firmware, served over real HTTP.

`build_release` makes a release as `pulsewire flash` compiles the firmware (main.py as source,
every other module as .mpy), from a copy of device/firmware with its version set and any edits
applied; `ReleaseFiles` serves releases at /api/releases/{version}/files/{path} with a stdlib
HTTP server on 127.0.0.1 that checks the device's Bearer token and honours `Range: bytes=N-`,
as the server's route does (docs/protocol.md). Requests are recorded, and a file can be served
slowly, to cut a download in its middle.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pulsewire_devkit.flash.mpy import compile_firmware
from tests.support.simboard import FIRMWARE

BASE = "/api/releases/{version}/files/"


@dataclass
class Release:
    version: str
    files: dict[str, bytes]  # path -> bytes, in the manifest's order

    def manifest(self) -> list[dict[str, Any]]:
        return [{"path": p, "sha256": hashlib.sha256(d).hexdigest(), "size": len(d)} for p, d in self.files.items()]

    def command(self, command_id: str = "c-1") -> dict[str, Any]:
        """The `update` command for this release, as docs/protocol.md has the server send it."""
        args = {"version": self.version, "files": self.manifest(), "base": BASE.format(version=self.version)}
        return {"type": "command", "id": command_id, "name": "update", "args": args}

    @property
    def size(self) -> int:
        return sum(len(d) for d in self.files.values())


def build_release(version: str, tmp: Path, edit: Callable[[dict[str, str]], None] | None = None) -> Release:
    """The firmware at `version` (main.py's FW_VERSION), with `edit` applied to its sources first."""
    folder = tmp / f"firmware-{version}"
    shutil.copytree(FIRMWARE, folder)
    sources = {p.name: p.read_text() for p in folder.glob("*.py")}
    sources["main.py"] = re.sub(r'FW_VERSION = "[^"]*"', f'FW_VERSION = "{version}"', sources["main.py"])
    if edit is not None:
        edit(sources)
    for name, text in sources.items():
        (folder / name).write_text(text)
    compiled = compile_firmware(folder)
    return Release(version, {f.name: f.data for f in compiled.files})


@dataclass
class Served:
    path: str
    range: str | None
    status: int
    sent: int


@dataclass
class ReleaseFiles:
    """Release files over HTTP for one device token.

    `slow`: {path: delay} sends that file 512 bytes every `delay` s ("*": every file).
    """

    token: str
    releases: dict[str, dict[str, bytes]] = field(default_factory=dict)
    requests: list[Served] = field(default_factory=list)
    slow: dict[str, float] = field(default_factory=dict)
    port: int = 0

    def add(self, release: Release, replace: dict[str, bytes] | None = None) -> None:
        """Serve `release`; `replace` serves other bytes for some paths than the manifest says."""
        self.releases[release.version] = {**release.files, **(replace or {})}

    def fetched(self, path: str) -> list[Served]:
        return [r for r in self.requests if r.path.endswith("/" + path)]


def _handler(files: ReleaseFiles) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002  (the base class's name)
            pass

        def do_GET(self) -> None:  # noqa: N802  (http.server's name)
            served = Served(self.path, self.headers.get("Range"), 0, 0)
            files.requests.append(served)
            match = re.fullmatch(r"/api/releases/([^/]+)/files/([^/]+)", self.path)
            if self.headers.get("Authorization") != f"Bearer {files.token}":
                return self._status(served, 401)
            data = files.releases.get(match.group(1), {}).get(match.group(2)) if match else None
            if data is None:
                return self._status(served, 404)
            start = 0
            ranged = re.fullmatch(r"bytes=(\d+)-", served.range or "")
            if ranged:
                start = int(ranged.group(1))
                if start >= len(data):
                    return self._status(served, 416)
            served.status = 206 if ranged else 200
            self.send_response(served.status)
            self.send_header("Content-Length", str(len(data) - start))
            if ranged:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            self.end_headers()
            delay = files.slow.get(match.group(2), files.slow.get("*", 0)) if match else 0
            try:
                for at in range(start, len(data), 512):
                    self.wfile.write(data[at : at + 512])
                    self.wfile.flush()
                    served.sent += len(data[at : at + 512])
                    if delay:
                        time.sleep(delay)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the board went away (a reset in the middle, on purpose)

        def _status(self, served: Served, status: int) -> None:
            served.status = status
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler


@contextmanager
def release_files(token: str) -> Iterator[ReleaseFiles]:
    files = ReleaseFiles(token)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(files))
    server.daemon_threads = True
    files.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield files
    finally:
        server.shutdown()
        server.server_close()
