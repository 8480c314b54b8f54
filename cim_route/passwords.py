"""Password hashes: scrypt, computed in a worker thread so the event loop never blocks.

A hash is ``scrypt$<n>$<r>$<p>$<salt b64>$<key b64>``; the cost travels with the
hash, so raising ``CIM_SCRYPT_N`` affects new passwords without breaking old ones.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets

__all__ = ["hash_password", "verify_password"]

_R = 8
_P = 1
_KEY_LEN = 32


def _derive(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=_KEY_LEN, maxmem=256 * n * r + (1 << 20)
    )


def _hash(password: str, n: int) -> str:
    salt = secrets.token_bytes(16)
    key = _derive(password, salt, n, _R, _P)
    b64 = base64.b64encode
    return f"scrypt${n}${_R}${_P}${b64(salt).decode()}${b64(key).decode()}"


def _verify(password: str, encoded: str) -> bool:
    try:
        algo, n, r, p, salt, key = encoded.split("$")
        if algo != "scrypt":
            return False
        expected = base64.b64decode(key)
        actual = _derive(password, base64.b64decode(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


async def hash_password(password: str, n: int) -> str:
    """A new salted scrypt hash of ``password`` with cost ``n``."""
    return await asyncio.to_thread(_hash, password, n)


async def verify_password(password: str, encoded: str | None, n: int) -> bool:
    """Whether ``password`` matches ``encoded``. With no hash (unknown user) it still spends
    the time of one check, so a login does not tell which usernames exist."""
    if encoded is None:
        await asyncio.to_thread(_derive, password, b"\0" * 16, n, _R, _P)
        return False
    return await asyncio.to_thread(_verify, password, encoded)
