"""Lua scripts shipped in ``shared/lua/``, loaded once per Redis client."""

from __future__ import annotations

from dataclasses import dataclass, fields
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
    session_restore: AsyncScript
    max_set: AsyncScript
    rate_limit: AsyncScript
    delayed_claim: AsyncScript
    idem_status: AsyncScript

    @classmethod
    def register(cls, redis: Redis) -> Scripts:
        """Every field is the script ``shared/lua/<field name>.lua``."""
        return cls(**{f.name: redis.register_script(_source(f.name)) for f in fields(cls)})
