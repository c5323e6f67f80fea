"""Sending one notification: a webhook POST or an email, with bounded time and memory.

The pure cores decide what is sent (webhook.py, email.py) and what an answer means
(`webhook.classify`); this module is the thin I/O shell around them. `deliver` never raises for
anything a receiver or the network does: every such trouble is an undelivered `Outcome` whose
`detail` says, in one short line, what happened. It never holds a channel's secret.

Certificates are checked against the default trust store (OpenSSL's, which honours the standard
SSL_CERT_FILE and SSL_CERT_DIR variables; httpx does the same when `trust_env` is on).
"""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import httpx

from pulsewire.alerts.channels import Channel, EmailChannel, WebhookChannel, address_problem
from pulsewire.alerts.email import alert_email
from pulsewire.alerts.names import CONTROL
from pulsewire.alerts.webhook import classify, webhook_body, webhook_headers
from pulsewire.settings import Settings

MAX_ANSWER_BYTES = 64 * 1024  # of a webhook receiver's answer body read; the rest is never received
MAX_DETAIL = 200  # characters of an Outcome's detail
_SNIPPET = 80  # characters of a receiver's answer quoted in a detail


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to: delivered or not, the receiver's status (HTTP status, SMTP reply
    code; None when there was no answer) and a one-line description for the admin."""

    delivered: bool
    status: int | None
    detail: str


@dataclass(frozen=True)
class Notice:
    """What one notification says: `event` for `alert` (its JSON) under `rule` (its JSON), keyed `key`."""

    event: str
    alert: Mapping[str, Any]
    rule: Mapping[str, Any]
    key: str


async def deliver(channel: Channel, notice: Notice, settings: Settings, client: httpx.AsyncClient) -> Outcome:
    """Send one notice through `channel`.

    Raises only for programming errors (an unknown event, a key the cores refuse).
    """
    if isinstance(channel, WebhookChannel):
        return await _webhook(channel, notice, settings, client)
    if isinstance(channel, EmailChannel):
        return await _email(channel, notice, settings)
    raise TypeError(f"not a channel: {type(channel).__name__}")


# --- webhook --------------------------------------------------------------------------------------


async def _webhook(channel: WebhookChannel, notice: Notice, settings: Settings, client: httpx.AsyncClient) -> Outcome:
    body = webhook_body(notice.event, notice.alert, notice.rule, notice.key)
    headers = webhook_headers(channel.secret, body, notice.key)
    limit = settings.webhook_timeout_s
    try:
        outcome = await _post(client, channel.url, body, headers, limit)
    except httpx.TimeoutException:  # httpx's own timeouts are the same length: the same outcome
        outcome = Outcome(False, None, f"timed out after {limit:g} s")
    except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:  # ssl.SSLError is an OSError
        outcome = Outcome(False, None, _connection_problem(exc))
    return _tidy(outcome, channel.secret)


async def _post(client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str], limit: float) -> Outcome:
    # One deadline for the whole exchange: httpx's timeouts apply to each read and write, so a
    # receiver trickling its answer a byte at a time could outlast them for ever.
    deadline = asyncio.get_running_loop().time() + limit
    request = client.build_request("POST", url, content=body, headers=headers, timeout=limit)
    try:
        async with asyncio.timeout_at(deadline):
            # follow_redirects=False: the signature is for the configured URL (webhook.classify).
            response = await client.send(request, stream=True, follow_redirects=False)
    except TimeoutError:
        return Outcome(False, None, f"timed out after {limit:g} s")
    status = response.status_code
    words = f"{status} {response.reason_phrase}".rstrip()
    answer = bytearray()
    try:
        if classify(status) == "delivered":
            return Outcome(True, status, words)  # the status is the answer: the body is not read
        if not response.is_redirect and _plain(response):
            # Only to quote its start: what came by the deadline, at most MAX_ANSWER_BYTES.
            with contextlib.suppress(TimeoutError, httpx.HTTPError):
                async with asyncio.timeout_at(deadline):
                    await _read_head(response, answer)
    finally:
        await response.aclose()  # not drained: closing drops the connection with whatever is left
    if response.is_redirect:
        location = _one_line(response.headers.get("location", "?"))[:_SNIPPET]
        return Outcome(False, status, f"{words}: redirect to {location} not followed")
    said = _one_line(answer.decode("utf-8", "replace"))[:_SNIPPET]
    return Outcome(False, status, f"{words}: {said}" if said else words)


async def _read_head(response: httpx.Response, into: bytearray) -> None:
    """At most MAX_ANSWER_BYTES of the body into `into`, as they come (raw: a compressed body is
    not inflated, so a small gzip bomb costs no more than its own size)."""
    async for chunk in response.aiter_raw():
        into += chunk[: MAX_ANSWER_BYTES - len(into)]
        if len(into) >= MAX_ANSWER_BYTES:
            return


def _plain(response: httpx.Response) -> bool:
    return response.headers.get("content-encoding", "identity").lower() == "identity"


def _connection_problem(exc: BaseException) -> str:
    for cause in _causes(exc):
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return f"host not found ({cause.strerror or cause})"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS certificate not accepted: {cause.verify_message or cause.reason}"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"the receiver broke the HTTP protocol: {exc}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _causes(exc: BaseException) -> list[BaseException]:
    """`exc` and what it was raised from, outermost first (httpx wraps the OS error)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


