"""Sending one notification for real: webhooks to a local HTTP receiver that verifies the signature
and misbehaves on demand, emails to a real aiosmtpd server with STARTTLS, TLS, no TLS and a login."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from pulsewire.alerts.channels import EmailChannel, WebhookChannel
from pulsewire.alerts.deliver import Notice, Outcome, deliver
from pulsewire.alerts.webhook import IDEMPOTENCY_HEADER
from pulsewire.settings import Settings
from tests.support.certs import self_signed
from tests.support.receivers import HUGE_BYTES, SmtpServer, WebhookReceiver, server_tls, smtp_server, webhook_receiver
from tests.support.server import free_port

pytestmark = pytest.mark.anyio

SECRET = "s3cr3t-of-the-test-receiver"
ALERT = {
    "id": 17,
    "rule": "r_0123456789abcdef",
    "rule_name": "freezer warm",
    "severity": "critical",
    "device": "freezer-1",
    "metric": "temperature",
    "state": "firing",
    "since": 1796040000000,
    "value": -4.5,
    "ts": 1796040300000,
    "resolved_at": None,
    "acked": False,
    "acked_at": None,
    "silenced_until": None,
}
RULE = {"id": "r_0123456789abcdef", "name": "freezer warm", "kind": "threshold", "device": "freezer-1"}
RULE |= {"metric": "temperature", "op": ">", "value": -10.0, "for_s": 300, "repeat_s": 0, "severity": "critical"}
KEY = "alert-17-firing-0"
NOTICE = Notice("firing", ALERT, RULE, KEY)
SENDER = "pulsewire@example.org"
TIMEOUT_S = 1.0
USER, PASSWORD = "ops", "smtp-password-not-to-be-shown"


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver(SECRET) as running:
        yield running


def settings(tmp_path: Path, **values: Any) -> Settings:
    values = {"webhook_timeout_s": TIMEOUT_S, "smtp_timeout_s": TIMEOUT_S, "smtp_sender": SENDER, **values}
    return Settings(data_dir=tmp_path, **values)


async def send_webhook(tmp_path: Path, url: str, secret: str = SECRET) -> tuple[Outcome, float]:
    channel = WebhookChannel(name="ops", url=url, secret=secret)
    async with httpx.AsyncClient() as client:
        started = time.monotonic()
        outcome = await deliver(channel, NOTICE, settings(tmp_path), client)
        return outcome, time.monotonic() - started


# --- webhook --------------------------------------------------------------------------------------


async def test_a_webhook_is_posted_signed_and_a_2xx_is_delivery(tmp_path: Path, receiver: WebhookReceiver) -> None:
    outcome, _ = await send_webhook(tmp_path, receiver.url("/ok"))
    assert outcome == Outcome(True, 200, "200 OK")
    got = receiver.received[-1]
    assert got.verified  # the receiver checked the signature with alerts.webhook.verify
    assert got.headers[IDEMPOTENCY_HEADER] == KEY and got.headers["Content-Type"] == "application/json"
    assert json.loads(got.body) == {"event": "firing", "alert": ALERT, "rule": RULE, "idempotency_key": KEY}


async def test_a_wrong_secret_is_refused_by_the_receiver_and_not_delivered(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    outcome, _ = await send_webhook(tmp_path, receiver.url("/ok"), secret="another-secret-entirely")
    assert outcome == Outcome(False, 401, "401 Unauthorized: bad signature")
    assert not receiver.received[-1].verified


async def test_a_500_is_not_delivery_and_its_answer_is_quoted_on_one_line(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    outcome, _ = await send_webhook(tmp_path, receiver.url("/fail"))
    assert outcome == Outcome(False, 500, "500 Internal Server Error: database on fire second line")


async def test_a_receiver_that_does_not_answer_times_out(tmp_path: Path, receiver: WebhookReceiver) -> None:
    outcome, took = await send_webhook(tmp_path, receiver.url("/slow"))
    assert outcome == Outcome(False, None, f"timed out after {TIMEOUT_S:g} s")
    assert TIMEOUT_S <= took < TIMEOUT_S + 1


async def test_an_answer_head_trickling_in_is_cut_off_at_the_overall_timeout(
    tmp_path: Path, receiver: WebhookReceiver
) -> None:
    # Each byte comes well within any per-read timeout; only a deadline for the whole exchange ends it.
    outcome, took = await send_webhook(tmp_path, receiver.url("/trickle"))
    assert outcome == Outcome(False, None, f"timed out after {TIMEOUT_S:g} s")
    assert took < TIMEOUT_S + 1


async def test_a_refusal_whose_body_trickles_in_keeps_its_status(tmp_path: Path, receiver: WebhookReceiver) -> None:
    outcome, took = await send_webhook(tmp_path, receiver.url("/trickle-body"))
    assert outcome.status == 500 and not outcome.delivered
    assert outcome.detail.startswith("500 Internal Server Error: x"), outcome  # what came by the deadline
    assert took < TIMEOUT_S + 1


async def test_a_redirect_is_not_followed(tmp_path: Path, receiver: WebhookReceiver) -> None:
    before = len(receiver.received)
    outcome, _ = await send_webhook(tmp_path, receiver.url("/loop"))
    assert outcome == Outcome(False, 302, "302 Found: redirect to /loop not followed")
    assert len(receiver.received) == before + 1  # one request: the loop was not entered


@pytest.mark.parametrize("status", [200, 500])
async def test_a_100_mb_answer_costs_a_bounded_read(tmp_path: Path, receiver: WebhookReceiver, status: int) -> None:
    receiver.huge_bytes_written = 0
    outcome, took = await send_webhook(tmp_path, receiver.url(f"/huge/{status}"))
    assert (outcome.delivered, outcome.status) == (status == 200, status)
    if status == 500:  # its start is quoted: at most a short line of it
        assert outcome.detail == "500 Internal Server Error: " + "y" * 80
    assert took < 2
    # The sender read at most MAX_ANSWER_BYTES (none after a 2xx) and closed; what the receiver got
    # into the socket before its writes failed is that plus the kernel's buffers, nowhere near 100 MB.
    time.sleep(0.2)
    assert receiver.huge_bytes_written < HUGE_BYTES // 10


async def test_connection_refused(tmp_path: Path) -> None:
    outcome, took = await send_webhook(tmp_path, f"http://127.0.0.1:{free_port()}/hook")
    assert outcome == Outcome(False, None, "connection refused")
    assert took < 1


async def test_the_secret_never_reaches_the_detail(tmp_path: Path) -> None:
    # A URL that names the secret (a receiver's path can hold anything) is the one place it could leak.
    outcome, _ = await send_webhook(tmp_path, f"http://127.0.0.1:{free_port()}/{SECRET}", secret=SECRET)
    assert SECRET not in outcome.detail


# --- email ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("smtp-tls"), "smtp")


@pytest.fixture
def trusted(certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """The test CA is the trust store, through the standard SSL_CERT_FILE variable."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))


