"""Notification channels (docs/protocol.md, alerts): a webhook or an email, checked before it is kept.

`parse_channel` takes the JSON body of `POST /api/channels` and returns a frozen `Channel`, or
raises `ChannelError` with one `detail` naming the field. Everything a channel holds ends up in an
HTTP request line or a mail header later, so the rules here are strict on purpose: a channel that
passes cannot smuggle a header, a second recipient or a credential into what is sent.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pulsewire.alerts.names import has_control, name_problem
from pulsewire.protocol.rules import Refused

MAX_URL = 2048
MIN_SECRET, MAX_SECRET = 16, 256
MAX_RECIPIENTS = 20
MAX_ADDRESS = 254  # RFC 5321 4.5.3.1.3: a path is at most 256 octets, two of them the angle brackets
MAX_LOCAL_PART = 64  # RFC 5321 4.5.3.1.1

# RFC 5322 3.2.3 atext: no space, quote, comma, semicolon, angle bracket or '@'. Only the dot-atom
# form is taken; quoted local parts ("a b"@x) are valid mail but can hold almost anything, and no
# real alert recipient needs one.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL_PART = re.compile(rf"{_ATOM}(?:\.{_ATOM})*\Z")
# A DNS name in ASCII (IDNs in their xn-- form): labels of letters, digits and inner hyphens.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?\Z")
_MAIL_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})+\Z")  # at least one dot: no bare "localhost"
# The secret keys an HMAC: visible ASCII only, so that every receiver's language turns it into
# the same bytes (no Unicode normalisation, no trailing space lost in a copy and paste).
_SECRET = re.compile(r"[\x21-\x7e]+\Z")

FIELDS = {"webhook": ("name", "type", "url", "secret"), "email": ("name", "type", "to")}


class ChannelError(Refused):
    """A channel body is refused; `detail` names the field and says what is expected."""


@dataclass(frozen=True)
class WebhookChannel:
    kind: ClassVar[str] = "webhook"
    name: str
    url: str
    secret: str

    def __repr__(self) -> str:  # a secret must not reach a log through a repr
        return f"WebhookChannel(name={self.name!r}, url={self.url!r}, secret=<hidden>)"


@dataclass(frozen=True)
class EmailChannel:
    kind: ClassVar[str] = "email"
    name: str
    to: tuple[str, ...]


Channel = WebhookChannel | EmailChannel


def parse_channel(body: object) -> Channel:
    """Check a channel body (a decoded JSON value); raises `ChannelError`."""
    if not isinstance(body, dict):
        raise ChannelError("body: expected a JSON object")
    kind = body.get("type")
    if not isinstance(kind, str) or kind not in FIELDS:
        raise ChannelError(f"type: required, one of {', '.join(FIELDS)}")
    unknown = sorted(str(k) for k in body if k not in FIELDS[kind])
    if unknown:
        raise ChannelError(f"{unknown[0]}: not a field of {kind} channels; known: {', '.join(FIELDS[kind])}")
    name = check_name(body.get("name"))
    if kind == "webhook":
        return WebhookChannel(name=name, url=check_url(body.get("url")), secret=check_secret(body.get("secret")))
    return EmailChannel(name=name, to=check_recipients(body.get("to")))


def channel_to_json(channel: Channel, *, reveal_secret: bool = False) -> dict[str, Any]:
    """The channel as the API shows it: a webhook's secret only when asked (it signs every body)."""
    if isinstance(channel, EmailChannel):
        return {"name": channel.name, "type": channel.kind, "to": list(channel.to)}
    shown: dict[str, Any] = {"name": channel.name, "type": channel.kind, "url": channel.url}
    if reveal_secret:
        shown["secret"] = channel.secret
    return shown


def check_name(value: object) -> str:
    problem = name_problem(value)
    if problem:
        raise ChannelError(problem)
    assert isinstance(value, str)
    return value


