"""`GET /docs`: the OpenAPI page, served with the Swagger UI that ships with Pulsewire.

Nothing on the page comes from another host: a server on a LAN with no internet shows it whole.
The Swagger UI files are vendored unmodified in vendor/swagger-ui (their licence and hashes in
vendor/README.md); its online validator badge is turned off, since it would call out.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from pulsewire.http.security_headers import DASHBOARD_POLICY

PAGE = "/docs"
ASSETS = "/docs/assets"
INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)  # the one that starts Swagger UI
OLD_PAGE = "/redoc"  # FastAPI's second viewer, which loads from a CDN: sent to the one that works offline


def swagger_ui_dir() -> Path:
    return Path(str(files("pulsewire.http") / "vendor" / "swagger-ui"))


def page_policy(html: bytes) -> str:
    """The dashboard's policy (http/security_headers.py), plus the page's own inline script by its hash."""
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'"
        for script in INLINE_SCRIPT.findall(html)
    )
    return DASHBOARD_POLICY.replace("default-src 'self'", f"default-src 'self'; script-src 'self' {hashes}", 1)


def install(app: FastAPI) -> None:
    """Serve the page and its assets; the app must be made with `docs_url=None` and `redoc_url=None`."""
    app.mount(ASSETS, StaticFiles(directory=swagger_ui_dir()), name="docs-assets")

    @app.get(PAGE, include_in_schema=False)
    def openapi_page(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")  # behind a proxy that adds a prefix
        page = get_swagger_ui_html(
            openapi_url=root + (app.openapi_url or "/openapi.json"),
            title=f"{app.title} API",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}/favicon.svg",
            swagger_ui_parameters={"validatorUrl": None},
        )
        page.headers["Content-Security-Policy"] = page_policy(bytes(page.body))
        return page

    @app.get(OLD_PAGE, include_in_schema=False)
    def old_page(request: Request) -> RedirectResponse:
        return RedirectResponse(request.scope.get("root_path", "").rstrip("/") + PAGE)
