"""Shared dependencies: the services, and the admin and read-key checks."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from starlette.requests import HTTPConnection

from pulsewire.services import Services
from pulsewire.tokens import bearer, same_secret


def no_device(device_id: str) -> HTTPException:
    return HTTPException(404, f"no device {device_id!r}")


def get_services(conn: HTTPConnection) -> Services:
    return conn.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(get_services)]


def require_admin(request: Request, services: ServicesDep) -> None:
    given = bearer(request.headers.get("authorization"))
    if given is None:
        raise HTTPException(
            401, "admin key required: Authorization: Bearer <admin key>", {"WWW-Authenticate": "Bearer"}
        )
    if not same_secret(given, services.admin_key):
        raise HTTPException(403, "wrong admin key")


def read_key_ok(conn: HTTPConnection, services: Services) -> bool:
    """Reads are open unless a read key is set; the admin key also reads."""
    expected = services.settings.read_key
    if not expected:
        return True
    given = bearer(conn.headers.get("authorization")) or conn.query_params.get("key")
    return same_secret(given, expected) or same_secret(given, services.admin_key)


def require_reader(request: Request, services: ServicesDep) -> None:
    if not read_key_ok(request, services):
        raise HTTPException(
            401, "read key required: Authorization: Bearer <key> or ?key=", {"WWW-Authenticate": "Bearer"}
        )


AdminDep = Depends(require_admin)
ReaderDep = Depends(require_reader)
