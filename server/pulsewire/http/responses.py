"""The refusals the HTTP routes declare in OpenAPI, written once: status, words, body and headers.

Every refusal has the body `{"detail": "<what was wrong>"}` (http/errors.py). A route lists the
statuses it can answer with `answers(...)`, and words one in its own terms where that says more.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field


class ErrorOut(BaseModel):
    detail: str = Field(description="What was wrong, in words.")


_WORDS = {
    400: "invalid input: a path, query or body value breaks its rule; `detail` says which",
    401: "credential missing (or read key wrong): Authorization: Bearer <key>",
    403: "wrong admin key",
    404: "no such device",
    409: "conflict with the device's state",
    413: "the request body is larger than the limit the route states",
    416: "the Range cannot be served",
    503: "storage is unavailable for now (database down, disk full): try again after Retry-After seconds",
    504: "no answer in time",
}

READ = (401, 503)  # a read route: the read key, when one is set; what it reads is in storage
ADMIN = (401, 403)  # an admin route


def answers(
    *codes: int, words: Mapping[int, str] | None = None, retry_after_always: bool = True
) -> dict[int | str, Any]:
    """OpenAPI `responses` for these refusals, and for those `words` describes in this route's terms.

    With `retry_after_always=False`, a 503 may also come without Retry-After (a cause other than storage).
    """
    words = words or {}
    out: dict[int | str, Any] = {}
    for code in sorted({*codes, *words}):
        out[code] = {"model": ErrorOut, "description": words.get(code, _WORDS[code])}
        if code == 401:
            out[code]["headers"] = {"WWW-Authenticate": _header("`Bearer`: the scheme to use.", {"type": "string"})}
        if code == 503:
            schema = {"type": "integer", "minimum": 0}
            out[code]["headers"] = {
                "Retry-After": _header("Seconds to wait before trying again.", schema, retry_after_always)
            }
    return out


def _header(description: str, schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"description": description, "schema": schema, "required": required}
