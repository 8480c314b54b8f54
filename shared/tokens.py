"""Login tokens: signed JWTs (HS256) that any node verifies without calling the route.

A token carries the username (``sub``), the device (``dev``, v0.2; a token without one is
for device ``default``), an expiry (``exp``), an id (``jti``) so that ``POST /logout`` can
revoke it (the revocation list lives in Redis, ``keys.revoked(user, jti)``, and expires with the
token itself) and when it was issued, in milliseconds (``iat_ms``), so that a user's *token
epoch* (``keys.token_epoch(u)``: ``DELETE /sessions/{u}``, ``POST /me/password``) revokes
every token issued before it at once (``before_epoch``).
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import jwt

from shared.errors import TokenError

__all__ = ["DEFAULT_DEVICE", "EPOCH_FIELDS", "Token", "before_epoch", "issue", "verify"]

_ALGORITHM = "HS256"
DEFAULT_DEVICE = "default"


@dataclass(frozen=True, slots=True)
class Token:
    """A verified token's claims; ``expires_at`` is in epoch milliseconds."""

    username: str
    jti: str
    expires_at: int
    issued_at: int = 0
    device: str = DEFAULT_DEVICE


def issue(
    secret: str, username: str, ttl_s: int, now: float | None = None, device: str = DEFAULT_DEVICE
) -> tuple[str, Token]:
    """Sign a token for ``username`` on ``device`` valid ``ttl_s`` seconds; return it with its claims."""
    now = time.time() if now is None else now
    # The JWT ``exp`` has whole seconds; expires_at says the same instant, so issue and verify agree.
    claims = Token(
        username=username,
        jti=secrets.token_hex(12),
        expires_at=int(now + ttl_s) * 1000,
        issued_at=int(now * 1000),
        device=device,
    )
    encoded = jwt.encode(
        {
            "sub": username,
            "dev": device,
            "jti": claims.jti,
            "iat": int(now),
            "iat_ms": claims.issued_at,
            "exp": claims.expires_at // 1000,
        },
        secret,
        algorithm=_ALGORITHM,
    )
    return encoded, claims


def verify(secret: str, token: object) -> Token:
    """Check signature and expiry; raise ``TokenError`` on anything wrong.

    Revocation is checked by the caller, which holds the Redis client.
    """
    if not isinstance(token, str) or not token:
        raise TokenError(detail="token missing")
    try:
        claims = jwt.decode(
            token, secret, algorithms=[_ALGORITHM], options={"require": ["sub", "exp", "jti"]}
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenError(detail="token expired") from exc
    except jwt.PyJWTError as exc:
        raise TokenError(detail="token invalid") from exc
    sub, jti, device = claims["sub"], claims["jti"], claims.get("dev", DEFAULT_DEVICE)
    issued = claims.get("iat_ms", int(claims.get("iat", 0)) * 1000)
    if not isinstance(sub, str) or not isinstance(jti, str) or not isinstance(device, str):
        raise TokenError(detail="token invalid")
    if type(issued) is not int:
        raise TokenError(detail="token invalid")
    return Token(username=sub, jti=jti, expires_at=int(claims["exp"]) * 1000, issued_at=issued, device=device)


EPOCH_FIELDS = ("at", "keep")
"""The fields of a user's token epoch hash: tokens issued before ``at`` (ms) are revoked, but
the one whose jti is ``keep`` (the caller of ``POST /me/password``)."""


def before_epoch(token: Token, at: bytes | None, keep: bytes | None) -> bool:
    """Whether ``token`` is revoked by its user's token epoch (the ``EPOCH_FIELDS`` values; the
    same rule as ``lua/_guard.lua``)."""
    return at is not None and token.issued_at < int(at) and token.jti.encode() != keep
