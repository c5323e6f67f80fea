"""Notification channels: every body the alerts contract allows, and every bad one with its detail."""

from __future__ import annotations

from dataclasses import FrozenInstanceError
from typing import Any

import pytest

from pulsewire.alerts.channels import (
    ChannelError,
    EmailChannel,
    WebhookChannel,
    channel_to_json,
    is_address,
    parse_channel,
)

SECRET = "s3cr3t-0123456789abcdef"
WEBHOOK_URL = "https://hooks.example.org/pulsewire"
CONTROL = "to[0]: control characters (line breaks, tabs, ...) are not allowed"
DOMAIN = "to[0]: the part after '@' must be a domain name like example.org"
PLAIN = "to[0]: expected a plain address like name@example.org (no spaces, quotes, commas or <>)"
USERINFO = "url: a user or password in the URL is not allowed; authenticate with the secret"
NOT_ASCII = "url: only ASCII characters (percent-encode the path, use the xn-- form of a host)"
UNSAFE = 'url: spaces, control characters and \\ " < > ^ ` { | } are not allowed'


def webhook(**changes: Any) -> dict[str, Any]:
    body = {"name": "ops", "type": "webhook", "url": WEBHOOK_URL, "secret": SECRET}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def email(**changes: Any) -> dict[str, Any]:
    body = {"name": "me", "type": "email", "to": ["a@example.org"]}
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def refused(body: object) -> str:
    with pytest.raises(ChannelError) as caught:
        parse_channel(body)
    return caught.value.detail


def test_the_documented_bodies_parse() -> None:
    assert parse_channel(webhook()) == WebhookChannel("ops", "https://hooks.example.org/pulsewire", SECRET)
    assert parse_channel(email(to=["a@example.org", "b+alerts@mail.example.org"])) == EmailChannel(
        "me", ("a@example.org", "b+alerts@mail.example.org")
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "https://[::1]:8443/hook?team=ops&x=1",
        "https://xn--bcher-kva.example/",
        "HTTPS://Hooks.Example.org",
        "https://a.example./%7Euser/",
        "https://h.example/" + "a" * (2048 - len("https://h.example/")),
    ],
)
def test_good_urls(url: str) -> None:
    assert parse_channel(webhook(url=url)) == WebhookChannel("ops", url, SECRET)


@pytest.mark.parametrize(
    "url, detail",
    [
        (None, "url: required, an http:// or https:// URL"),
        ("", "url: required, an http:// or https:// URL"),
        (42, "url: required, an http:// or https:// URL"),
        ("https://h.example/" + "a" * 2031, "url: 2049 characters, at most 2048"),
        ("ftp://h.example/x", "url: the scheme must be http or https"),
        ("javascript:alert(1)", "url: the scheme must be http or https"),
        ("h.example/hook", "url: the scheme must be http or https"),
        ("https://h.example/hook#part", "url: a fragment (#...) is never sent to the server; remove it"),
        ("https://h.example/#", "url: a fragment (#...) is never sent to the server; remove it"),
        ("https://user:pw@h.example/", USERINFO),
        ("https://user@h.example/", USERINFO),
        ("https:///hook", "url: a host is required"),
        ("https:hook", "url: a host is required"),
        ("https://h_x.example/", "url: the host must be a DNS name or an IP address"),
        ("https://-h.example/", "url: the host must be a DNS name or an IP address"),
        ("https://[::zz]/", "url: the host is not a valid IPv6 address"),
        ("https://[::1/", "url: the host is not a valid IPv6 address"),
        ("https://h.example:0/", "url: the port must be a number from 1 to 65535"),
        ("https://h.example:65536/", "url: the port must be a number from 1 to 65535"),
        ("https://h.example:http/", "url: the port must be a number from 1 to 65535"),
        ("https://h.example:/", "url: the port must be a number from 1 to 65535"),
        ("https://bücher.example/", NOT_ASCII),
        ("https://h.example/a b", UNSAFE),
        # urlsplit would drop these silently (bpo-43882): they must be refused, not cleaned.
        ("https://h.example/\r\nX-Injected: 1", UNSAFE),
        ("https://h.ex\tample/", UNSAFE),
        ("https://h.example\\@evil.example/", UNSAFE),
        ("https://h.example/\x00", UNSAFE),
        ("https://h.example/<script>", UNSAFE),
    ],
)
def test_bad_urls(url: object, detail: str) -> None:
    assert refused(webhook(url=url)) == detail


