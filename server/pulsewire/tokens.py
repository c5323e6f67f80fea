"""Device tokens and the admin key: generation, hashing and constant-time comparison."""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_PREFIX = "pwd_"
ADMIN_PREFIX = "pwa_"


def new_device_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_admin_key() -> str:
    return ADMIN_PREFIX + secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    """Digest stored instead of the token. 256 random bits need no salt or slow hash to stay unguessable."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def same_secret(given: str | None, expected: str) -> bool:
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass"))


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()
