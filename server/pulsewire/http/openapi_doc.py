"""`GET /openapi.json` as the server answers: 400 for invalid input, and the bounds the settings give.

FastAPI declares 422 with its own error body for every route that takes input; this server answers
400 with `{"detail": string}` instead (http/errors.py), which each route declares (http/responses.py).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from pulsewire.settings import Settings

_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")


def install(app: FastAPI, settings: Settings) -> None:
    built = app.openapi  # FastAPI's, which builds the document once and keeps it

    def openapi() -> dict[str, Any]:
        return as_served(built(), settings)  # in place, and the same on every call

    app.openapi = openapi  # type: ignore[method-assign]


def as_served(doc: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The document without FastAPI's 422, with `limit` bounded by `query_max_limit`."""
    for operations in doc.get("paths", {}).values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
            for param in operation.get("parameters", ()):
                if param["in"] == "query" and param["name"] == "limit":
                    param["schema"] = {"type": "integer", "minimum": 1, "maximum": settings.query_max_limit}
    schemas = doc.get("components", {}).get("schemas", {})
    for name in _FASTAPI_VALIDATION:
        schemas.pop(name, None)
    return doc
