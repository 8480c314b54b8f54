"""What a connection asks of Redis: the login check, its session, its inbox.

Logins, claims and releases of one loop turn share one pipeline (``RedisBatch``),
and so do inbox reads, so a burst of logins costs a few round trips, not four
per login.
"""

from __future__ import annotations

from typing import Any

from cim_node.batch import RedisBatch
from shared import inbox, sessions, tokens
from shared.keys import Keys
from shared.scripts import AnyPipeline, AnyRedis, Scripts

__all__ = ["LoginState", "SessionStore"]

LoginState = tuple[bool, int]
"""(token revoked, the device's ack cursor: its own, or for a new device the user's newest)."""


class SessionStore:
    """One node's AnyRedis work for its connections."""

    def __init__(
        self, redis: AnyRedis, scripts: Scripts, keys: Keys, node_id: str, max_devices: int = 5
    ) -> None:
        self._scripts = scripts
        self._max_devices = max_devices
        self._keys = keys
        self._node = node_id
        self._batch = RedisBatch(redis, scripts)
        self._streams = _BatchedStreams(self._batch)

    async def login_state(self, user: str, device: str, token: tokens.Token) -> LoginState:
        """Whether ``token`` is revoked (itself or by ``user``'s token epoch), and where
        ``user``'s ``device`` starts: its own ack cursor, or (its first login) the newest seq
        any of the user's devices acked."""

        async def queue(pipe: AnyPipeline) -> None:
            pipe.exists(self._keys.revoked(token.username, token.jti))
            pipe.hmget(self._keys.token_epoch(user), *tokens.EPOCH_FIELDS)
            pipe.get(self._keys.device_ack(user, device))
            pipe.get(self._keys.ack(user))

        revoked, (at, keep), own, newest = await self._batch.call(queue)
        cursor = int(own if own is not None else newest or 0)
        return bool(revoked) or tokens.before_epoch(token, at, keep), cursor

    async def claim(self, user: str, device: str, conn_id: str) -> list[sessions.Ended]:
        """Make ``conn_id`` here the session of ``user``'s ``device``; return the ones it ended."""

        async def queue(pipe: AnyPipeline) -> None:
            sessions.queue_claim(
                pipe, self._scripts, self._keys, user, device, self._node, conn_id, self._max_devices
            )

        (reply,) = await self._batch.call(queue)
        return sessions.claimed(reply)

    async def release(self, user: str, device: str, conn_id: str) -> bool:
        """Drop the session of ``user``'s ``device`` if it is still ``conn_id``; True if it was."""

        async def queue(pipe: AnyPipeline) -> None:
            sessions.queue_release(pipe, self._scripts, self._keys, user, device, self._node, conn_id)

        (removed,) = await self._batch.call(queue)
        return bool(removed)

    async def read_after(self, user: str, after_seq: int, count: int) -> list[dict[str, Any]]:
        """Up to ``count`` stored ``msg`` frames of ``user`` after ``after_seq``."""
        return await inbox.read_after(self._streams, self._keys, user, after_seq, count)  # type: ignore[arg-type]

    async def close(self) -> None:
        await self._batch.close()


class _BatchedStreams:
    """The one AnyRedis call ``inbox.read_after`` makes (``xrange``), sent in the shared pipeline:
    the inbox module keeps its one way of reading and parsing entries."""

    __slots__ = ("_batch",)

    def __init__(self, batch: RedisBatch) -> None:
        self._batch = batch

    async def xrange(self, name: str, min: str, max: str, count: int) -> list[Any]:  # noqa: A002 - redis-py's names
        async def queue(pipe: AnyPipeline) -> None:
            pipe.xrange(name, min=min, max=max, count=count)

        (entries,) = await self._batch.call(queue)
        return entries
