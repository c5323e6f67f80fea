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


_RETRY_AFTER = {
    "description": "Seconds to wait before trying again.",
    "schema": {"type": "integer", "minimum": 0},
}
_WWW_AUTHENTICATE = {"description": "`Bearer`: the credential scheme to use.", "schema": {"type": "string"}}

_WORDS = {
    400: "invalid input: a path, query or body value breaks its rule; `detail` says which",
    401: "credential missing (or read key wrong): Authorization: Bearer <key>",
    403: "wrong admin key",
    404: "no such device",
    409: "conflict with the device's state",
    503: "storage is unavailable for now (database down, disk full): try again after Retry-After seconds",
    504: "no answer in time",
}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {**_WWW_AUTHENTICATE, "required": True}},
    503: {"Retry-After": {**_RETRY_AFTER, "required": True}},
}

READ = (401, 503)  # a read route: the read key, when one is set; what it reads is in storage
ADMIN = (401, 403)  # an admin route


def answers(
    *codes: int, words: Mapping[int, str] | None = None, retry_after_always: bool = True
) -> dict[int | str, Any]:
    """OpenAPI `responses` for these refusals, and for those `words` describes in this route's terms.

    With `retry_after_always=False`, 503 may also come without Retry-After (a cause other than storage).
    """
    words = words or {}
    out: dict[int | str, Any] = {}
    for code in sorted({*codes, *words}):
        declared: dict[str, Any] = {"model": ErrorOut, "description": words.get(code, _WORDS[code])}
        headers = _HEADERS.get(code)
        if headers:
            declared["headers"] = {
                name: {**h, "required": h["required"] and (code != 503 or retry_after_always)}
                for name, h in headers.items()
            }
        out[code] = declared
    return out
