"""`OPTIONS` and 405 with `Allow`, for every HTTP route of the app (RFC 9110, 9.3.7 and 15.5.6).

The dashboard is mounted at `/` and takes every path no route takes whole, so without this a
method a route does not have (OPTIONS, PUT ...) reached the static files and got 405 with no
`Allow`. Here a path that some route has, asked with a method none has, gets 405 and the route's
methods in `Allow`; OPTIONS gets 204 with the same header. Any other path is the dashboard's files:
GET and HEAD. WebSockets pass straight through.
"""

from __future__ import annotations

from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Mount, Router
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
FILE_METHODS = ("GET", "HEAD")


def answer_allow(app: ASGIApp, router: Router) -> ASGIApp:
    """The middleware over `app`, whose routes `router` holds.

    It waits for the app's answer: only a 404 or 405 (what a method no route has gets from the
    files or the router) costs a look at the routes, so the requests the app takes pay nothing."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        asked = dict(scope)  # as it came: routing adds to `scope` (a mount changes its root_path)
        replaced = False

        async def send_or_replace(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start" and message["status"] in (404, 405):
                allowed = _route_methods(router.routes, asked) or _file_methods(router.routes, asked)
                replaced = bool(allowed) and asked["method"] not in allowed
                if replaced:
                    await _refusal(asked["method"], allowed)(asked, receive, send)
            if not replaced:
                await send(message)

        await app(scope, receive, send_or_replace)

    return middleware


def _refusal(method: str, allowed: tuple[str, ...]) -> Response:
    allow = {"Allow": ", ".join([*allowed, "OPTIONS"])}
    if method == "OPTIONS":
        return Response(status_code=204, headers=allow)
    return JSONResponse({"detail": "Method Not Allowed"}, status_code=405, headers=allow)


def _route_methods(routes: list[BaseRoute], scope: Scope) -> tuple[str, ...]:
    """The methods the routes (not the mounts of files) have for this path."""
    near = [r for r in routes if not isinstance(r, Mount) and r.matches(scope)[0] is not Match.NONE]
    return tuple(m for m in METHODS if any(r.matches({**scope, "method": m})[0] is Match.FULL for r in near))


def _file_methods(routes: list[BaseRoute], scope: Scope) -> tuple[str, ...]:
    """GET and HEAD where a folder of files is mounted (the dashboard, /docs/assets)."""
    for r in routes:
        if isinstance(r, Mount) and isinstance(r.app, StaticFiles) and r.matches(scope)[0] is Match.FULL:
            return FILE_METHODS
    return ()