async def send_email(tmp_path: Path, **values: Any) -> Outcome:
    channel = EmailChannel(name="me", to=("a@example.org", "b@example.org"))
    async with httpx.AsyncClient() as client:
        return await deliver(channel, NOTICE, settings(tmp_path, **values), client)


def only_mail(server: SmtpServer) -> Any:
    assert len(server.mail) == 1
    return message_from_bytes(server.mail[0].content, policy=default_policy)


@pytest.mark.usefixtures("trusted")
async def test_email_over_starttls(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    with smtp_server(starttls=server_tls(*certificate)) as server:
        outcome = await send_email(tmp_path, smtp_host="127.0.0.1", smtp_port=server.port)
    assert outcome == Outcome(True, 250, "250 accepted for 2 recipients")
    assert server.mail[0].over_tls and server.mail[0].recipients == ["a@example.org", "b@example.org"]
    message = only_mail(server)
    assert message["Subject"] == "[critical] freezer warm: firing on freezer-1"
    assert message["From"] == SENDER and message["Message-ID"] == f"<{KEY}@example.org>"


@pytest.mark.usefixtures("trusted")
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # it is TLS: see smtp_server
async def test_email_over_implicit_tls_with_a_login(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    with smtp_server(implicit_tls=server_tls(*certificate), login=(USER, PASSWORD)) as server:
        outcome = await send_email(
            tmp_path,
            smtp_host="127.0.0.1",
            smtp_port=server.port,
            smtp_security="tls",
            smtp_user=USER,
            smtp_password=PASSWORD,
        )
    assert outcome.delivered and outcome.status == 250, outcome
    assert server.mail[0].over_tls and server.mail[0].login == USER


@pytest.mark.usefixtures("trusted")
async def test_a_wrong_password_is_not_delivered_and_not_shown(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    with smtp_server(starttls=server_tls(*certificate), login=(USER, PASSWORD)) as server:
        outcome = await send_email(
            tmp_path, smtp_host="127.0.0.1", smtp_port=server.port, smtp_user=USER, smtp_password="wrong-password-x"
        )
    assert not outcome.delivered and outcome.status == 535, outcome
    assert "wrong-password-x" not in outcome.detail and server.mail == []


async def test_email_without_encryption_to_a_local_relay(tmp_path: Path) -> None:
    with smtp_server() as server:
        outcome = await send_email(tmp_path, smtp_host="127.0.0.1", smtp_port=server.port, smtp_security="none")
    assert outcome == Outcome(True, 250, "250 accepted for 2 recipients")
    assert not server.mail[0].over_tls
    assert "Device: freezer-1" in only_mail(server).get_content()


async def test_starttls_required_but_not_offered_sends_nothing(tmp_path: Path) -> None:
    with smtp_server() as server:
        outcome = await send_email(tmp_path, smtp_host="127.0.0.1", smtp_port=server.port)
    assert outcome == Outcome(False, None, "the SMTP server does not offer STARTTLS (smtp_security is starttls)")
    assert server.mail == []


async def test_a_certificate_not_trusted_is_refused(
    tmp_path: Path, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with smtp_server(starttls=server_tls(*certificate)) as server:
        outcome = await send_email(tmp_path, smtp_host="127.0.0.1", smtp_port=server.port)
    assert not outcome.delivered and outcome.detail.startswith("TLS certificate not accepted: "), outcome
    assert server.mail == []


async def test_no_smtp_server_set(tmp_path: Path) -> None:
    assert await send_email(tmp_path) == Outcome(False, None, "no SMTP server set (smtp_host)")


def test_settings_refuse_a_sender_that_is_no_address_and_a_login_in_the_clear(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="not a plain address"):
        Settings(data_dir=tmp_path, smtp_sender="pw@localhost")
    with pytest.raises(ValidationError, match="only sent over TLS"):
        Settings(data_dir=tmp_path, smtp_user="me", smtp_security="none")
    assert Settings(data_dir=tmp_path, smtp_sender="pw@example.org").mail_sender == "pw@example.org"
    assert Settings(data_dir=tmp_path).mail_sender.startswith("pulsewire@")


async def test_an_smtp_server_that_never_greets_times_out(tmp_path: Path) -> None:
    with socket.socket() as silent:  # listening, never accepting: the connection opens, no greeting comes
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        started = time.monotonic()
        outcome = await send_email(tmp_path, smtp_host="127.0.0.1", smtp_port=silent.getsockname()[1])
        took = time.monotonic() - started
    assert outcome == Outcome(False, None, f"timed out after {TIMEOUT_S:g} s")
    assert took < TIMEOUT_S + 1


async def test_smtp_connection_refused(tmp_path: Path) -> None:
    outcome = await send_email(tmp_path, smtp_host="127.0.0.1", smtp_port=free_port())
    assert outcome == Outcome(False, None, "connection refused")
