"""The send path: seq + store + session lookup in one Redis round trip, then one NATS
publish per node that has recipients online.

Every stored kind (p2p, group, push to a list) goes through ``Sender.store_and_deliver``:
one pipeline holds, per recipient, the session lookup and the store script (which
assigns the seq and appends to the inbox atomically); then the frames of the
recipients that are online are grouped by node and published once per node.
Not-stored kinds (broadcast, push to ``"*"``) are one publish on ``cim.broadcast``.
A publish that fails after the store is only logged: the message is in the inbox
and reaches the recipient by gap fill or at the next login.

Each accepted message is logged with its id, sender and recipients at DEBUG
(``CIM_LOG_LEVEL=debug``): a line per message at INFO costs a good share of a send's CPU.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client as Nats
from nats.errors import Error as NatsError
from redis.asyncio import Redis

from cim_route.history import History
from cim_route.metrics import Metrics
from shared import bus, sessions
from shared.inbox import Stored, msg_frame, pack_message, parse_stored, store
from shared.keys import Keys
from shared.protocol import MessageKind
from shared.scripts import Scripts
from shared.settings import RouteSettings

__all__ = ["Direct", "FanOut", "Sender", "new_message_id", "now_ms"]

log = logging.getLogger(__name__)

SYSTEM_SENDER = "system"


def new_message_id() -> str:
    return uuid.uuid4().hex


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True, slots=True)
class Direct:
    """Answer of a send to one user."""

    id: str
    seq: int
    ts: int
    status: str


@dataclass(frozen=True, slots=True)
class FanOut:
    """Answer of a send to many: the message id and how many recipients."""

    id: str
    recipients: int


class Sender:
    """Stores, publishes and records history; knows nothing of HTTP."""

    def __init__(
        self,
        redis: Redis,
        scripts: Scripts,
        keys: Keys,
        nats: Nats,
        settings: RouteSettings,
        history: History,
        metrics: Metrics,
    ) -> None:
        self._redis = redis
        self._scripts = scripts
        self._keys = keys
        self._nats = nats
        self._settings = settings
        self._history = history
        self._metrics = metrics

    async def direct(self, *, sender: str, to: str, body: str, msg_id: str, idem_scope: str | None) -> Direct:
        """A p2p message: ``delivered`` when ``to`` has a session, else ``stored``. With
        ``idem_scope`` a repeat returns the first answer and stores nothing."""
        start = time.perf_counter()
        packed = pack_message(id=msg_id, kind=MessageKind.P2P, sender=sender, to=to, body=body)
        async with self._redis.pipeline(transaction=False) as pipe:
            await self._queue_store(pipe, to, packed, msg_id, idem_scope)
            if idem_scope is not None:
                await self._scripts.idem_status(
                    keys=[self._keys.session(to), self._keys.idem(to, idem_scope)], client=pipe
                )
            replies = await self._scripts.execute(pipe)
        node, stored = sessions.node_of(replies[0]), parse_stored(replies[1])
        status = replies[2].decode() if idem_scope is not None else ("delivered" if node else "stored")
        if not stored.new:
            log.debug("p2p %s from %s to %s: repeat of seq %d", stored.id, sender, to, stored.seq)
            return Direct(stored.id, stored.seq, stored.ts, status)
        if node is not None:
            await self._publish({node: [msg_frame(packed, stored.seq, stored.ts)]})
        self._history.append(
            self._keys.dm_history(sender, to),
            {"id": msg_id, "kind": "p2p", "from": sender, "to": to, "body": body, "ts": stored.ts},
        )
        self._accepted(MessageKind.P2P, start)
        log.debug("p2p %s from %s to %s: seq %d %s", msg_id, sender, to, stored.seq, status)
        return Direct(msg_id, stored.seq, stored.ts, status)

    async def fan_out(
        self,
        *,
        sender: str,
        targets: list[str],
        body: str,
        kind: MessageKind,
        msg_id: str,
        group: str | None = None,
        idem_scope: str | None = None,
    ) -> FanOut:
        """A stored message to each of ``targets``, each with its own seq (kind group or push).
        A repeat (``idem_scope`` already used) answers with the first message's id."""
        start = time.perf_counter()
        packs = {
            to: pack_message(id=msg_id, kind=kind, sender=sender, to=to, body=body, group=group)
            for to in targets
        }
        async with self._redis.pipeline(transaction=False) as pipe:
            for to, packed in packs.items():
                await self._queue_store(pipe, to, packed, msg_id, idem_scope)
            replies = await self._scripts.execute(pipe)
        by_node: dict[str, list[dict[str, Any]]] = defaultdict(list)
        first_ts: int | None = None
        answer_id = msg_id
        for packed, node_reply, store_reply in zip(packs.values(), replies[::2], replies[1::2], strict=True):
            stored: Stored = parse_stored(store_reply)
            if not stored.new:
                answer_id = stored.id
                continue
            first_ts = stored.ts if first_ts is None else min(first_ts, stored.ts)
            node = sessions.node_of(node_reply)
            if node is not None:
                by_node[node].append(msg_frame(packed, stored.seq, stored.ts))
        await self._publish(by_node)
        if first_ts is not None and answer_id == msg_id:
            if group is not None:
                self._history.append(
                    self._keys.group_history(group),
                    {
                        "id": msg_id,
                        "kind": kind.value,
                        "from": sender,
                        "to": group,
                        "group": group,
                        "body": body,
                        "ts": first_ts,
                    },
                )
            self._accepted(kind, start)
        log.debug(
            "%s %s from %s%s to %d users on %d nodes",
            kind.value,
            answer_id,
            sender,
            f" in {group}" if group else "",
            len(targets),
            len(by_node),
        )
        return FanOut(answer_id, len(targets))

    async def to_online(self, *, sender: str, body: str, kind: MessageKind, exclude: str | None) -> FanOut:
        """A message to every online user but ``exclude``, not stored (seq 0): one publish."""
        start = time.perf_counter()
        msg_id = new_message_id()
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.zcard(self._keys.online)
            pipe.zscore(self._keys.online, exclude or "")
            online, excluded = await pipe.execute()
        frame = {
            "t": "msg",
            "id": msg_id,
            "seq": 0,
            "kind": kind.value,
            "from": sender,
            "body": body,
            "ts": now_ms(),
        }
        await self._nats.publish(bus.BROADCAST_SUBJECT, bus.broadcast(frame, exclude))
        recipients = int(online) - (1 if excluded is not None else 0)
        self._accepted(kind, start)
        log.debug("%s %s from %s to %d online users", kind.value, msg_id, sender, recipients)
        return FanOut(msg_id, recipients)

    async def _queue_store(
        self, pipe: Any, to: str, packed: bytes, msg_id: str, idem_scope: str | None
    ) -> None:
        sessions.queue_node(pipe, self._keys, to)
        await store(
            pipe,
            self._scripts,
            self._keys,
            user=to,
            packed=packed,
            msg_id=msg_id,
            retention_s=self._settings.retention_s,
            retention_count=self._settings.retention_count,
            idem_scope=idem_scope,
            idem_ttl_s=self._settings.idempotency_s,
        )

    async def _publish(self, by_node: dict[str, list[dict[str, Any]]]) -> None:
        """One publish per node (split only if it would pass NATS's max payload)."""
        for node, frames in by_node.items():
            for payload in _payloads(frames, self._nats.max_payload or 1 << 20):
                try:
                    await self._nats.publish(bus.node_subject(node), payload)
                except NatsError as exc:
                    self._metrics.nats_errors.labels("publish").inc()
                    log.warning(
                        "publish of %d messages to node %s failed (they stay stored): %r",
                        len(frames),
                        node,
                        exc,
                    )

    def _accepted(self, kind: MessageKind, start: float) -> None:
        self._metrics.messages.labels(kind.value).inc()
        self._metrics.send_seconds.labels(kind.value).observe(time.perf_counter() - start)


def _payloads(frames: list[dict[str, Any]], limit: int) -> list[bytes]:
    payload = bus.msgs(frames)
    if len(payload) <= limit or len(frames) == 1:
        return [payload]
    half = len(frames) // 2
    return _payloads(frames[:half], limit) + _payloads(frames[half:], limit)
