"""The send path: store (seq + inbox, atomically) and session lookup in one Redis call, then one
NATS publish per node that has recipients online.

A p2p send on one Redis is one ``send.lua`` call -- the caller's checks (``cim_route.guard``),
the store, the recipient's sessions, the carbon in the sender's own inbox, the history entry
and the message's reference (for edits) -- coalesced with the other requests of the same loop
turn into one pipeline (``cim_route.batcher``). On a Redis Cluster, where a script touches one
slot, it is three steps instead (``Sender._per_slot``): ``guard.lua`` on the sender's slot, then
``store_p2p.lua`` on the recipient's, then one pipeline with the carbon (the sender's slot),
the history entry and the reference; each step is coalesced the same way. A carbon
(``carbon: true``, ``to`` the addressee, and ``device``: the sender's device it came from,
when known) goes to every device of the sender, as the message goes to every device of the
recipient. A stored
fan-out (group, push to a list) is one ``store_batch.lua`` call per ``shared.inbox.BATCH``
recipients with the message packed once; then the frames of the recipients that are online
are grouped by node and published once per node. Not-stored kinds (broadcast, push to
``"*"``) are one publish on ``cim.broadcast``. A publish that fails after the store is only
logged: the message is in the inbox and reaches the recipient by gap fill or at the next login.

Each accepted message is logged with its id, sender and recipients at DEBUG
(``CIM_LOG_LEVEL=debug``): a line per message at INFO costs a good share of a send's CPU.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client as Nats
from nats.errors import Error as NatsError

from cim_route.batcher import Batcher
from cim_route.guard import Guard
from cim_route.history import History
from cim_route.metrics import Metrics
from shared import bus, inbox, views
from shared.inbox import Retention
from shared.keys import Keys, bucket
from shared.message import frame, message, new_message_id, now_ms
from shared.protocol import MessageKind
from shared.scripts import AnyRedis, Scripts, evalsha, is_cluster
from shared.settings import RouteSettings
from shared.tokens import Token

__all__ = ["Direct", "FanOut", "Sender"]

log = logging.getLogger(__name__)

SYSTEM_SENDER = "system"


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


@dataclass(slots=True)
class _P2p:
    """What a p2p send stores: the message, its carbon, history entry and reference (packed)."""

    sender: str
    to: str
    token: Token | None
    msg_id: str
    idem_scope: str | None
    message: bytes
    carbon: bytes
    entry: bytes
    ref: bytes


_Stored = tuple[int, int, int, bytes, bytes, bytes, int, bytes]
"""new, seq, ts, id, nodes, status, carbon seq, sender's nodes (as ``send.lua`` answers)."""


