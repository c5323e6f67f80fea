"""Firmware releases over HTTP (docs/protocol.md, "Releases and rollouts"; docs/fleet.md).

A release arrives as the bundle `pulsewire release build` makes, read up to `release_max_bytes`
and checked whole (`releases/bundle.py`) before anything is stored. Its files are served to
boards, which authenticate with their own device token (the admin key works too), whole or one
byte range at a time, with the file's sha256 as its ETag.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from pulsewire.app.access import AdminDep, ReaderDep
from pulsewire.app.services import ReadsDep, RolloutsDep, SettingsDep, WriterDep, services_of
from pulsewire.clock import now_ms
from pulsewire.http.byteranges import RangeError, byte_range
from pulsewire.http.responses import ADMIN, READ, answers
from pulsewire.releases.bundle import PATH_CHARS, VERSION_PATTERN, BundleError, unpack
from pulsewire.storage import releases as store
from pulsewire.tokens import bearer, same_secret, token_hash

log = logging.getLogger("pulsewire.releases")

router = APIRouter(tags=["releases"])

Version = Annotated[str, Path(pattern=VERSION_PATTERN, description="Release version, as the board reports it")]
# No file is named "." or "..": those get 404 (a path parameter's pattern cannot say so, having no lookahead).
FilePath = Annotated[str, Path(pattern=f"^{PATH_CHARS}$", description="A file of the release, as its listing names it")]


class ReleaseFileOut(BaseModel):
    path: str
    sha256: str = Field(description="Hex SHA-256 of the file's bytes; also its ETag when fetched.")
    size: int


class ReleaseOut(BaseModel):
    version: str
    mpy_version: int | None = Field(description="The .mpy format its compiled files need; null: none compiled.")
    size: int = Field(description="Bytes of all its files.")
    created_ms: int
    files: list[ReleaseFileOut] = Field(description="In the order the board writes them (main.py last).")


class DeletedOut(BaseModel):
    version: str


def _out(stored: store.StoredRelease) -> ReleaseOut:
    return ReleaseOut(
        version=stored.version,
        mpy_version=stored.mpy_version,
        size=stored.size,
        created_ms=stored.created_ms,
        files=[ReleaseFileOut(**f) for f in stored.files],
    )


_BUNDLE_BODY = {
    "requestBody": {
        "required": True,
        "description": "The release bundle made by `pulsewire release build` (a tar file; docs/fleet.md).",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


async def _bounded_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to be over `limit` bytes."""
    too_big = HTTPException(413, f"the bundle is larger than release_max_bytes ({limit} bytes)")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/api/releases",
    status_code=201,
    response_model=ReleaseOut,
    dependencies=[AdminDep],
    summary="Store a firmware release (the bundle made by `pulsewire release build`)",
    responses=answers(
        400,
        *ADMIN,
        503,
        words={
            400: "not a usable bundle: `detail` says what (a sha256 or size that does not match, a bad file name, ...)",
            409: "a release of this version is already stored",
            413: "the bundle is larger than release_max_bytes",
        },
    ),
    openapi_extra=_BUNDLE_BODY,
)
async def add_release(request: Request, writer: WriterDep, settings: SettingsDep) -> ReleaseOut:
    data = await _bounded_body(request, settings.release_max_bytes)
    try:
        release = unpack(data)
    except BundleError as exc:
        raise HTTPException(400, exc.detail) from None
    try:
        stored = await writer.call(store.add_release(release, now_ms()))
    except store.ReleaseExists:
        raise HTTPException(409, f"release {release.version} is already stored; remove it first") from None
    log.info("release stored", extra={"version": release.version, "files": len(release.files), "bytes": release.size})
    return _out(stored)


@router.get(
    "/api/releases",
    response_model=list[ReleaseOut],
    dependencies=[ReaderDep],
    summary="Every stored firmware release, oldest first",
    responses=answers(*READ),
)
async def list_releases(reads: ReadsDep) -> list[ReleaseOut]:
    return [_out(r) for r in await run_in_threadpool(reads.releases)]


@router.delete(
    "/api/releases/{version}",
    response_model=DeletedOut,
    dependencies=[AdminDep],
    summary="Remove a firmware release (refused while an active rollout uses it)",
    responses=answers(
        400,
        *ADMIN,
        503,
        words={404: "no such release", 409: "an active rollout (running, paused or halted) uses it"},
    ),
)
async def remove_release(version: Version, writer: WriterDep, rollouts: RolloutsDep) -> DeletedOut:
    try:
        await writer.call(store.delete_release(version))
    except store.ReleaseNotFound:
        raise HTTPException(404, f"no release {version!r}") from None
    except store.ReleaseInUse as exc:
        used = ", ".join(exc.rollout_ids)
        raise HTTPException(409, f"release {version} is used by active rollout(s) {used}; abort them first") from None
    rollouts.forget_release(version)
    log.info("release removed", extra={"version": version})
    return DeletedOut(version=version)


_FILE_ANSWERS: dict[int | str, Any] = {
    200: {"description": "The whole file.", "content": {"application/octet-stream": {"schema": {"type": "string"}}}},
    206: {
        "description": "The byte range asked for, with Content-Range.",
        "content": {"application/octet-stream": {"schema": {"type": "string"}}},
    },
    **answers(
        400,
        401,
        503,
        words={
            403: "the token is neither a device's nor the admin key",
            404: "no such release, or no such file in it",
            416: "the Range cannot be served (past the end, several ranges, or malformed); Content-Range says the size",
        },
    ),
}


async def _allowed(request: Request) -> None:
    """A device's own token (as on /ws/device) or the admin key; else 401 or 403."""
    given = bearer(request.headers.get("authorization"))
    if given is None:
        raise HTTPException(
            401,
            "a device token or the admin key is required: Authorization: Bearer <token>",
            {"WWW-Authenticate": "Bearer"},
        )
    services = services_of(request)
    if same_secret(given, services.admin_key):
        return
    if await run_in_threadpool(services.reads.device_for_token, token_hash(given)) is None:
        raise HTTPException(403, "unknown or revoked device token")


@router.get(
    "/api/releases/{version}/files/{path}",
    response_class=Response,
    summary="One file of a release, whole or a byte range (devices fetch updates here)",
    responses=_FILE_ANSWERS,
    openapi_extra={
        "parameters": [
            {
                "name": "Range",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": "One range of bytes: `bytes=first-last`, `bytes=first-` or `bytes=-suffix`.",
            },
            {
                "name": "If-Range",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": "The ETag a resumed download started with: a different file is sent whole (200).",
            },
        ]
    },
)
async def release_file(version: Version, path: FilePath, request: Request, reads: ReadsDep) -> Response:
    await _allowed(request)
    found = await run_in_threadpool(reads.release_file, version, path)
    if found is None:
        raise HTTPException(404, f"no file {path!r} in release {version!r}")
    etag = f'"{found.sha256}"'
    headers = {"ETag": etag, "Accept-Ranges": "bytes"}
    wanted = request.headers.get("range")
    if wanted is None or request.headers.get("if-range", etag) != etag:
        return Response(found.data, media_type="application/octet-stream", headers=headers)
    try:
        first, last = byte_range(wanted, found.size)
    except RangeError as exc:
        raise HTTPException(416, str(exc), {**headers, "Content-Range": f"bytes */{found.size}"}) from None
    headers["Content-Range"] = f"bytes {first}-{last}/{found.size}"
    return Response(found.data[first : last + 1], 206, media_type="application/octet-stream", headers=headers)
