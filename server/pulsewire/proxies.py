"""Which peers are trusted reverse proxies: the `trusted_proxies` setting, parsed, and the test of a peer.

Only a trusted proxy's X-Forwarded-For and X-Forwarded-Proto are believed (uvicorn applies them,
app/serve.py); from any other peer they are ignored, so nobody can choose the address the server
logs and counts for them.
"""

from __future__ import annotations

import ipaddress

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_trusted(text: str) -> tuple[Network, ...]:
    """`"127.0.0.1, 10.0.0.0/8, ::1"` as networks (an address is a network of one); "" is none.

    Raises ValueError naming the entry that is neither an address nor a CIDR.
    """
    networks = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry.replace("[", "").replace("]", ""), strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or a CIDR (such as 10.0.0.0/8)") from None
    return tuple(networks)


def is_trusted(peer: str | None, networks: tuple[Network, ...]) -> bool:
    """Is the peer at this address (as the socket reports it) one of the trusted proxies?"""
    if not peer or not networks:
        return False
    try:
        address = ipaddress.ip_address(peer.strip("[]"))
    except ValueError:
        return False  # a Unix socket path or a name: not an address a proxy is trusted by
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address.version == net.version and address in net for net in networks)
