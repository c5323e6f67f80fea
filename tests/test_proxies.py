"""Trusted proxies: whose X-Forwarded-For/Proto the server believes (the `trusted_proxies` setting)."""

from __future__ import annotations

from pathlib import Path

import pytest
import websockets

from pulsewire.proxies import is_trusted, parse_trusted
from pulsewire.settings import Settings
from tests.support.clients import SUBPROTOCOL, dumps, recv_json
from tests.support.server import Server
from tests.support.waiting import eventually


def test_addresses_and_cidrs_are_parsed_and_matched() -> None:
    networks = parse_trusted(" 127.0.0.1, 10.0.0.0/8 ,::1,[fd00::]/8 ,")
    assert [str(n) for n in networks] == ["127.0.0.1/32", "10.0.0.0/8", "::1/128", "fd00::/8"]
    assert is_trusted("127.0.0.1", networks) and is_trusted("10.20.30.40", networks)
    assert is_trusted("::1", networks) and is_trusted("fd12::1", networks)
    assert is_trusted("::ffff:10.1.2.3", networks)  # an IPv4 peer on a dual-stack socket
    assert not is_trusted("127.0.0.2", networks) and not is_trusted("192.168.1.1", networks)
    assert not is_trusted("fe80::1", networks)
    assert not is_trusted(None, networks) and not is_trusted("", networks) and not is_trusted("/run/x.sock", networks)
    assert parse_trusted("") == () and not is_trusted("127.0.0.1", ())


def test_the_default_trusts_no_proxy_and_a_bad_entry_is_named() -> None:
    assert Settings().trusted_networks == ()
    with pytest.raises(ValueError, match="'nginx' is not an IP address or a CIDR"):
        Settings(trusted_proxies="127.0.0.1, nginx")


async def _connect_logged_client(server: Server, source: str, device_id: str, token: str) -> str:
    """Connect a device from `source` claiming to be 203.0.113.9; the client address the server logged."""
    async with websockets.connect(
        server.ws_base + "/ws/device",
        subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
        additional_headers={
            "Authorization": f"Bearer {token}",
            "X-Forwarded-For": "203.0.113.9",
            "X-Forwarded-Proto": "https",
        },
        local_addr=(source, 0),
    ) as ws:
        await ws.send(dumps({"type": "hello", "fw": "t", "uptime": 1}))
        await recv_json(ws)
    lines = await eventually(
        lambda: [ln for ln in server.log_lines() if "device connected" in ln and f"device={device_id} " in ln],
        5,
        "the connection logged",
    )
    return str(lines[-1].split("client=", 1)[1].split()[0])


@pytest.mark.anyio
@pytest.mark.parametrize(
    "trusted, source, logged",
    [
        ("", "127.0.0.1", "127.0.0.1"),  # the default: nobody's forwarded address is believed
        ("127.0.0.2", "127.0.0.1", "127.0.0.1"),  # a peer that is not the trusted proxy
        ("127.0.0.2", "127.0.0.2", "203.0.113.9"),  # the trusted proxy
        ("127.0.0.0/30", "127.0.0.3", "203.0.113.9"),  # a CIDR
    ],
)
async def test_a_forwarded_address_is_used_only_from_a_trusted_peer(
    tmp_path: Path, request: pytest.FixtureRequest, trusted: str, source: str, logged: str
) -> None:
    server = Server(tmp_path, settings={"trusted_proxies": trusted} if trusted else {}).start()
    request.addfinalizer(server.stop)
    device_id, token = server.register()
    assert await _connect_logged_client(server, source, device_id, token) == logged