@pytest.mark.parametrize(
    "secret, detail",
    [
        (..., "secret: required, 16 to 256 printable ASCII characters"),
        (None, "secret: required, 16 to 256 printable ASCII characters"),
        (1234567890123456, "secret: required, 16 to 256 printable ASCII characters"),
        ("", "secret: 0 characters, expected 16 to 256"),
        ("x" * 15, "secret: 15 characters, expected 16 to 256"),
        ("x" * 257, "secret: 257 characters, expected 16 to 256"),
        ("0123456789abcdef ", "secret: only printable ASCII characters, no spaces (0x21 to 0x7e)"),
        ("0123456789abcdef\n", "secret: only printable ASCII characters, no spaces (0x21 to 0x7e)"),
        ("0123456789abcdeé", "secret: only printable ASCII characters, no spaces (0x21 to 0x7e)"),
    ],
)
def test_bad_secrets(secret: object, detail: str) -> None:
    assert refused(webhook(secret=secret)) == detail


def test_secrets_at_the_bounds() -> None:
    for secret in ("!" * 16, "~" * 256):
        assert parse_channel(webhook(secret=secret)) == WebhookChannel("ops", WEBHOOK_URL, secret)


@pytest.mark.parametrize(
    "name, detail",
    [
        (..., "name: required text of 1 to 100 characters"),
        ("", "name: required text of 1 to 100 characters"),
        ("   ", "name: required text of 1 to 100 characters"),
        (["ops"], "name: required text of 1 to 100 characters"),
        ("x" * 101, "name: 101 characters, at most 100"),
        ("ops\r\nBcc: evil@example.org", "name: control characters (line breaks, tabs, ...) are not allowed"),
        ("ops\tteam", "name: control characters (line breaks, tabs, ...) are not allowed"),
        ("ops\x85", "name: control characters (line breaks, tabs, ...) are not allowed"),
        ("ops\u2028x", "name: control characters (line breaks, tabs, ...) are not allowed"),
        ("<img src=x onerror=alert(1)>", "name: markup ('<' followed by a letter, '/', '!' or '?') is not allowed"),
        ("ops</b>", "name: markup ('<' followed by a letter, '/', '!' or '?') is not allowed"),
    ],
)
def test_bad_names(name: object, detail: str) -> None:
    assert refused(webhook(name=name)) == detail
    assert refused(email(name=name)) == detail


def test_names_at_the_bounds() -> None:
    assert parse_channel(email(name="x")).name == "x"
    assert parse_channel(email(name="é" * 100)).name == "é" * 100


@pytest.mark.parametrize(
    "body, detail",
    [
        ([], "body: expected a JSON object"),
        ("webhook", "body: expected a JSON object"),
        (None, "body: expected a JSON object"),
        ({"name": "ops"}, "type: required, one of webhook, email"),
        ({"name": "ops", "type": "sms"}, "type: required, one of webhook, email"),
        ({"name": "ops", "type": ["email"]}, "type: required, one of webhook, email"),
        (webhook(headers={}), "headers: not a field of webhook channels; known: name, type, url, secret"),
        (webhook(to=["a@example.org"]), "to: not a field of webhook channels; known: name, type, url, secret"),
        (email(url="https://h.example/"), "url: not a field of email channels; known: name, type, to"),
        (email(cc=["b@example.org"]), "cc: not a field of email channels; known: name, type, to"),
        (email(id="1"), "id: not a field of email channels; known: name, type, to"),
    ],
)
def test_bad_bodies(body: object, detail: str) -> None:
    assert refused(body) == detail


