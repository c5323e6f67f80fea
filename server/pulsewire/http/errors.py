"""Error responses: every bad request gets 4xx with a `detail` string that says what was wrong.

Storage outages get 503 with Retry-After instead of a 500: the client did nothing wrong, and
asking again later will work. They are handled here, by exception class, so that no traceback is
logged per request (the storage record logs the outage once per cause per interval).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc

from pulsewire.app.services import services_of
from pulsewire.storage.health import StorageError, is_storage_error

log = logging.getLogger("pulsewire.http")


def _describe(err: dict) -> str:  # type: ignore[type-arg]
    where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body"))
    return f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid"))


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [_describe(e) for e in exc.errors()]
        return JSONResponse({"detail": "; ".join(problems)}, status_code=400)

    @app.exception_handler(StorageError)
    @app.exception_handler(sa_exc.DBAPIError)
    @app.exception_handler(sa_exc.TimeoutError)
    async def _storage(request: Request, exc: Exception) -> JSONResponse:
        if not is_storage_error(exc):  # a bug (a constraint, bad SQL): a 500 like any other
            return _internal(request, exc)
        return storage_unavailable(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _internal(request, exc)


def _internal(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", exc_info=exc, extra={"path": request.url.path})
    return JSONResponse({"detail": "internal error; the server log has the details"}, status_code=500)


def storage_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """503 with Retry-After: the cause in `detail`, recorded, counted and logged once per cause per interval."""
    health = services_of(request).writer.health
    cause = exc.cause if isinstance(exc, StorageError) else health.failed(exc, "request")
    retry_s = health.refused("http")
    detail = f"storage unavailable ({cause}); retry in {retry_s} s"
    return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": str(retry_s)})


def no_device(device_id: str) -> HTTPException:
    return HTTPException(404, f"no device {device_id!r}")
