"""The release bundle (docs/fleet.md, "The bundle"), with no I/O: built, packed, and read back checked.

A bundle is one uncompressed POSIX tar file holding `release.json` first, then each file of the
release as `files/<path>`:

    {"format": "pulsewire-release/1", "version": "0.4.0", "mpy_version": 6,
     "files": [{"path": "session.mpy", "sha256": "<64 hex>", "size": 4211}, ..., {"path": "main.py", ...}]}

`files` is in the order the board writes them (the firmware manifest's, main.py last). Reading a
bundle never touches a disk: members are read from memory, and any name other than those two
shapes is refused, so a name like `../x` or `/etc/x` cannot reach anything.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

FORMAT = "pulsewire-release/1"
MANIFEST = "release.json"
FILES_DIR = "files/"
MAX_FILES = 64
MAX_MANIFEST_BYTES = 64 * 1024
# A version is a URL path segment (/api/releases/{version}) and what the board says in hello's fw.
VERSION_CHARS = "[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}"
VERSION = re.compile(VERSION_CHARS + r"\Z")
VERSION_PATTERN = f"^{VERSION_CHARS}$"
# A file goes to the root of the board's filesystem: a plain name, no folder, never "." or "..".
PATH_CHARS = "[A-Za-z0-9_.-]{1,64}"
PATH = re.compile(r"(?!\.\.?\Z)" + PATH_CHARS + r"\Z")
PATH_PATTERN = rf"^(?!\.\.?$){PATH_CHARS}$"
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")
# The board takes incoming messages of at most BOARD_MAX_MESSAGE bytes (the firmware's link.py,
# _RX_MESSAGE) and closes with 1009 on a larger one: the `update` command listing a release's
# files must fit, with ROOT_PATH_ROOM left for a root_path before its base.
BOARD_MAX_MESSAGE = 4096
ROOT_PATH_ROOM = 64
UPDATE_MAX_BYTES = BOARD_MAX_MESSAGE - ROOT_PATH_ROOM
_COMMAND_ID = "c-" + "0" * 12  # as long as the ids channels/commands.py gives


class BundleError(ValueError):
    """Not a usable release bundle; `detail` says what is wrong (an HTTP 400's)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True, slots=True)
class ReleaseFile:
    path: str
    sha256: str
    size: int
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Release:
    version: str
    files: tuple[ReleaseFile, ...]
    mpy_version: int | None = None  # the .mpy format its compiled files need; None: no .mpy in it

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def listing(self) -> list[dict[str, Any]]:
        """Its files as the API and the `update` command show them: path, sha256, size."""
        return [{"path": f.path, "sha256": f.sha256, "size": f.size} for f in self.files]


def is_version(text: str) -> bool:
    return VERSION.match(text) is not None


def make(version: str, files: Iterable[tuple[str, bytes]], mpy_version: int | None = None) -> Release:
    """A release of these (path, content) pairs, in order; each file's digest and size computed here."""
    made = tuple(ReleaseFile(path, hashlib.sha256(data).hexdigest(), len(data), data) for path, data in files)
    release = Release(version, made, mpy_version)
    _check_release(release)
    return release


def pack(release: Release) -> bytes:
    """The bundle's bytes: the same release always packs to the same bytes (no times, no owners)."""
    manifest: dict[str, Any] = {"format": FORMAT, "version": release.version, "mpy_version": release.mpy_version}
    manifest["files"] = release.listing()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        _add(tar, MANIFEST, json.dumps(manifest, indent=1).encode())
        for f in release.files:
            _add(tar, FILES_DIR + f.path, f.data)
    return out.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


def unpack(data: bytes) -> Release:
    """The release in a bundle, every file's size and sha256 checked against release.json; or BundleError."""
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            members = _members(tar)
    except (tarfile.TarError, EOFError):
        raise BundleError("not a release bundle: expected an uncompressed tar file (pulsewire release build)") from None
    if MANIFEST not in members:
        raise BundleError(f"not a release bundle: no {MANIFEST}")
    listed = _manifest(members.pop(MANIFEST))
    files = []
    for i, entry in enumerate(listed["files"]):
        content = members.pop(FILES_DIR + entry["path"], None)
        where = f"files[{i}] ({entry['path']})"
        if content is None:
            raise BundleError(f"{where}: listed in {MANIFEST} but not in the bundle")
        if len(content) != entry["size"]:
            raise BundleError(f"{where}: size {len(content)} does not match the {entry['size']} in {MANIFEST}")
        if hashlib.sha256(content).hexdigest() != entry["sha256"]:
            raise BundleError(f"{where}: sha256 does not match its content")
        files.append(ReleaseFile(entry["path"], entry["sha256"], entry["size"], content))
    if members:
        raise BundleError(f"not listed in {MANIFEST}: {', '.join(sorted(members))[:200]}")
    release = Release(listed["version"], tuple(files), listed["mpy_version"])
    _check_update_fits(release)
    return release


def _members(tar: tarfile.TarFile) -> dict[str, bytes]:
    """name -> content of every member, read in memory; only regular files with the two name shapes."""
    out: dict[str, bytes] = {}
    for member in tar:
        name = member.name
        shown = repr(name[:80])
        if not member.isfile():
            raise BundleError(f"member {shown}: only regular files may be in a bundle")
        if name != MANIFEST and not (name.startswith(FILES_DIR) and PATH.match(name[len(FILES_DIR) :])):
            raise BundleError(f"member {shown}: expected {MANIFEST} or {FILES_DIR}<name> ({PATH_CHARS}, no folders)")
        if name in out:
            raise BundleError(f"member {shown}: twice in the bundle")
        if len(out) > MAX_FILES:
            raise BundleError(f"more than {MAX_FILES} files")
        if name == MANIFEST and member.size > MAX_MANIFEST_BYTES:
            raise BundleError(f"{MANIFEST}: larger than {MAX_MANIFEST_BYTES} bytes")
        extracted = tar.extractfile(member)
        assert extracted is not None  # a regular file
        out[name] = extracted.read()
    return out


def _manifest(raw: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(raw)
    except ValueError:
        raise BundleError(f"{MANIFEST}: not JSON") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise BundleError(f'{MANIFEST}: expected an object with "format": "{FORMAT}"')
    version = obj.get("version")
    if not isinstance(version, str) or not is_version(version):
        raise BundleError(f"{MANIFEST}: version: required, {VERSION_CHARS}")
    mpy = obj.get("mpy_version")
    if mpy is not None and (type(mpy) is not int or not 0 <= mpy <= 255):
        raise BundleError(f"{MANIFEST}: mpy_version: expected an integer 0..255 or null")
    files = obj.get("files")
    if not isinstance(files, list) or not files:
        raise BundleError(f"{MANIFEST}: files: required non-empty list")
    seen: set[str] = set()
    for i, entry in enumerate(files):
        if not isinstance(entry, dict):
            raise BundleError(f"{MANIFEST}: files[{i}]: expected an object with path, sha256 and size")
        path, digest, size = entry.get("path"), entry.get("sha256"), entry.get("size")
        if not isinstance(path, str) or not PATH.match(path):
            raise BundleError(f"{MANIFEST}: files[{i}].path: required, {PATH_CHARS}, no folders, not . or ..")
        if path in seen:
            raise BundleError(f"{MANIFEST}: files[{i}].path: {path} is listed twice")
        seen.add(path)
        if not isinstance(digest, str) or not _SHA256.match(digest):
            raise BundleError(f"{MANIFEST}: files[{i}].sha256: required, 64 lowercase hex digits")
        if type(size) is not int or size < 0:
            raise BundleError(f"{MANIFEST}: files[{i}].size: required non-negative integer")
    return {"version": version, "mpy_version": mpy, "files": files}


def _check_release(release: Release) -> None:
    if not is_version(release.version):
        raise BundleError(f"version {release.version[:80]!r}: expected {VERSION_CHARS}")
    paths = [f.path for f in release.files]
    if not paths:
        raise BundleError("a release needs at least one file")
    if len(paths) > MAX_FILES:
        raise BundleError(f"more than {MAX_FILES} files")
    for path in paths:
        if not PATH.match(path):
            raise BundleError(f"file {path[:80]!r}: expected {PATH_CHARS}, no folders, not . or ..")
    if len(set(paths)) != len(paths):
        raise BundleError("a file is listed twice")
    _check_update_fits(release)


def update_bytes(release: Release) -> int:
    """The size of the `update` command for this release, as the device channel sends it (no root_path)."""
    args = {"version": release.version, "files": release.listing(), "base": f"/api/releases/{release.version}/files/"}
    command = {"type": "command", "id": _COMMAND_ID, "name": "update", "args": args}
    return len(json.dumps(command, separators=(",", ":")).encode())


def _check_update_fits(release: Release) -> None:
    size = update_bytes(release)
    if size > UPDATE_MAX_BYTES:
        raise BundleError(
            f"the `update` command for these {len(release.files)} files would be {size} bytes; a board takes at "
            f"most {UPDATE_MAX_BYTES} (fewer files, or shorter names)"
        )
