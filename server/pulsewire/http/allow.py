"""`OPTIONS` and 405 with `Allow`, for every HTTP route of the app (RFC 9110, 9.3.7 and 15.5.6).

The dashboard is mounted at `/` and takes every path no route takes whole, so without this a
method a route does not have (OPTIONS, PUT ...) reached the static files and got 405 with no
`Allow`. Here a path that some route has, asked with a method none has, gets 405 and the route's
methods in `Allow`; OPTIONS gets 204 with the same header. Any other path is the dashboard's files:
GET and HEAD. Requests a route takes pass straight through, as do WebSockets.
"""

from __future__ import annotations

from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Mount, Router
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
FILE_METHODS = ("GET", "HEAD")


def answer_allow(app: ASGIApp, router: Router) -> ASGIApp:
    """The middleware over `app`, whose routes `router` holds (read on each request: routes may be added late)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _taken(router.routes, scope):
            await app(scope, receive, send)
            return
        allowed = _route_methods(router.routes, scope) or _file_methods(router.routes, scope)
        if not allowed or scope["method"] in allowed:  # 404, or a file of the dashboard
            await app(scope, receive, send)
            return
        allow = {"Allow": ", ".join([*allowed, "OPTIONS"])}
        if scope["method"] == "OPTIONS":
            response = Response(status_code=204, headers=allow)
        else:
            response = JSONResponse({"detail": "Method Not Allowed"}, status_code=405, headers=allow)
        await response(scope, receive, send)

    return middleware


def _taken(routes: list[BaseRoute], scope: Scope) -> bool:
    """Does a route (not a mount of files) take this request, path and method?"""
    return any(not isinstance(r, Mount) and r.matches(scope)[0] is Match.FULL for r in routes)


def _route_methods(routes: list[BaseRoute], scope: Scope) -> tuple[str, ...]:
    return tuple(m for m in METHODS if _taken(routes, {**scope, "method": m}))


def _file_methods(routes: list[BaseRoute], scope: Scope) -> tuple[str, ...]:
    """GET and HEAD where a folder of files is mounted (the dashboard, /docs/assets)."""
    for r in routes:
        if isinstance(r, Mount) and isinstance(r.app, StaticFiles) and r.matches(scope)[0] is Match.FULL:
            return FILE_METHODS
    return ()
