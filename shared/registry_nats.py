"""``NodeRegistry`` over a NATS KV bucket (default ``cim-nodes``).

Each node's record is one key whose message carries a per-message TTL of three
refresh periods; a node refreshes it by publishing again. When a node stops
refreshing (SIGKILL, network loss), the server removes the record and, because
the bucket is created with delete markers (``limit_marker_ttl``), places a
marker that watchers see as a deletion -- without markers a TTL expiry is
silent. (Facts measured with nats-server 2.11+ and nats-py 2.16: ``kv.put``
takes no TTL, so refreshes publish to ``$KV.<bucket>.<key>`` with ``msg_ttl``;
after a marker, ``kv.get`` may return an entry whose value is None.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import BucketNotFoundError, KeyNotFoundError, NoKeysError, NoStreamResponseError
from nats.js.kv import KV_DEL, KV_PURGE, KeyValue

from shared.registry import NodeEvent, NodeInfo

__all__ = ["DEFAULT_BUCKET", "NatsKvRegistry"]

log = logging.getLogger(__name__)

DEFAULT_BUCKET = "cim-nodes"
_STOP_TIMEOUT_S = 2.0


async def _bind(js: JetStreamContext, bucket: str, refresh_s: float, replicas: int) -> KeyValue:
    try:
        return await js.key_value(bucket)
    except BucketNotFoundError:
        config = KeyValueConfig(
            bucket=bucket,
            history=1,
            storage=StorageType.FILE,
            limit_marker_ttl=max(1, math.ceil(refresh_s)),
            replicas=replicas,
        )
        return await js.create_key_value(config=config)


class NatsKvRegistry:
    """Node records in a NATS KV bucket, each expiring ``3 * refresh_s`` after its last announce."""

    def __init__(
        self, js: JetStreamContext, kv: KeyValue, bucket: str, refresh_s: float, replicas: int = 1
    ) -> None:
        self._js = js
        self._kv = kv
        self._bucket = bucket
        self._replicas = replicas
        self.ttl_s = max(1, math.ceil(3 * refresh_s))

    @classmethod
    async def open(
        cls, js: JetStreamContext, bucket: str = DEFAULT_BUCKET, refresh_s: float = 2.0, replicas: int = 1
    ) -> NatsKvRegistry:
        """Bind to the bucket, creating it (with delete markers, on ``replicas`` servers of a
        NATS cluster: ``CIM_NATS_KV_REPLICAS``) if it does not exist yet."""
        return cls(js, await _bind(js, bucket, refresh_s, replicas), bucket, refresh_s, replicas)

    async def announce(self, info: NodeInfo) -> None:
        subject = f"$KV.{self._bucket}.{info.id}"
        try:
            await self._js.publish(subject, info.pack(), msg_ttl=self.ttl_s)
        except NoStreamResponseError:
            # The bucket is gone (a NATS without persistence restarted), or a cluster's bucket
            # has no leader for a moment: bind again, making it again if it is gone.
            log.warning("registry: bucket %s did not answer, binding it again", self._bucket)
            self._kv = await _bind(self._js, self._bucket, self.ttl_s / 3, self._replicas)
            await self._js.publish(subject, info.pack(), msg_ttl=self.ttl_s)

    async def withdraw(self, node_id: str) -> None:
        await self._kv.purge(node_id)

    async def snapshot(self) -> dict[str, NodeInfo]:
        try:
            ids = await self._kv.keys()
        except NoKeysError:
            return {}
        nodes: dict[str, NodeInfo] = {}
        for node_id in ids:
            with contextlib.suppress(KeyNotFoundError):
                event = _event(await self._kv.get(node_id))
                if event is not None and event.info is not None:
                    nodes[node_id] = event.info
        return nodes

    async def watch(self) -> AsyncIterator[NodeEvent]:
        """Every current record, then each change; deletions, purges and TTL expiries as ``info=None``.

        Live nodes refresh every period, so a watch that hears nothing for a whole TTL
        may have lost its consumer (a restarted NATS does not bring ephemeral
        consumers back, and nats-py does not say so): it then watches anew and
        reports, as deletions, the nodes that left meanwhile.
        """
        seen: set[str] = set()
        while True:
            async with asyncio.timeout(self.ttl_s):  # a server that went away may never answer
                watcher = await self._kv.watchall()
            try:
                current = await self._initial(watcher)
                for node_id in sorted(seen - current.keys()):
                    yield NodeEvent(node_id, None)
                for key, info in current.items():
                    yield NodeEvent(key, info)  # the key, not the record's own id: the view checks both
                seen = set(current)
                while True:
                    try:
                        entry = await watcher.updates(timeout=self.ttl_s)
                    except NatsTimeoutError:
                        break
                    event = _event(entry)
                    if event is None:
                        continue
                    if event.info is None:
                        seen.discard(event.node_id)
                    else:
                        seen.add(event.node_id)
                    yield event
            finally:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(_STOP_TIMEOUT_S):  # unsubscribing while NATS is away
                        await watcher.stop()

    async def _initial(self, watcher: KeyValue.KeyWatcher) -> dict[str, NodeInfo]:
        """The records a fresh watcher starts with (up to its "initial values done" marker)."""
        current: dict[str, NodeInfo] = {}
        while True:
            entry = await watcher.updates(timeout=self.ttl_s)
            if entry is None:
                return current
            event = _event(entry)
            if event is not None and event.info is not None:
                current[event.node_id] = event.info
            elif event is not None:
                current.pop(event.node_id, None)


def _event(entry: KeyValue.Entry | None) -> NodeEvent | None:
    if entry is None:
        return None
    if entry.operation in (KV_DEL, KV_PURGE) or not entry.value:
        return NodeEvent(entry.key, None)
    try:
        return NodeEvent(entry.key, NodeInfo.unpack(entry.value))
    except (ValueError, TypeError, KeyError, AttributeError):  # not a msgpack map of the fields
        log.warning("registry: unreadable record for %r ignored", entry.key)
        return None
