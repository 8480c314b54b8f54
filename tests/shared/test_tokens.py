"""shared.tokens: issue and verify."""

from __future__ import annotations

import time

import jwt
import pytest

from shared.errors import TokenError
from shared.tokens import issue, verify

SECRET = "s" * 32


def test_round_trip() -> None:
    token, claims = issue(SECRET, "alice", 60)
    got = verify(SECRET, token)
    assert got == claims and got.username == "alice" and len(got.jti) == 24
    assert abs(got.expires_at - (time.time() + 60) * 1000) < 2000


def test_each_token_has_its_own_jti() -> None:
    assert issue(SECRET, "alice", 60)[1].jti != issue(SECRET, "alice", 60)[1].jti


@pytest.mark.parametrize(
    "token",
    [None, "", 42, "not.a.jwt", issue("other-secret-" + "y" * 24, "alice", 60)[0]],
    ids=["none", "empty", "int", "garbage", "wrong-secret"],
)
def test_bad_tokens(token: object) -> None:
    with pytest.raises(TokenError) as exc:
        verify(SECRET, token)
    assert exc.value.code == "bad_token"


def test_expired() -> None:
    token, _ = issue(SECRET, "alice", 10, now=time.time() - 60)
    with pytest.raises(TokenError, match="expired"):
        verify(SECRET, token)


def test_missing_claims() -> None:
    token = jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    with pytest.raises(TokenError):
        verify(SECRET, token)
    token = jwt.encode({"sub": 5, "jti": "j", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
    with pytest.raises(TokenError):
        verify(SECRET, token)
