"""Lua scripts shipped in ``shared/lua/``, loaded once per Redis client."""

from __future__ import annotations

from dataclasses import dataclass, fields
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

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

    async def execute(self, pipe: Pipeline) -> list[Any]:
        """``await pipe.execute()`` without the ``SCRIPT EXISTS`` round trip that redis-py puts
        ahead of every pipeline running a script. The queued EVALSHAs go out as they are; if
        Redis has lost its script cache (a restart, ``SCRIPT FLUSH``), the scripts are loaded
        again and only the commands that missed are sent again, so nothing runs twice. Raises
        the first error reply, as ``pipe.execute()`` does."""
        stack = list(pipe.command_stack)
        pipe.scripts.clear()
        replies = await pipe.execute(raise_on_error=False)
        missed = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missed:
            for f in fields(self):
                script: AsyncScript = getattr(self, f.name)
                await script.registered_client.script_load(script.script)
            for i in missed:
                args, options = stack[i]
                pipe.pipeline_execute_command(*args, **options)
            for i, reply in zip(missed, await pipe.execute(raise_on_error=False), strict=True):
                replies[i] = reply
        pipe.raise_first_error(stack, replies)
        return replies