# --- email ----------------------------------------------------------------------------------------


async def _email(channel: EmailChannel, notice: Notice, settings: Settings) -> Outcome:
    if not settings.smtp_host:
        return Outcome(False, None, "no SMTP server set (smtp_host)")
    sender = settings.mail_sender
    problem = address_problem(sender)
    if problem:  # this host's own name, smtp_sender unset: every email channel fails alike until it is set
        return Outcome(False, None, f"set smtp_sender: the default {sender!r} is no address ({problem})")
    message = alert_email(
        sender,
        channel.to,
        notice.event,
        notice.alert,
        notice.rule,
        idempotency_key=notice.key,
        sent_at=datetime.now(UTC),
    )
    session = _SmtpSession(settings)
    limit = settings.smtp_timeout_s
    try:
        # smtplib blocks, so it runs in a thread; each socket operation has the timeout, and the
        # whole exchange has it too: past it the socket is shut, which ends the thread's wait.
        outcome = await asyncio.wait_for(asyncio.to_thread(session.send, message, len(channel.to)), limit)
    except TimeoutError:
        session.abort()
        outcome = Outcome(False, None, f"timed out after {limit:g} s")
    return _tidy(outcome, settings.smtp_password)


class _SmtpSession:
    """One SMTP exchange, run in a worker thread; `abort` may be called from the event loop."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._smtp: smtplib.SMTP | None = None

    def send(self, message: EmailMessage, recipients: int) -> Outcome:
        try:
            return self._send(message, recipients)
        except smtplib.SMTPRecipientsRefused as exc:
            code, said = next(iter(exc.recipients.values()))
            return Outcome(False, code, f"{code} every recipient refused: {_reply(said)}")
        except smtplib.SMTPResponseException as exc:
            return Outcome(False, exc.smtp_code, f"{exc.smtp_code} {_reply(exc.smtp_error)}")
        except smtplib.SMTPServerDisconnected as exc:
            return Outcome(False, None, f"the SMTP server closed the connection ({exc or 'no reason given'})")
        except smtplib.SMTPException as exc:  # SMTPNotSupportedError (no AUTH), ...
            return Outcome(False, None, f"SMTP: {exc}")
        except TimeoutError:
            return Outcome(False, None, f"timed out after {self._settings.smtp_timeout_s:g} s")
        except OSError as exc:
            return Outcome(False, None, _connection_problem(exc))
        finally:
            self._close()

    def _send(self, message: EmailMessage, recipients: int) -> Outcome:
        s = self._settings
        assert s.smtp_host is not None
        context = ssl.create_default_context()
        # Connects and reads the greeting; the host given here is also the name the certificate
        # is checked against. Until it returns, `abort` has no socket to shut: the socket
        # timeout bounds this part on its own.
        if s.smtp_security == "tls":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_s, context=context)
        else:
            smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_s)
        self._smtp = smtp
        smtp.ehlo()
        if s.smtp_security == "starttls":
            if not smtp.has_extn("starttls"):
                return Outcome(False, None, "the SMTP server does not offer STARTTLS (smtp_security is starttls)")
            smtp.starttls(context=context)
            smtp.ehlo()
        if s.smtp_user:
            smtp.login(s.smtp_user, s.smtp_password or "")
        refused = smtp.send_message(message)
        accepted = recipients - len(refused)
        if refused:
            address, (code, said) = next(iter(refused.items()))
            return Outcome(True, 250, f"250 accepted for {accepted}; refused {address}: {code} {_reply(said)}")
        return Outcome(True, 250, f"250 accepted for {accepted} recipient{'s' if accepted != 1 else ''}")

    def abort(self) -> None:
        smtp = self._smtp
        sock = getattr(smtp, "sock", None) if smtp else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _close(self) -> None:
        if self._smtp is None:
            return
        try:
            self._smtp.quit()
        except (smtplib.SMTPException, OSError):
            self._smtp.close()


def _reply(said: bytes | str) -> str:
    text = said.decode("utf-8", "replace") if isinstance(said, bytes) else said
    return _one_line(text)


# --- details --------------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    return " ".join(CONTROL.sub(" ", text).split())


def _tidy(outcome: Outcome, secret: str | None) -> Outcome:
    """A detail is shown to the admin and logged: one short line, and never the secret (a receiver
    or a server could echo it back)."""
    detail = _one_line(outcome.detail)
    if secret:
        detail = detail.replace(secret, "<secret>")
    if len(detail) > MAX_DETAIL:
        detail = detail[: MAX_DETAIL - 3] + "..."
    return Outcome(outcome.delivered, outcome.status, detail)
