"""Firmware releases over HTTP against the real server on SQLite and PostgreSQL: upload, list, remove,
every bad bundle refused, and file serving with a device's token, the admin key, Range and ETag."""

from __future__ import annotations

import hashlib
import io
import secrets
import tarfile

import httpx
import pytest

from pulsewire.releases.bundle import make, pack
from tests.support.server import Server

MAIN = b'FW_VERSION = "{v}"\nprint("hello")\n'
SESSION = bytes(range(256)) * 40  # 10,240 bytes, every byte value


def version() -> str:
    return "0.9." + secrets.token_hex(3)


def bundle(v: str, extra: list[tuple[str, bytes]] | None = None) -> bytes:
    files = [("session.mpy", SESSION), *(extra or []), ("main.py", MAIN.replace(b"{v}", v.encode()))]
    return pack(make(v, files, 6))


def upload(server: Server, data: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(
        server.base + "/api/releases",
        content=data,
        headers=server.admin() if headers is None else headers,
        timeout=30,
    )


def fetch(server: Server, v: str, path: str, token: str | None, **headers: str) -> httpx.Response:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.get(f"{server.base}/api/releases/{v}/files/{path}", headers=headers, timeout=10)


def test_upload_list_fetch_and_remove(server: Server) -> None:
    v = version()
    resp = upload(server, bundle(v))
    assert resp.status_code == 201, resp.text
    stored = resp.json()
    main = MAIN.replace(b"{v}", v.encode())
    assert stored["version"] == v and stored["mpy_version"] == 6 and stored["size"] == len(SESSION) + len(main)
    assert stored["files"] == [
        {"path": "session.mpy", "sha256": hashlib.sha256(SESSION).hexdigest(), "size": len(SESSION)},
        {"path": "main.py", "sha256": hashlib.sha256(main).hexdigest(), "size": len(main)},
    ]
    listed = {r["version"]: r for r in server.get("/api/releases").json()}
    assert listed[v] == stored
    assert upload(server, bundle(v)).status_code == 409  # a version is stored once
    _, token = server.register()
    got = fetch(server, v, "session.mpy", token)
    assert got.status_code == 200 and got.content == SESSION
    assert got.headers["etag"] == f'"{hashlib.sha256(SESSION).hexdigest()}"'
    assert got.headers["accept-ranges"] == "bytes"
    assert got.headers["content-type"] == "application/octet-stream"
    removed = httpx.delete(f"{server.base}/api/releases/{v}", headers=server.admin(), timeout=10)
    assert removed.status_code == 200 and removed.json() == {"version": v}
    assert v not in {r["version"] for r in server.get("/api/releases").json()}
    assert fetch(server, v, "session.mpy", token).status_code == 404
    again = httpx.delete(f"{server.base}/api/releases/{v}", headers=server.admin(), timeout=10)
    assert again.status_code == 404 and again.json()["detail"] == f"no release {v!r}"


def test_ranges_resume_a_download_byte_for_byte(server: Server) -> None:
    v = version()
    assert upload(server, bundle(v)).status_code == 201
    _, token = server.register()
    got = b""
    chunk = 4000
    while len(got) < len(SESSION):  # what a board does: bounded chunks, resumed where it stopped
        part = fetch(server, v, "session.mpy", token, Range=f"bytes={len(got)}-{len(got) + chunk - 1}")
        assert part.status_code == 206, part.text
        end = min(len(got) + chunk, len(SESSION)) - 1
        assert part.headers["content-range"] == f"bytes {len(got)}-{end}/{len(SESSION)}"
        got += part.content
    assert got == SESSION
    tail = fetch(server, v, "session.mpy", token, Range="bytes=-10")
    assert tail.status_code == 206 and tail.content == SESSION[-10:]
    for bad in ("bytes=10240-", "bytes=9-3", "bytes=0-1,4-5", "lines=1-2"):
        refused = fetch(server, v, "session.mpy", token, Range=bad)
        assert refused.status_code == 416, (bad, refused.text)
        assert refused.headers["content-range"] == f"bytes */{len(SESSION)}"
        assert refused.json()["detail"].startswith("Range:")
    etag = f'"{hashlib.sha256(SESSION).hexdigest()}"'
    same = fetch(server, v, "session.mpy", token, Range="bytes=0-9", **{"If-Range": etag})
    assert same.status_code == 206 and same.content == SESSION[:10]
    other = fetch(server, v, "session.mpy", token, Range="bytes=0-9", **{"If-Range": '"' + "0" * 64 + '"'})
    assert other.status_code == 200 and other.content == SESSION  # not the file the download began with


def test_files_need_a_device_token_or_the_admin_key(server: Server) -> None:
    v = version()
    assert upload(server, bundle(v)).status_code == 201
    dev, token = server.register()
    assert fetch(server, v, "main.py", server.admin_key).status_code == 200
    missing = fetch(server, v, "main.py", None)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert fetch(server, v, "main.py", "not-a-token").status_code == 403
    rotated = httpx.post(f"{server.base}/api/devices/{dev}/token", headers=server.admin(), timeout=10)
    assert rotated.status_code == 200
    assert fetch(server, v, "main.py", token).status_code == 403  # the old token stopped working
    assert fetch(server, v, "main.py", rotated.json()["token"]).status_code == 200
    assert fetch(server, v, "nothere.mpy", server.admin_key).status_code == 404
    assert fetch(server, "0.0.none", "main.py", server.admin_key).status_code == 404


def test_upload_needs_the_admin_key(server: Server) -> None:
    v = version()
    assert upload(server, bundle(v), headers={}).status_code == 401
    assert upload(server, bundle(v), headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert v not in {r["version"] for r in server.get("/api/releases").json()}


def _tar(members: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _members(data: bytes) -> list[tuple[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        return [(m.name, t.extractfile(m).read()) for m in t]  # type: ignore[union-attr]


def test_bad_bundles_are_refused_and_nothing_is_stored(server: Server) -> None:
    v = version()
    members = _members(bundle(v))
    tampered = [(n, d if n != "files/session.mpy" else d[:-1] + b"\x00") for n, d in members]
    traversal = [*members, ("files/../../boot.py", b"import os")]
    cases = {
        "sha256": (_tar(tampered), "files[0] (session.mpy): sha256 does not match its content"),
        "traversal": (_tar(traversal), "member 'files/../../boot.py': expected release.json or files/<name>"),
        "not a tar": (b"hello", "not a release bundle"),
        "empty": (b"", "not a release bundle"),
    }
    for name, (data, detail) in cases.items():
        resp = upload(server, data)
        assert resp.status_code == 400, (name, resp.text)
        assert detail in resp.json()["detail"], (name, resp.json())
    assert v not in {r["version"] for r in server.get("/api/releases").json()}


def test_a_bundle_over_release_max_bytes_gets_413(server: Server) -> None:
    v = version()
    big = bundle(v, [("blob.bin", secrets.token_bytes(1_100_000))])  # the default limit is 1 MiB
    resp = upload(server, big)
    assert resp.status_code == 413
    assert resp.json()["detail"] == "the bundle is larger than release_max_bytes (1048576 bytes)"

    def chunks() -> object:  # no Content-Length: counted as it arrives
        yield big[:500_000]
        yield big[500_000:]

    streamed = httpx.post(server.base + "/api/releases", content=chunks(), headers=server.admin(), timeout=30)  # type: ignore[arg-type]
    assert streamed.status_code == 413
    assert v not in {r["version"] for r in server.get("/api/releases").json()}


@pytest.mark.parametrize("path", ["..%2Fboot.py", "a%2Fb.py", "%2E%2E"])
def test_file_names_outside_the_rule_are_refused(server: Server, path: str) -> None:
    resp = httpx.get(f"{server.base}/api/releases/0.1.0/files/{path}", headers=server.admin(), timeout=10)
    assert resp.status_code in (400, 404), resp.text
