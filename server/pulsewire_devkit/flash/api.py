"""The server's HTTP API as `pulsewire flash` needs it: devices, register, rotate, reachable.

Each failure says what to do: server unreachable (and why a board needs `--host 0.0.0.0`), admin
key refused, a read key needed.
"""

from __future__ import annotations

from typing import Any

import httpx

from pulsewire_devkit.flash.errors import FlashError


class DeviceExists(Exception):
    pass


class Api:
    def __init__(self, base: str, admin_key: str | None = None, *, timeout: float = 10) -> None:
        self.base = base.rstrip("/")
        self.admin_key = admin_key
        self.timeout = timeout

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.admin_key}"} if self.admin_key else {}
        try:
            return httpx.request(method, self.base + path, headers=headers, timeout=self.timeout, **kwargs)
        except httpx.HTTPError as exc:
            raise FlashError(
                f"cannot reach the server at {self.base} ({exc or type(exc).__name__}). Is `pulsewire serve` "
                "running there? For a board it must listen on an address the board can reach: "
                "pulsewire serve --host 0.0.0.0 (the default, 127.0.0.1, serves this machine only). If this "
                "machine reaches the server at another address than the board does, pass --api-url"
            ) from None

    def _check(self, resp: httpx.Response, doing: str) -> Any:
        if resp.status_code in (401, 403):
            if self.admin_key:
                raise FlashError(
                    f"the server refused the admin key ({resp.status_code}) while {doing}: pass the key the "
                    "server uses (--admin-key or PULSEWIRE_ADMIN_KEY; the server printed it on its first start "
                    "and keeps it in its <data-dir>/admin.key)"
                )
            raise FlashError(
                f"the server wants a key ({resp.status_code}) for {doing}: pass the admin key (--admin-key or "
                "PULSEWIRE_ADMIN_KEY)"
            )
        if resp.status_code >= 400:
            try:
                detail = resp.json().get("detail", resp.text)
            except ValueError:
                detail = resp.text[:200]
            raise FlashError(f"the server answered {resp.status_code} while {doing}: {detail}")
        return resp.json()

    def devices(self) -> list[dict[str, Any]]:
        out = self._check(self._call("GET", "/api/devices"), "listing devices")
        if not isinstance(out, list):
            raise FlashError(f"{self.base} answered /api/devices with something else than a list: is it Pulsewire?")
        return out

    def device(self, device_id: str) -> dict[str, Any] | None:
        return next((d for d in self.devices() if d.get("id") == device_id), None)

    def register(self, device_id: str, name: str | None) -> str:
        body = {"id": device_id, "name": name} if name else {"id": device_id}
        resp = self._call("POST", "/api/devices", json=body)
        if resp.status_code == 409:
            raise DeviceExists(device_id)
        return str(self._check(resp, f"registering {device_id}")["token"])

    def rotate(self, device_id: str) -> str:
        out = self._check(self._call("POST", f"/api/devices/{device_id}/token"), f"rotating the token of {device_id}")
        return str(out["token"])

    def healthy(self, base: str | None = None) -> bool:
        """Does the server answer /healthz at `base` (default: this API's base), from this machine?"""
        try:
            return httpx.get((base or self.base).rstrip("/") + "/healthz", timeout=3).status_code == 200
        except httpx.HTTPError:
            return False
