"""Delayed messages: a Redis sorted set of jobs scored by due time, fired by whichever route
replica claims them first.

``lua/delayed_claim.lua`` takes the due jobs and pushes their score to now +
lease in one atomic step, so two replicas never claim the same job at the same
time. The claimer stores the message, publishes it and only then removes the
job. If it dies in between, the job falls due again when the lease ends and is
fired by someone else; the store's idempotency scope is derived from the job id,
so that second run stores nothing new. Nothing lives in memory: a restart loses
no job.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import msgpack

from cim_route.metrics import Metrics
from cim_route.send import Sender
from shared.keys import Keys
from shared.message import new_message_id, now_ms
from shared.protocol import MessageKind
from shared.scripts import REDIS_FAILURES, AnyRedis, Scripts

__all__ = ["Scheduler"]

log = logging.getLogger(__name__)

LEASE_MS = 30_000
BATCH = 100


class Scheduler:
    """Schedules jobs and runs the claim loop."""

    def __init__(
        self,
        redis: AnyRedis,
        scripts: Scripts,
        keys: Keys,
        sender: Sender,
        metrics: Metrics,
        poll_s: float,
        idempotency_s: int,
    ) -> None:
        self._redis = redis
        self._scripts = scripts
        self._keys = keys
        self._sender = sender
        self._metrics = metrics
        self._poll_s = poll_s
        self._idempotency_s = idempotency_s

    async def schedule(
        self,
        *,
        kind: MessageKind,
        sender: str,
        body: str,
        delay_ms: int,
        target: dict[str, str],
        answer: dict[str, Any],
        idem_scope: str | None,
    ) -> dict[str, Any]:
        """Schedule a message (``target``: ``{"to": user}`` or ``{"group": name}``) due in
        ``delay_ms``; return ``{id, seq: null, ts, status: "scheduled", due}`` with ``answer``'s
        fields, or the first answer when ``idem_scope`` (per sender) was already used."""
        msg_id, ts = new_message_id(), now_ms()
        due = ts + delay_ms
        job = {"id": msg_id, "kind": kind.value, "from": sender, "body": body, "due": due, **target}
        answer = {"id": msg_id, **answer, "seq": None, "ts": ts, "status": "scheduled", "due": due}
        idem_key = self._keys.idem(sender, idem_scope) if idem_scope is not None else None
        return await self._add(job, answer, idem_key)

    async def _add(self, job: dict[str, Any], answer: dict[str, Any], idem_key: str | None) -> dict[str, Any]:
        if idem_key is not None:
            packed_answer = msgpack.packb(answer, use_bin_type=True)
            if not await self._redis.set(idem_key, packed_answer, nx=True, ex=self._idempotency_s):
                previous = await self._redis.get(idem_key)
                if previous is not None:
                    return msgpack.unpackb(previous, raw=False)
        try:
            await self._redis.zadd(self._keys.delayed, {msgpack.packb(job, use_bin_type=True): job["due"]})
        except REDIS_FAILURES:
            if idem_key is not None:  # so that the client's retry schedules it again
                await asyncio.shield(self._forget(idem_key))
            raise
        log.info("scheduled %s %s from %s due %d", job["kind"], job["id"], job["from"], job["due"])
        return answer

    async def _forget(self, idem_key: str) -> None:
        try:
            await self._redis.delete(idem_key)
        except REDIS_FAILURES:
            log.warning("could not remove idempotency key %s after a failed schedule", idem_key)

    async def run(self) -> None:
        """Fire due jobs until cancelled, polling every ``poll_s``."""
        while True:
            try:
                claimed = await self.fire_due()
            except REDIS_FAILURES as exc:
                log.warning("delayed messages: claim failed: %r", exc)
                claimed = 0
            if claimed < BATCH:
                await asyncio.sleep(self._poll_s)

    async def fire_due(self) -> int:
        """Claim and fire the jobs due now; return how many were claimed."""
        jobs = await self._scripts.delayed_claim(
            keys=[self._keys.delayed], args=[LEASE_MS, BATCH], client=self._redis
        )
        for raw in jobs:
            await self._fire_one(raw)
        return len(jobs)

    async def _fire_one(self, raw: bytes) -> None:
        try:
            job = msgpack.unpackb(raw, raw=False)
            if not isinstance(job, dict) or not {"id", "kind", "from", "body", "due"} <= job.keys():
                raise ValueError("not a job")
        except ValueError:
            log.error("dropping unreadable delayed job %r", raw[:200])
        else:
            try:
                await self._fire(job)
            except Exception:
                # Left in the set: it falls due again when the lease ends.
                log.exception("delayed job %s failed; it is retried after the lease", job["id"])
                return
        await self._redis.zrem(self._keys.delayed, raw)

    async def _fire(self, job: dict[str, Any]) -> None:
        scope = f"delayed:{job['id']}"
        if job["kind"] == MessageKind.P2P:
            await self._sender.direct(
                sender=job["from"],
                to=job["to"],
                body=job["body"],
                msg_id=job["id"],
                idem_scope=scope,
                token=None,
            )
        else:
            group = job["group"]
            members = {m.decode() for m in await self._redis.smembers(self._keys.members(group))}
            if job["from"] not in members:
                self._metrics.delayed_dropped.inc()
                log.info(
                    "delayed group %s %s dropped: %s left %s", job["kind"], job["id"], job["from"], group
                )
                return
            targets = sorted(members - {job["from"]})
            await self._sender.fan_out(
                sender=job["from"],
                targets=targets,
                body=job["body"],
                kind=MessageKind.GROUP,
                msg_id=job["id"],
                group=group,
                idem_scope=scope,
            )
        self._metrics.delayed_fired.inc()
        log.info("delayed %s %s fired (due %d)", job["kind"], job["id"], job["due"])
