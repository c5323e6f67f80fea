"""Error responses: every bad request gets 4xx with a `detail` string that says what was wrong."""

from __future__ import annotations

import logging

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

log = logging.getLogger("pulsewire.http")


def _describe(err: dict) -> str:  # type: ignore[type-arg]
    where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body"))
    return f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid"))


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [_describe(e) for e in exc.errors()]
        return JSONResponse({"detail": "; ".join(problems)}, status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        return JSONResponse({"detail": "internal error; the server log has the details"}, status_code=500)


def no_device(device_id: str) -> HTTPException:
    return HTTPException(404, f"no device {device_id!r}")
