"""The release bundle (pulsewire.releases.bundle) on bytes: packed, read back, and every bad bundle refused."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from typing import Any

import pytest

from pulsewire import firmware
from pulsewire.releases.bundle import (
    BOARD_MAX_MESSAGE,
    FORMAT,
    ROOT_PATH_ROOM,
    UPDATE_MAX_BYTES,
    BundleError,
    Release,
    ReleaseFile,
    make,
    pack,
    unpack,
)

FILES = [("session.mpy", b"M\x06" + bytes(range(200))), ("main.py", b'FW_VERSION = "0.4.0"\n')]


def tar(members: list[tuple[str, bytes]], kinds: dict[str, bytes] | None = None) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            if kinds and name in kinds:
                info.type = kinds[name]
                info.size = 0
                info.linkname = "/etc/passwd"
                t.addfile(info)
                continue
            t.addfile(info, io.BytesIO(data))
    return out.getvalue()


def manifest(files: list[dict[str, Any]], **extra: Any) -> bytes:
    return json.dumps({"format": FORMAT, "version": "0.4.0", "mpy_version": 6, "files": files, **extra}).encode()


def listing(members: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
    return [{"path": n, "sha256": hashlib.sha256(d).hexdigest(), "size": len(d)} for n, d in members]


def test_packed_and_read_back_the_same_and_deterministic() -> None:
    release = make("0.4.0", FILES, 6)
    data = pack(release)
    assert data == pack(make("0.4.0", FILES, 6))
    back = unpack(data)
    assert back == release
    assert back.listing() == listing(FILES)
    assert back.size == sum(len(d) for _, d in FILES)
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        assert t.getnames() == ["release.json", "files/session.mpy", "files/main.py"]


def good(files: list[tuple[str, bytes]] = FILES, listed: list[dict[str, Any]] | None = None) -> list[tuple[str, bytes]]:
    return [("release.json", manifest(listed if listed is not None else listing(files)))] + [
        ("files/" + n, d) for n, d in files
    ]


@pytest.mark.parametrize(
    "members, kinds, detail",
    [
        ([("release.json", b"{}")], None, 'expected an object with "format"'),
        (good()[1:], None, "no release.json"),
        (
            good(listed=[{**listing(FILES)[0], "sha256": "0" * 64}, listing(FILES)[1]]),
            None,
            "files[0] (session.mpy): sha256 does not match its content",
        ),
        (
            good(listed=[{**listing(FILES)[0], "size": 3}, listing(FILES)[1]]),
            None,
            "files[0] (session.mpy): size 202 does not match the 3 in release.json",
        ),
        (good()[:-1], None, "files[1] (main.py): listed in release.json but not in the bundle"),
        ([*good(), ("files/extra.py", b"x")], None, "not listed in release.json: files/extra.py"),
        ([*good(), ("files/../../etc/cron.d/x", b"x")], None, "member 'files/../../etc/cron.d/x': expected"),
        ([*good(), ("/etc/passwd", b"x")], None, "member '/etc/passwd': expected"),
        ([*good(), ("files/sub/x.py", b"x")], None, "no folders"),
        ([*good(), ("files/link.py", b"")], {"files/link.py": tarfile.SYMTYPE}, "only regular files"),
        (good(listed=[{"path": "../boot.py", "sha256": "0" * 64, "size": 0}]), None, "files[0].path: required"),
        (good(listed=[{"path": "..", "sha256": "0" * 64, "size": 0}]), None, "files[0].path: required"),
        (good(listed=[]), None, "files: required non-empty list"),
        ([("release.json", manifest(listing(FILES), version="../0.4"))], None, "version: required"),
        ([("release.json", b"not json")], None, "release.json: not JSON"),
    ],
    ids=lambda v: str(v)[:40] if isinstance(v, str) else None,
)
def test_bad_bundles_are_refused_with_what_is_wrong(
    members: list[tuple[str, bytes]], kinds: dict[str, bytes] | None, detail: str
) -> None:
    with pytest.raises(BundleError) as refused:
        unpack(tar(members, kinds))
    assert detail in refused.value.detail


def test_not_a_tar_and_a_compressed_one_are_refused() -> None:
    for data in (b"", b"PK\x03\x04 a zip", b"\x1f\x8b\x08 gzip" + bytes(600)):
        with pytest.raises(BundleError, match="expected an uncompressed tar file"):
            unpack(data)


def test_make_refuses_bad_names_and_versions() -> None:
    with pytest.raises(BundleError, match="expected"):
        make("0.4.0", [("../x.py", b"")])
    with pytest.raises(BundleError, match="version"):
        make("..", FILES)
    with pytest.raises(BundleError, match="listed twice"):
        make("0.4.0", [FILES[0], FILES[0]])


def many(count: int, name_length: int = 20) -> list[tuple[str, bytes]]:
    """`count` modules with names `name_length` long, and main.py."""
    return [(f"m{n:03}".ljust(name_length - 4, "x") + ".mpy", bytes([n])) for n in range(count)] + FILES[-1:]


def test_a_release_whose_update_command_would_not_fit_the_board_s_message_buffer_is_refused() -> None:
    fits = make("0.4.0", many(20))
    assert unpack(pack(fits)) == fits
    with pytest.raises(BundleError, match=r"the `update` command for these 41 files would be \d+ bytes"):
        make("0.4.0", many(40))
    too_big = Release("0.4.0", tuple(ReleaseFile(p, hashlib.sha256(d).hexdigest(), len(d), d) for p, d in many(40)))
    with pytest.raises(BundleError, match=f"a board takes at most {UPDATE_MAX_BYTES}"):
        unpack(pack(too_big))


def test_the_bound_is_the_firmware_s_largest_incoming_message() -> None:
    link = (firmware.folder() / "link.py").read_text()
    found = re.search(r"^_RX_MESSAGE = const\((\d+)\)", link, re.M)
    assert found is not None
    assert int(found.group(1)) == BOARD_MAX_MESSAGE
    assert UPDATE_MAX_BYTES == BOARD_MAX_MESSAGE - ROOT_PATH_ROOM
