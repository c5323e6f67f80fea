"""Calling a running server's HTTP API from a command: one request, its JSON, or a one-line error."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import click
import httpx


def call(server: str, method: str, path: str, key: str | None = None, *, timeout: float = 15, **kwargs: Any) -> Any:
    """The JSON answer of `method path`; a refusal becomes `Error: <status>: <detail>` (exit 1)."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        resp = httpx.request(method, server.rstrip("/") + path, headers=headers, timeout=timeout, **kwargs)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach {server}: {exc}. Is `pulsewire serve` running? (--server)") from None
    if resp.status_code >= 400:
        try:
            detail = resp.json().get("detail", resp.text)
        except ValueError:
            detail = resp.text
        raise click.ClickException(f"{resp.status_code}: {detail}")
    return resp.json()


def table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """Print rows under `header` in columns as wide as their widest cell."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def api_path(*parts: str) -> str:
    """`/api/<part>/<part>...`, each part escaped as one path segment."""
    return "/".join(("", "api", *(quote(p, safe="") for p in parts)))


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2))
