"""Per-sender token bucket in Redis (``lua/rate_limit.lua``), so every route replica
shares one budget per user. ``CIM_RATE_LIMIT=0`` turns it off."""

from __future__ import annotations

from typing import Any

from redis.asyncio.client import Pipeline

from cim_route.metrics import Metrics
from shared.errors import ApiError
from shared.keys import Keys
from shared.scripts import Scripts
from shared.settings import RateLimit

__all__ = ["RateLimited", "RateLimiter"]


class RateLimited(ApiError):
    """429 ``rate_limited`` with a ``Retry-After`` (whole seconds, at least 1)."""

    def __init__(self, wait_ms: int, what: str = "too many messages") -> None:
        super().__init__(429, "rate_limited", f"{what}; retry in {wait_ms} ms")
        self.headers = {"Retry-After": str(max(1, -(-wait_ms // 1000)))}


class RateLimiter:
    """Takes one token of a user's bucket per send."""

    def __init__(self, scripts: Scripts, keys: Keys, limit: RateLimit, metrics: Metrics) -> None:
        self._scripts = scripts
        self._keys = keys
        self._limit = limit
        self._metrics = metrics

    async def queue(self, pipe: Pipeline, user: str) -> None:
        """Queue the take of one token of ``user`` on ``pipe`` (nothing when the limit is off),
        so that it shares a round trip with the caller's other checks."""
        if self._limit.enabled:
            await self._scripts.rate_limit(
                keys=[self._keys.ratelimit(user)], args=[self._limit.rate, self._limit.burst], client=pipe
            )

    def check(self, replies: list[Any]) -> list[Any]:
        """Raise ``RateLimited`` if the queued take failed; return the replies after it."""
        if not self._limit.enabled:
            return replies
        wait_ms = int(replies[0])
        if wait_ms > 0:
            self._metrics.rate_limited.inc()
            raise RateLimited(wait_ms)
        return replies[1:]
