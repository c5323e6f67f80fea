"""Native TLS: the certificate and key `pulsewire serve --tls-cert/--tls-key` serves with, checked at start."""

from __future__ import annotations

import ssl
from pathlib import Path


def tls_problem(cert: Path, key: Path) -> str | None:
    """Why this certificate and key cannot serve TLS (unreadable, not PEM, encrypted, not a pair), or None.

    Checked before uvicorn starts, which would otherwise end with a traceback (or, for an
    encrypted key, stop to ask for its passphrase on the terminal).
    """
    for what, path in (("certificate", cert), ("key", key)):
        try:
            path.read_bytes()
        except OSError as exc:
            return f"cannot read the TLS {what} {path}: {exc.strerror}"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key, password=_no_passphrase)
    except _Encrypted:
        return f"the TLS key {key} is encrypted: give it unencrypted (openssl pkey -in KEY -out PLAIN_KEY)"
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            return f"the TLS key {key} does not belong to the certificate {cert}"
        why = f" ({exc.reason})" if exc.reason else ""
        return f"the TLS certificate {cert} and key {key} are not a PEM certificate and its key{why}"
    return None


class _Encrypted(Exception):
    pass


def _no_passphrase() -> bytes:
    raise _Encrypted
