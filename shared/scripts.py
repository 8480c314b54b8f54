"""Lua scripts shipped in ``shared/lua/``, loaded once per Redis client.

A script may start with ``--! use NAME ...``: the named fragments (``lua/NAME.lua``, which
define local functions such as ``store_one``) are put ahead of it, each once, so that two
scripts share one piece of logic instead of a copy of it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from importlib import resources
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisClusterException, RedisError

__all__ = ["REDIS_FAILURES", "AnyPipeline", "AnyRedis", "Scripts", "evalsha", "is_cluster"]

AnyRedis = Redis | RedisCluster
REDIS_FAILURES = (RedisError, RedisClusterException, OSError)
"""What a Redis call raises when the store is away or moving: redis-py's errors, the cluster
client's own (``SlotNotCoveredError`` during a failover is not a ``RedisError``), sockets'."""
"""One Redis or a Redis Cluster (``CIM_REDIS_URL=redis+cluster://``): the same calls work on
both, every script touching keys of one slot."""

AnyPipeline = Pipeline | ClusterPipeline


def is_cluster(redis: AnyRedis) -> bool:
    """Whether ``redis`` is a Redis Cluster: then no script may touch keys of two slots
    (``send.lua`` is never run)."""
    return isinstance(redis, RedisCluster)


_USE = "--! use "


def _read(name: str) -> str:
    return resources.files("shared").joinpath("lua", f"{name}.lua").read_text()


def _source(name: str, included: set[str] | None = None) -> str:
    """The script ``name`` with the fragments it uses (and theirs) ahead of it."""
    included = set() if included is None else included
    text = _read(name)
    parts = []
    for line in text.splitlines():
        if line.startswith(_USE):
            for dep in line[len(_USE) :].split():
                if dep not in included:
                    included.add(dep)
                    parts.append(_source(dep, included))
    return "\n".join([*parts, text])


def evalsha(script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> tuple[Any, ...]:
    """The ``EVALSHA`` command of ``script`` (for ``execute_command`` on a pipeline, with
    ``Scripts.execute``): cheaper than calling the script object, which is a coroutine."""
    return ("EVALSHA", script.sha, len(keys), *keys, *args)


def _queued(pipe: AnyPipeline) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """The commands queued on ``pipe`` so far, as (args, options)."""
    if isinstance(pipe, ClusterPipeline):
        # redis-py keeps a cluster pipeline's commands in its execution strategy only.
        return [(c.args, c.kwargs) for c in pipe._execution_strategy._command_queue]
    return list(pipe.command_stack)


def _raise_first_error(replies: list[Any]) -> None:
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply


@dataclass(frozen=True, slots=True)
class Scripts:
    """The registered scripts; ``redis-py`` runs EVALSHA and falls back to EVAL."""

    send: AsyncScript
    store_batch: AsyncScript
    store_p2p: AsyncScript
    guard: AsyncScript
    session_claim: AsyncScript
    session_release: AsyncScript
    session_restore: AsyncScript
    max_set: AsyncScript
    delayed_claim: AsyncScript
    auth_gate: AsyncScript

    @classmethod
    def register(cls, redis: AnyRedis) -> Scripts:
        """Every field is the script ``shared/lua/<field name>.lua``."""
        return cls(**{f.name: redis.register_script(_source(f.name)) for f in fields(cls)})

    async def execute(self, pipe: AnyPipeline, raise_on_error: bool = True) -> list[Any]:
        """``await pipe.execute()`` without the ``SCRIPT EXISTS`` round trip that redis-py puts
        ahead of every pipeline running a script. The queued EVALSHAs go out as they are; if
        Redis has lost its script cache (a restart, ``SCRIPT FLUSH``), the scripts are loaded
        again (on every master of a cluster) and only the commands that missed are sent again,
        so nothing runs twice. Raises the first error reply, as ``pipe.execute()`` does
        (``raise_on_error=False``: error replies are returned in their place)."""
        stack = _queued(pipe)
        if isinstance(pipe, Pipeline):
            pipe.scripts.clear()
        replies = await pipe.execute(raise_on_error=False)
        missed = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missed:
            for f in fields(self):
                script: AsyncScript = getattr(self, f.name)
                await script.registered_client.script_load(script.script)
            for i in missed:
                args, options = stack[i]
                pipe.execute_command(*args, **options)
            for i, reply in zip(missed, await pipe.execute(raise_on_error=False), strict=True):
                replies[i] = reply
        if raise_on_error:
            _raise_first_error(replies)
        return replies
