"""`GET /openapi.json` as the server answers: 400 for invalid input, the credentials, the bounds the settings give.

FastAPI declares 422 with its own error body for every route that takes input; this server answers
400 with `{"detail": string}` instead (http/errors.py), which each route declares (http/responses.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from pulsewire.settings import Settings

_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")
BEARER = "bearer"


def install(app: FastAPI, settings: Settings) -> None:
    built = app.openapi  # FastAPI's, which builds the document once and keeps it

    def openapi() -> dict[str, Any]:
        return as_served(built(), settings)  # in place, and the same on every call

    app.openapi = openapi  # type: ignore[method-assign]


def as_served(doc: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The document without FastAPI's 422, with `limit` bounded by `query_max_limit`, and the
    credential each route asks for: the admin key where it may answer 403, the read key (or the
    admin key) elsewhere where it may answer 401, needed only when a read key is set."""
    doc.setdefault("components", {}).setdefault("securitySchemes", {})[BEARER] = {
        "type": "http",
        "scheme": "bearer",
        "description": "The admin key; on read routes also the read key (which can also be given as ?key=); "
        "on release files also a device token.",
    }
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            answers = operation.get("responses", {})
            answers.pop("422", None)
            if "401" in answers:
                needed = "403" in answers or bool(settings.read_key)
                operation["security"] = [{BEARER: []}] if needed else [{}, {BEARER: []}]
            for param in operation.get("parameters", ()):
                if param["in"] == "query" and param["name"] == "limit":
                    param["schema"] = {"type": "integer", "minimum": 1, "maximum": settings.query_max_limit}
    schemas = doc["components"].get("schemas", {})
    for name in _FASTAPI_VALIDATION:
        schemas.pop(name, None)
    return doc
