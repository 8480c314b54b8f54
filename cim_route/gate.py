"""``AuthGate``: the checks ahead of a password (``POST /users``, ``POST /login``, ``POST
/me/password``), so that neither a scrypt storm nor a password guesser gets far.

Every call takes a token of its client address's bucket (``CIM_AUTH_RATE`` per minute, shared
by the route replicas in Redis): 429 ``rate_limited`` past it. A password try is counted
against the pair (username, client address) *before* the password is checked
(``lua/auth_gate.lua``), so parallel guesses count one each; after ``CIM_LOGIN_MAX_FAILURES``
tries without a right password that address waits ``CIM_LOGIN_LOCKOUT_S`` (429 with
``Retry-After``) for that username. The count is per address: a guesser elsewhere never locks
the owner out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cim_route.guard import RateLimited
from cim_route.metrics import Metrics
from shared.keys import Keys
from shared.scripts import AnyRedis, Scripts, evalsha
from shared.settings import RouteSettings

__all__ = ["AuthGate"]


class AuthGate:
    """Per-address limits and the per-(username, address) back-off, in one Redis call."""

    def __init__(self, scripts: Scripts, keys: Keys, settings: RouteSettings, metrics: Metrics) -> None:
        self._scripts = scripts
        self._keys = keys
        self._metrics = metrics
        rate = settings.auth_rate
        self._args = [
            rate.rate if rate.enabled else 0,
            rate.burst,
            settings.login_max_failures,
            settings.login_lockout_s * 1000,
        ]

    async def enter(
        self,
        redis: AnyRedis,
        address: str,
        username: str | None = None,
        then: Sequence[tuple[Any, ...]] = (),
    ) -> list[Any]:
        """Let the call from ``address`` through, counting a password try for ``username`` when
        given, and run the read commands ``then`` in the same round trip; their replies. 429
        ``rate_limited`` (with ``Retry-After``) when the address or the pair must wait."""
        keys = [self._keys.auth_rate(address)]
        if username is not None:
            keys.append(self._keys.login_failures(username, address))
        async with redis.pipeline(transaction=False) as pipe:
            for command in (evalsha(self._scripts.auth_gate, keys, self._args), *then):
                pipe.execute_command(*command)
            (code, *wait), *replies = await self._scripts.execute(pipe)
        if code == b"rate_limited":
            self._metrics.auth_refused.labels("address").inc()
            raise RateLimited(int(wait[0]), "too many calls from this address")
        if code == b"backoff":
            self._metrics.auth_refused.labels("wrong_passwords").inc()
            raise RateLimited(int(wait[0]), "too many wrong passwords from this address")
        return replies

    async def passed(self, redis: AnyRedis, address: str, username: str) -> None:
        """The right password for ``username`` came from ``address``: its count starts over."""
        await redis.delete(self._keys.login_failures(username, address))
