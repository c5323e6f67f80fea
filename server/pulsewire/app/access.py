"""Who may do what: admin calls need the admin key; reads need the read key when one is set."""

from __future__ import annotations

from fastapi import Depends, HTTPException, Request
from starlette.requests import HTTPConnection

from pulsewire.app.services import services_of
from pulsewire.tokens import bearer, same_secret


def require_admin(request: Request) -> None:
    given = bearer(request.headers.get("authorization"))
    if given is None:
        raise HTTPException(
            401, "admin key required: Authorization: Bearer <admin key>", {"WWW-Authenticate": "Bearer"}
        )
    if not same_secret(given, services_of(request).admin_key):
        raise HTTPException(403, "wrong admin key")


def read_key_ok(conn: HTTPConnection) -> bool:
    """Reads are open unless a read key is set; the admin key also reads."""
    services = services_of(conn)
    expected = services.settings.read_key
    if not expected:
        return True
    given = bearer(conn.headers.get("authorization")) or conn.query_params.get("key")
    return same_secret(given, expected) or same_secret(given, services.admin_key)


def require_reader(request: Request) -> None:
    if not read_key_ok(request):
        raise HTTPException(
            401, "read key required: Authorization: Bearer <key> or ?key=", {"WWW-Authenticate": "Bearer"}
        )


AdminDep = Depends(require_admin)
ReaderDep = Depends(require_reader)