class Sender:
    """Stores, publishes and records history; knows nothing of HTTP."""

    def __init__(
        self,
        redis: AnyRedis,
        scripts: Scripts,
        keys: Keys,
        nats: Nats,
        settings: RouteSettings,
        history: History,
        metrics: Metrics,
        guard: Guard,
        batcher: Batcher,
    ) -> None:
        self._redis = redis
        self._scripts = scripts
        self._keys = keys
        self._nats = nats
        self._history = history
        self._metrics = metrics
        self._guard = guard
        self._batcher = batcher
        self._retention = Retention(settings.retention_s, settings.retention_count, settings.idempotency_s)
        self._store_args = [self._retention.seconds * 1000, settings.retention_count, settings.idempotency_s]
        self._history_max = settings.history_max
        self._ref_ms = 2 * settings.edit_window_s * 1000
        """A message's reference outlives its edit window (as long again), so a late edit is
        409 ``too_late`` for a while before it is 404 ``unknown_message``."""
        self.one_call = not is_cluster(redis)
        """Whether a p2p send is one ``send.lua`` call (one Redis), not a call per slot."""
        self._store_p2p = self._one_call if self.one_call else self._per_slot
        """The p2p store, chosen once: ``send.lua`` never runs on a cluster."""

    async def _one_call(self, p: _P2p) -> _Stored:
        """One Redis: the whole p2p send is one ``send.lua`` call."""
        k = self._keys
        script_keys = [
            *self._guard.keys(p.token, p.sender, p.to),
            k.seq(p.to),
            k.inbox(p.to),
            k.session(p.to),
        ]
        script_keys += (k.dm_history(p.sender, p.to), k.seq(p.sender), k.inbox(p.sender), k.session(p.sender))
        script_keys.append(k.message_ref(p.msg_id))
        if p.idem_scope is not None:
            script_keys.append(k.idem(p.to, p.idem_scope))
        args = [
            *self._guard.args(p.token, p.to),
            p.message,
            *self._store_args,
            p.msg_id,
            p.entry,
            self._history_max,
            p.carbon,
            p.ref,
            self._ref_ms,
        ]
        reply = await self._batcher.call(*evalsha(self._scripts.send, script_keys, args))
        self._guard.check(reply, p.to)
        return tuple(reply[1:])  # type: ignore[return-value]

    async def _per_slot(self, p: _P2p) -> _Stored:
        """A Redis Cluster: a call per slot -- the sender's checks, the recipient's store, then
        the carbon, history and reference in one pipeline (each coalesced by the batcher)."""
        k = self._keys
        if p.token is not None:  # None: a delayed message falling due, checked when scheduled
            self._guard.check(await self._batcher.call(*self._guard.command(p.token, p.sender)), p.to)
        store_keys = [k.seq(p.to), k.inbox(p.to), k.session(p.to), k.users(bucket(p.to))]
        if p.idem_scope is not None:
            store_keys.append(k.idem(p.to, p.idem_scope))
        args = [p.message, *self._store_args, p.msg_id, "" if p.token is None else p.to]
        reply = await self._batcher.call(*evalsha(self._scripts.store_p2p, store_keys, args))
        self._guard.check(reply, p.to)
        _, new, seq, ts, stored_id, nodes, status = reply
        if not new:
            return new, seq, ts, stored_id, nodes, status, 0, b""
        carbon_seq, sender_nodes = await self._after_store(p, ts)
        return new, seq, ts, stored_id, nodes, status, carbon_seq, sender_nodes

    async def _after_store(self, p: _P2p, ts: int) -> tuple[int, bytes]:
        """The carbon (unless the sender writes to itself), the history entry and the ref."""
        k, retention_ms = self._keys, self._store_args[0]
        history = k.dm_history(p.sender, p.to)
        commands: list[tuple[Any, ...]] = [
            ("XADD", history, "MINID", "~", ts - retention_ms, "*", "m", p.entry, "ts", ts),
            ("XTRIM", history, "MAXLEN", self._history_max),
            ("PEXPIRE", history, retention_ms),
            ("SET", k.message_ref(p.msg_id), p.ref, "PX", self._ref_ms),
        ]
        if p.sender != p.to:
            carbon_keys = [k.seq(p.sender), k.inbox(p.sender), k.session(p.sender)]
            args = [p.carbon, *self._store_args, 0, p.msg_id]
            commands.append(evalsha(self._scripts.store_batch, carbon_keys, args))
        replies = await self._batcher.call_many(commands)
        if p.sender == p.to:
            return 0, b""
        *_, seq, sender_nodes = replies[-1]
        return int(seq), sender_nodes

    async def direct(
        self,
        *,
        sender: str,
        to: str,
        body: str,
        msg_id: str,
        idem_scope: str | None,
        token: Token | None,
        device: str | None = None,
    ) -> Direct:
        """A p2p message: ``delivered`` when ``to`` has a session, else ``stored``. With
        ``idem_scope`` a repeat returns the first answer and stores nothing. ``token``: the
        caller's, checked with the rate limit and ``to``'s existence in the same call (401,
        429, 404); None for a delayed message falling due (checked when scheduled)."""
        start = time.perf_counter()
        fields = message(id=msg_id, kind=MessageKind.P2P, sender=sender, body=body)
        carbon = _carbon(fields, to, device)
        stored = await self._store_p2p(
            _P2p(
                sender=sender,
                to=to,
                token=token,
                msg_id=msg_id,
                idem_scope=idem_scope,
                message=inbox.pack(fields),
                carbon=inbox.pack(carbon),
                entry=inbox.pack({**fields, "to": to}),  # the history entry
                ref=_ref(MessageKind.P2P, sender, to=to),
            )
        )
        new, seq, ts, stored_id, nodes, status, carbon_seq, sender_nodes = stored
        if not new:
            log.debug("p2p %s from %s to %s: repeat of seq %d", stored_id, sender, to, seq)
            return Direct(stored_id.decode(), seq, ts, status.decode())
        by_node: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for node in nodes.split():
            by_node[node.decode()].append(frame(fields, seq=seq, ts=ts, to=to))
        for node in sender_nodes.split():
            by_node[node.decode()].append(frame(carbon, seq=carbon_seq, ts=ts, to=to))
        if by_node:
            await self._publish(by_node)
        self._accepted(MessageKind.P2P, start)
        log.debug("p2p %s from %s to %s: seq %d", msg_id, sender, to, seq)
        return Direct(msg_id, seq, ts, status.decode())

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
        extra: dict[str, Any] | None = None,
        carbon_to: str | None = None,
        device: str | None = None,
    ) -> FanOut:
        """A stored message to each of ``targets``, each with its own seq (kind group, push,
        or a v0.2 event: receipt, edit, recall, whose own fields are ``extra``). With
        ``carbon_to`` (for kind group: the group's name, always) the sender's inbox gets a
        carbon addressed to it, in the same round trip. A repeat (``idem_scope`` already used)
        answers with the first message's id. A group message's reference is written alongside
        (edits look it up)."""
        start = time.perf_counter()
        fields = {**message(id=msg_id, kind=kind, sender=sender, body=body, group=group), **(extra or {})}
        if kind is MessageKind.GROUP and group is not None:
            carbon_to = group
        carbon = None if carbon_to is None else _carbon(fields, carbon_to, device)
        then = []
        if kind is MessageKind.GROUP and group is not None:
            then = [
                ("SET", self._keys.message_ref(msg_id), _ref(kind, sender, group=group), "PX", self._ref_ms)
            ]
        stored = await inbox.store_many(
            self._redis,
            self._scripts,
            self._keys,
            users=targets,
            packed=inbox.pack(fields),
            msg_id=msg_id,
            retention=self._retention,
            idem_scope=idem_scope,
            carbon=None if carbon is None else (sender, inbox.pack(carbon)),
            then=then,
            wait=self._batcher.wait,
        )
        by_node: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for d in stored.deliveries:
            if d.new:
                out = carbon if d.carbon and carbon is not None else fields
                for node in d.nodes:
                    by_node[node].append(frame(out, seq=d.seq, ts=d.ts, to=carbon_to if d.carbon else d.to))
        await self._publish(by_node)
        if not stored.repeat and targets:
            if kind is MessageKind.GROUP and group is not None:
                self._history.append(
                    self._keys.group_history(group), {**fields, "to": group, "ts": stored.ts}
                )
            self._accepted(kind, start)
        log.debug(
            "%s %s from %s%s to %d users on %d nodes",
            kind.value,
            stored.id,
            sender,
            f" in {group}" if group else "",
            len(targets),
            len(by_node),
        )
        return FanOut(stored.id, len(targets))

    async def to_online(
        self, *, sender: str, body: str, kind: MessageKind, exclude: str | None, online: int
    ) -> FanOut:
        """A message to every online user but ``exclude``, not stored (seq 0): one publish.
        ``online``: how many users are online (``views.online_total``, which the caller's
        rate limit took already)."""
        start = time.perf_counter()
        msg_id = new_message_id()
        excluded = exclude is not None and await views.is_online(self._redis, self._keys, exclude)
        fields = message(id=msg_id, kind=kind, sender=sender, body=body)
        await self._nats.publish(
            bus.BROADCAST_SUBJECT, bus.broadcast(frame(fields, seq=0, ts=now_ms()), exclude)
        )
        recipients = online - (1 if excluded else 0)
        self._accepted(kind, start)
        log.debug("%s %s from %s to %d online users", kind.value, msg_id, sender, recipients)
        return FanOut(msg_id, recipients)

    async def live_only(
        self, *, sender: str, kind: MessageKind, targets: dict[str, list[str]], group: str | None = None
    ) -> None:
        """A seq-0 message (not stored: ``typing``) to every device of each user of
        ``targets`` (user -> the nodes its devices are on)."""
        fields = message(id=new_message_id(), kind=kind, sender=sender, body="", group=group)
        ts = now_ms()
        by_node: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for user, nodes in targets.items():
            for node in nodes:
                by_node[node].append(frame(fields, seq=0, ts=ts, to=user))
        await self._publish(by_node)

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
        self._metrics.accepted(kind.value, time.perf_counter() - start)


def _ref(kind: MessageKind, sender: str, *, to: str | None = None, group: str | None = None) -> bytes:
    """A message's reference (``keys.message_ref``): what an edit or recall needs to know."""
    ref: dict[str, Any] = {"kind": kind.value, "from": sender, "ts": now_ms()}
    ref.update({"to": to} if group is None else {"group": group})
    return inbox.pack(ref)


def _carbon(fields: dict[str, Any], to: str, device: str | None) -> dict[str, Any]:
    """The sender's copy of ``fields``: addressed to ``to``, saying which device sent it."""
    out = {**fields, "carbon": True, "to": to}
    if device is not None:
        out["device"] = device
    return out


def _payloads(frames: list[dict[str, Any]], limit: int) -> list[bytes]:
    payload = bus.msgs(frames)
    if len(payload) <= limit or len(frames) == 1:
        return [payload]
    half = len(frames) // 2
    return _payloads(frames[:half], limit) + _payloads(frames[half:], limit)