def check_secret(value: object) -> str:
    if not isinstance(value, str):
        raise ChannelError(f"secret: required, {MIN_SECRET} to {MAX_SECRET} printable ASCII characters")
    if not MIN_SECRET <= len(value) <= MAX_SECRET:
        raise ChannelError(f"secret: {len(value)} characters, expected {MIN_SECRET} to {MAX_SECRET}")
    if not _SECRET.match(value):
        raise ChannelError("secret: only printable ASCII characters, no spaces (0x21 to 0x7e)")
    return value


def check_url(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ChannelError("url: required, an http:// or https:// URL")
    if len(value) > MAX_URL:
        raise ChannelError(f"url: {len(value)} characters, at most {MAX_URL}")
    # Checked before parsing: urlsplit silently drops tabs and line breaks (bpo-43882), and a
    # space or a backslash is read differently by different HTTP clients.
    if not value.isascii():
        raise ChannelError("url: only ASCII characters (percent-encode the path, use the xn-- form of a host)")
    if any(c <= " " or c in '\\"<>^`{|}\x7f' for c in value):
        raise ChannelError('url: spaces, control characters and \\ " < > ^ ` { | } are not allowed')
    try:
        parts = urlsplit(value)
    except ValueError:  # an unclosed '[' of an IPv6 host
        raise ChannelError("url: the host is not a valid IPv6 address") from None
    if parts.scheme not in ("http", "https"):
        raise ChannelError("url: the scheme must be http or https")
    if "#" in value:
        raise ChannelError("url: a fragment (#...) is never sent to the server; remove it")
    if "@" in parts.netloc:
        raise ChannelError("url: a user or password in the URL is not allowed; authenticate with the secret")
    check_host(parts.netloc, parts.hostname)
    try:
        port = parts.port
    except ValueError:  # out of range, or not a number
        port = None
    if not port and ":" in parts.netloc.rsplit("]", 1)[-1]:  # a colon after the host: a port was meant
        raise ChannelError("url: the port must be a number from 1 to 65535")
    return value


def check_host(netloc: str, hostname: str | None) -> None:
    if not hostname:
        raise ChannelError("url: a host is required")
    if netloc.startswith("["):
        try:
            ipaddress.IPv6Address(hostname)
        except ValueError:
            raise ChannelError("url: the host is not a valid IPv6 address") from None
    elif not _HOSTNAME.match(hostname):
        raise ChannelError("url: the host must be a DNS name or an IP address")


def check_recipients(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_RECIPIENTS:
        raise ChannelError(f"to: required, a list of 1 to {MAX_RECIPIENTS} email addresses")
    seen: dict[str, int] = {}
    for i, address in enumerate(value):
        problem = address_problem(address)
        if problem:
            raise ChannelError(f"to[{i}]: {problem}")
        key = address.lower()
        if key in seen:
            raise ChannelError(f"to[{i}]: the same address as to[{seen[key]}]")
        seen[key] = i
    return tuple(value)


def address_problem(address: object) -> str | None:
    """Why `address` is not a plain addr-spec (`local@domain.example`), or None if it is one."""
    if not isinstance(address, str) or not address:
        return "expected an email address as a string"
    if len(address) > MAX_ADDRESS:
        return f"{len(address)} characters, at most {MAX_ADDRESS}"
    if has_control(address):
        return "control characters (line breaks, tabs, ...) are not allowed"
    if not address.isascii():
        return "only ASCII characters (use the xn-- form of an internationalised domain)"
    local, at, domain = address.rpartition("@")
    if not at or not local:
        return "expected local@domain, with no display name or angle brackets"
    if len(local) > MAX_LOCAL_PART:
        return f"the part before '@' has {len(local)} characters, at most {MAX_LOCAL_PART}"
    if not _LOCAL_PART.match(local):
        return "expected a plain address like name@example.org (no spaces, quotes, commas or <>)"
    if not _MAIL_DOMAIN.match(domain):
        return "the part after '@' must be a domain name like example.org"
    return None


def is_address(address: object) -> bool:
    return address_problem(address) is None
