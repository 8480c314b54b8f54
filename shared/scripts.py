"""Lua scripts shipped in ``shared/lua/``, loaded once per Redis client."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

__all__ = ["Scripts"]


def _source(name: str) -> str:
    return resources.files("shared").joinpath("lua", f"{name}.lua").read_text()


@dataclass(frozen=True, slots=True)
class Scripts:
    """The registered scripts; ``redis-py`` runs EVALSHA and falls back to EVAL."""

    store: AsyncScript
    session_claim: AsyncScript
    session_release: AsyncScript
    max_set: AsyncScript
    rate_limit: AsyncScript
    delayed_claim: AsyncScript
    idem_status: AsyncScript

    @classmethod
    def register(cls, redis: Redis) -> Scripts:
        return cls(
            store=redis.register_script(_source("store")),
            session_claim=redis.register_script(_source("session_claim")),
            session_release=redis.register_script(_source("session_release")),
            max_set=redis.register_script(_source("max_set")),
            rate_limit=redis.register_script(_source("rate_limit")),
            delayed_claim=redis.register_script(_source("delayed_claim")),
            idem_status=redis.register_script(_source("idem_status")),
        )