@pytest.mark.parametrize(
    "to, detail",
    [
        (..., "to: required, a list of 1 to 20 email addresses"),
        ("a@example.org", "to: required, a list of 1 to 20 email addresses"),
        ([], "to: required, a list of 1 to 20 email addresses"),
        ([f"a{i}@example.org" for i in range(21)], "to: required, a list of 1 to 20 email addresses"),
        (["a@example.org", 5], "to[1]: expected an email address as a string"),
        ([""], "to[0]: expected an email address as a string"),
        (["a@example.org", "A@Example.org"], "to[1]: the same address as to[0]"),
        (["x" * 243 + "@example.org"], "to[0]: 255 characters, at most 254"),
        (["a@example.org\r\nBcc: evil@example.org"], CONTROL),
        (["a@example.org\n"], CONTROL),
        (["a\x00@example.org"], CONTROL),
        (["é@example.org"], "to[0]: only ASCII characters (use the xn-- form of an internationalised domain)"),
        (["Ann <a@example.org>"], PLAIN),
        (["example.org"], "to[0]: expected local@domain, with no display name or angle brackets"),
        (["@example.org"], "to[0]: expected local@domain, with no display name or angle brackets"),
        (["x" * 65 + "@example.org"], "to[0]: the part before '@' has 65 characters, at most 64"),
        (["a,b@example.org"], PLAIN),
        (["a@b@example.org"], PLAIN),
        (['"a b"@example.org'], PLAIN),
        (["a..b@example.org"], PLAIN),
        ([".a@example.org"], PLAIN),
        (["a b@example.org"], PLAIN),
        (["a@example.org>, evil@example.org"], PLAIN),
        (["a@localhost"], DOMAIN),
        (["a@"], DOMAIN),
        (["a@[127.0.0.1]"], DOMAIN),
        (["a@-x.example.org"], DOMAIN),
        (["a@example..org"], DOMAIN),
    ],
)
def test_bad_recipients(to: object, detail: str) -> None:
    assert refused(email(to=to)) == detail


@pytest.mark.parametrize(
    "address",
    [
        "a@example.org",
        "first.last@example.org",
        "o'brien+alerts@sub.example.co.uk",
        "x@xn--bcher-kva.example",
        "!#$%&'*+/=?^_`{|}~-@example.org",
        "x" * 64 + "@" + "d" * 63 + "." + "e" * 63 + "." + "f" * 61,
    ],
)
def test_good_addresses(address: str) -> None:
    assert len(address) <= 254
    assert is_address(address)
    assert parse_channel(email(to=[address])) == EmailChannel("me", (address,))


def test_twenty_recipients_are_enough() -> None:
    to = [f"a{i}@example.org" for i in range(20)]
    assert parse_channel(email(to=to)) == EmailChannel("me", tuple(to))


def test_the_secret_is_shown_only_when_asked() -> None:
    channel = parse_channel(webhook())
    shown = channel_to_json(channel)
    assert shown == {"name": "ops", "type": "webhook", "url": "https://hooks.example.org/pulsewire"}
    assert SECRET not in repr(channel) and SECRET not in str(channel)
    assert channel_to_json(channel, reveal_secret=True)["secret"] == SECRET
    # What is shown, secret included, parses back to the same channel.
    assert parse_channel(channel_to_json(channel, reveal_secret=True)) == channel
    assert parse_channel(channel_to_json(parse_channel(email()))) == parse_channel(email())


def test_a_channel_is_frozen() -> None:
    channel = parse_channel(email())
    with pytest.raises(FrozenInstanceError):
        channel.name = "other"  # type: ignore[misc]
