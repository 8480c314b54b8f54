"""May this caller send? The checks every send makes before anything is stored: the token is
not revoked (neither on its own nor by its user's token epoch), the sender's token bucket
(``CIM_RATE_LIMIT``, shared by every route replica in Redis) can pay one token per recipient,
and the recipient exists. They run in Lua (``lua/_guard.lua``): inside the
store script of a p2p send on one Redis (one round trip for the whole send), or as
``guard.lua`` ahead of the other commands of a call (``Guard.admit``, and a p2p send on a Redis
Cluster), on the sender's slot; the recipient is then checked in its own slot (a ``ZSCORE`` in
the same round trip, or in ``store_p2p.lua``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cim_route.metrics import Metrics
from shared.errors import ApiError
from shared.keys import Keys, bucket
from shared.scripts import AnyRedis, Scripts, evalsha
from shared.settings import RateLimit
from shared.tokens import Token

__all__ = ["Guard", "RateLimited", "revoked"]


class RateLimited(ApiError):
    """429 ``rate_limited`` with a ``Retry-After`` (whole seconds, at least 1)."""

    def __init__(self, wait_ms: int, what: str = "too many messages") -> None:
        super().__init__(429, "rate_limited", f"{what}; retry in {wait_ms} ms")
        self.headers = {"Retry-After": str(max(1, -(-wait_ms // 1000)))}


def revoked() -> ApiError:
    return ApiError(401, "unauthorized", "token revoked")


def unknown_user(name: str) -> ApiError:
    return ApiError(404, "unknown_user", f"no such user: {name}")


class Guard:
    """Builds the checks' Lua arguments and turns a refusal into its HTTP error."""

    def __init__(
        self, scripts: Scripts, keys: Keys, limit: RateLimit, metrics: Metrics, *, cluster: bool = False
    ) -> None:
        self._cluster = cluster
        """On a Redis Cluster an audience (another slot) is counted ahead of the check."""
        self._scripts = scripts
        self._keys = keys
        self._limit = limit
        self._metrics = metrics

    def keys(self, token: Token | None, sender: str, to: str = "") -> list[str]:
        """The checks' KEYS: the token's revocation key, the sender's token epoch and bucket,
        the users set of ``to``'s bucket (of the sender's when ``to`` is '': then all are in
        the sender's slot). ``token`` None: a delayed message falling due or a push, whose
        token is not checked."""
        k = self._keys
        revoked_key = k.revoked(token.username, token.jti) if token is not None else k.revoked(sender, "")
        return [revoked_key, k.token_epoch(sender), k.ratelimit(sender), k.users(bucket(to or sender))]

    def args(self, token: Token | None, to: str, cost: int = 1) -> list[Any]:
        """The checks' ARGV: the token's issue time ('' = no checks) and jti, rate (0 = off),
        burst, cost (one token per recipient), the recipient ('' = none to check)."""
        issued, jti = (token.issued_at, token.jti) if token is not None else ("", "")
        rate = self._limit.rate if self._limit.enabled else 0
        return [issued, jti, rate, self._limit.burst, cost, to]

    def check(self, reply: list[Any], to: str) -> None:
        """Raise the refusal in a reply of ``_guard.lua`` (its first element), if there is one:
        401 ``unauthorized`` (revoked), 429 ``rate_limited``, 404 ``unknown_user``."""
        code = reply[0]
        if code == b"ok":
            return
        if code == b"revoked":
            raise revoked()
        if code == b"rate_limited":
            self._metrics.rate_limited.inc()
            raise RateLimited(int(reply[1]))
        if code == b"unknown_user":
            raise unknown_user(to)
        raise RuntimeError(f"unexpected guard reply {reply!r}")

    def command(
        self, token: Token | None, sender: str, cost: int = 1, audience: str | None = None
    ) -> tuple[Any, ...]:
        """The ``guard.lua`` call of the sender's checks (the sender's slot); ``audience``, a
        set of another slot, is for one Redis only."""
        keys = self.keys(token, sender)
        if audience is not None:
            keys.append(audience)
        return evalsha(self._scripts.guard, keys, self.args(token, "", cost))

    async def admit(
        self,
        redis: AnyRedis,
        sender: str,
        token: Token | None,
        *,
        to: str = "",
        cost: int = 1,
        audience: str | None = None,
        then: Sequence[tuple[Any, ...]] = (),
    ) -> list[Any]:
        """Check the caller (``token`` None: a server-side push, only ``sender``'s bucket) and
        ``to``, when given, then run the commands ``then`` in the same round trip; return their
        replies. The send pays ``cost`` rate-limit tokens; with ``audience`` (a set key: a
        group's members), one per member of it less ``cost`` (the members not sent to).
        ``then`` runs even when the check refuses: only read commands belong there."""
        if audience is not None and self._cluster:
            cost, audience = max(1, int(await redis.scard(audience)) - cost), None
        exists = [("ZSCORE", self._keys.users(bucket(to)), to)] if to else []
        async with redis.pipeline(transaction=False) as pipe:
            for args in (self.command(token, sender, cost, audience), *exists, *then):
                pipe.execute_command(*args)
            checked, *replies = await self._scripts.execute(pipe)
        self.check(checked, to)
        if to:
            score, *replies = replies
            if score is None:
                raise unknown_user(to)
        return replies
