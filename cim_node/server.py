"""The connection node: listen, accept, announce, drain, stop.

Lifecycle: ``NEW`` -> ``start()`` -> ``UP`` -> (``drain()``) ``DRAINING`` ->
``stop()`` -> ``STOPPED``. ``start`` builds the ``NodeContext`` its
connections see (they see nothing else of the server). The server owns every
task it starts (``spawn``) and every connection (``connections``), and runs
the one deadline wheel of all connections (``Sweeper``: login deadline,
heartbeat silence); ``stop`` closes the connections,
cancels and awaits the tasks within its timeout, sweeps this node's sessions,
withdraws from the registry and closes NATS and Redis.

Drain (bus ``drain`` payload, ``POST /nodes/{id}/drain``, or SIGTERM): the
state ``draining`` is announced at once so the route hands the node to no new
login; a login arriving anyway gets ``kick{drain}``; the clients get
``kick{drain}`` at ``drain_rate`` per second (their reconnects don't stampede
the other nodes); after at most ``drain_timeout_s`` the rest are closed. When
the node is empty it withdraws and sets ``finished``: a node has nothing to do
once drained, so ``python -m cim_node`` then stops and exits 0 (an operator
drains a node to take it away; starting it again is a new process).
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import time
from collections.abc import Awaitable, Coroutine
from typing import Any

import nats
from nats.aio.client import Client as NatsClient

from cim_node.acks import AckCursors
from cim_node.batch import REDIS_TIMEOUT_S
from cim_node.connection import Connection, Phase
from cim_node.context import NodeContext
from cim_node.delivery import Delivery
from cim_node.hub import Hub
from cim_node.metrics import NodeMetrics
from cim_node.pending import PendingLogins
from cim_node.store import SessionStore
from cim_node.sweeper import Sweeper, tick_for
from cim_node.websocket import listen as listen_websocket
from shared import bus, links, resp, sessions
from shared.keys import Keys
from shared.protocol import KickReason
from shared.registry import NodeInfo, NodeRegistry, NodeState
from shared.registry_nats import NatsKvRegistry
from shared.scripts import REDIS_FAILURES, AnyRedis, Scripts
from shared.settings import NodeSettings

__all__ = ["NodeServer", "ServerState"]

log = logging.getLogger(__name__)

_DRAIN_TICK_S = 0.05


class ServerState(enum.StrEnum):
    NEW = "new"
    STARTING = "starting"
    UP = "up"
    DRAINING = "draining"
    STOPPING = "stopping"
    STOPPED = "stopped"


class NodeServer:
    """One connection node. ``registry`` defaults to NATS KV (bucket ``cim-nodes``)."""

    def __init__(self, settings: NodeSettings, *, registry: NodeRegistry | None = None) -> None:
        self.settings = settings
        self.id = settings.node_id
        self.keys = Keys(settings.redis_prefix)
        self.metrics = NodeMetrics()
        self.hub = Hub()
        self.delivery = Delivery(self.id, self.hub, on_drain=lambda: self.spawn(self.drain()))
        self.connections: set[Connection] = set()
        self.state = ServerState.NEW
        self.finished = asyncio.Event()
        """Set when a drain has emptied the node (and it withdrew): time to stop."""
        self.port = 0
        self.metrics_port: int | None = None
        self.ws_port: int | None = None
        self.started_at = 0
        self.redis: AnyRedis = None  # type: ignore[assignment]  # set by start()
        self.scripts: Scripts = None  # type: ignore[assignment]
        self.acks: AckCursors = None  # type: ignore[assignment]
        self.store: SessionStore | None = None
        self.nc: NatsClient | None = None
        self.registry = registry
        self._listener: asyncio.Server | None = None
        self._ws_listener: asyncio.Server | None = None
        self._tasks: set[asyncio.Task] = set()
        self._loops: list[asyncio.Task] = []

    # ----- what connections may use (through their NodeContext) --------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    @property
    def draining(self) -> bool:
        """Whether logins are refused (``kick{drain}``)."""
        return self.state in (ServerState.DRAINING, ServerState.STOPPING, ServerState.STOPPED)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task:
        """Run ``coro`` as a task this server owns (cancelled and awaited by ``stop``)."""
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("node=%s task failed", self.id, exc_info=task.exception())

    async def kick_remote(self, user: str, old: sessions.Ended) -> None:
        """Tell the node of a session a login ended to kick that connection (``old.reason``:
        the newest login of a device wins; past the device limit the longest-connected goes)."""
        assert self.nc is not None
        try:
            await bus.publish_kick(self.nc, bus.kick_subject(old.node), user, old.reason, old.conn)
        except Exception as exc:  # nats-py raises several unrelated types
            self.metrics.nats_errors.inc()
            log.warning("remote kick user=%s node=%s conn=%s failed: %s", user, old.node, old.conn, exc)

    # ----- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Connect Redis and NATS, sweep leftovers of this node id, subscribe, listen, announce."""
        if self.state is not ServerState.NEW:
            raise RuntimeError(f"node {self.id} cannot start from {self.state}")
        self.state = ServerState.STARTING
        s = self.settings
        # No per-reply timeout (a timer per reply of every pipeline); each pipeline has one.
        self.redis = links.redis_client(
            s.redis_url, s.tls_ca, socket_timeout=None, socket_connect_timeout=REDIS_TIMEOUT_S
        )
        resp.fast_packing(self.redis)
        self.scripts = Scripts.register(self.redis)
        self.acks = AckCursors(
            self.redis,
            self.scripts,
            self.keys,
            retention_ms=s.retention_s * 1000,
            interval_s=s.ack_flush_ms / 1000,
            metrics=self.metrics,
        )
        self.store = SessionStore(self.redis, self.scripts, self.keys, self.id, s.max_devices)
        async with asyncio.timeout(REDIS_TIMEOUT_S):
            swept = await sessions.sweep_node(self.redis, self.scripts, self.keys, self.id)
        if swept:
            log.info("node=%s swept %d sessions of a previous run", self.id, swept)
        self.nc = await nats.connect(
            name=f"cim-node-{self.id}",
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            reconnected_cb=self._on_nats_reconnected,
            disconnected_cb=self._on_nats_disconnected,
            error_cb=self._on_nats_error,
            **links.nats_options(s.nats_url, s.nats_creds, s.tls_ca),
        )
        if self.registry is None:
            self.registry = await NatsKvRegistry.open(
                self.nc.jetstream(), refresh_s=s.registry_refresh_s, replicas=s.nats_kv_replicas
            )
        await self.delivery.start(self.nc)
        ctx = self._context()
        self._listener = await self.loop.create_server(
            lambda: Connection(ctx),
            s.node_host,
            s.node_port,
            backlog=4096,
            reuse_address=True,
            ssl=s.server_tls(),
            ssl_handshake_timeout=s.login_timeout_s if s.tls else None,
        )
        self.port = self._listener.sockets[0].getsockname()[1]
        if s.node_ws_port:
            self._ws_listener = await listen_websocket(self.loop, lambda: Connection(ctx), s)
            self.ws_port = self._ws_listener.sockets[0].getsockname()[1]
        if s.metrics_port >= 0:
            self.metrics_port = self.metrics.serve(s.node_host, s.metrics_port)
        self.started_at = int(time.time() * 1000)
        self.state = ServerState.UP
        await self.announce()
        self._loops = [
            self.spawn(self._announce_loop()),
            self.spawn(self._restore_loop()),
            self.spawn(self.acks.run()),
            self.spawn(ctx.sweeper.run()),
        ]
        log.info(
            "node=%s listening on %s:%d (public %s, websocket %s, metrics %s)",
            self.id,
            s.node_host,
            self.port,
            s.public_host,
            self.ws_port,
            self.metrics_port,
        )

    def _context(self) -> NodeContext:
        s = self.settings
        assert self.store is not None
        return NodeContext(
            settings=s,
            loop=self.loop,
            hub=self.hub,
            acks=self.acks,
            metrics=self.metrics,
            store=self.store,
            sweeper=Sweeper(tick_for(s.login_timeout_s, 3 * s.heartbeat_s), self.loop.time),
            spawn=self.spawn,
            kick_remote=self.kick_remote,
            refusing=lambda: self.draining,
            stopping=lambda: self.state is ServerState.STOPPING,
            connections=self.connections,
            pending=PendingLogins(s.max_pending, s.max_pending_per_address),
        )

    def info(self) -> NodeInfo:
        state = NodeState.UP if self.state is ServerState.UP else NodeState.DRAINING
        return NodeInfo(
            id=self.id,
            host=self.settings.public_host,
            port=self.port,
            connections=len(self.hub),
            state=state.value,
            started_at=self.started_at,
            metrics_port=self.metrics_port,
            ws_port=self.ws_port,
            tls=self.settings.tls,
        )

    async def announce(self) -> None:
        """Publish this node's record now; a failure is logged (the next refresh retries)."""
        assert self.registry is not None
        try:
            async with asyncio.timeout(5):
                await self.registry.announce(self.info())
        except Exception as exc:  # any registry backend's error: keep serving
            self.metrics.nats_errors.inc()
            log.warning("node=%s announce failed: %s", self.id, exc)

    async def _announce_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.registry_refresh_s)
            if self.state in (ServerState.UP, ServerState.DRAINING):
                await self.announce()

    async def _restore_loop(self) -> None:
        """The sessions check, on the registry's period but its own loop: a slow Redis (a cluster
        in failover) must not hold back the announce, or the record expires and a route sweeps
        this node's sessions."""
        while True:
            await asyncio.sleep(self.settings.registry_refresh_s)
            if self.state in (ServerState.UP, ServerState.DRAINING):
                await self._restore_sessions()

    async def _restore_sessions(self) -> None:
        """Undo a route's sweep of this node's sessions (it looked dead while NATS was away, or
        its record expired): put them back, then read each connection's inbox again, since what
        was sent meanwhile was stored but not published to this node."""
        # Only sessions already claimed: a login in flight claims its own a moment later.
        live = {
            (c.user, c.device): c.conn_id
            for c in self.connections
            if c.phase is Phase.LIVE and self.hub.get(c.user, c.device) is c
        }
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_S):
                taken = await sessions.restore_missing(self.redis, self.scripts, self.keys, self.id, live)
        except REDIS_FAILURES as exc:
            self.metrics.redis_errors.inc()
            log.warning("node=%s session restore failed: %s", self.id, exc)
            return
        if taken is None:
            return
        for conn in self.connections:
            who = (conn.user, conn.device)
            if live.get(who) == conn.conn_id and who not in taken:
                conn.resync()
        for user, device in taken:
            log.info(
                "node=%s user=%s device=%s logged in elsewhere meanwhile: kicking this connection",
                self.id,
                user,
                device,
            )
            self.hub.kick(user, KickReason.DUPLICATE_LOGIN.value, device=device)

    async def drain(self) -> None:
        """Stop taking logins, announce ``draining``, move the clients away (see the module doc)."""
        if self.state is not ServerState.UP:
            return
        self.state = ServerState.DRAINING
        log.info("node=%s draining %d connections", self.id, len(self.connections))
        await self.announce()
        self.spawn(self._drain_clients())

    async def _drain_clients(self) -> None:
        s = self.settings
        deadline = self.loop.time() + s.drain_timeout_s
        per_tick = max(1, round(s.drain_rate * _DRAIN_TICK_S))
        while self.connections and self.loop.time() < deadline:
            for conn in list(itertools.islice(self.connections, per_tick)):
                conn.kick(KickReason.DRAIN)
            await asyncio.sleep(_DRAIN_TICK_S)
        for conn in list(self.connections):
            conn.close()
        await self._withdraw()
        log.info("node=%s drained", self.id)
        self.finished.set()

    async def _withdraw(self) -> None:
        if self.registry is None:
            return
        try:
            async with asyncio.timeout(5):
                await self.registry.withdraw(self.id)
        except Exception as exc:  # any registry backend's error
            self.metrics.nats_errors.inc()
            log.warning("node=%s withdraw failed: %s", self.id, exc)

    async def stop(self, timeout: float = 10.0) -> None:
        """Close everything this node opened, within about ``timeout`` seconds. Idempotent."""
        if self.state in (ServerState.STOPPING, ServerState.STOPPED):
            return
        self.state = ServerState.STOPPING
        for listener in (self._listener, self._ws_listener):
            if listener is not None:
                listener.close()
        for conn in list(self.connections):
            conn.close(release=False)  # one sweep below releases them all in a pipeline
        for task in self._loops:
            task.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout / 2)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        if self.acks is not None:
            await _bounded(self.acks.flush(), "ack flush", 2.0)
        if self.store is not None:
            await _bounded(self.store.close(), "session store close", 1.0)
        if self.redis is not None:
            await _bounded(
                sessions.sweep_node(self.redis, self.scripts, self.keys, self.id), "session sweep", 2.0
            )
        await self._withdraw()
        if self.nc is not None:
            await _bounded(self.delivery.stop(), "unsubscribe", 2.0)
            await _bounded(self.nc.close(), "nats close", 2.0)
        if self.redis is not None:
            await _bounded(self.redis.aclose(), "redis close", 2.0)
        for listener in (self._listener, self._ws_listener):
            if listener is not None:
                await _bounded(listener.wait_closed(), "listener close", 1.0)
        await self.metrics.close()
        self.state = ServerState.STOPPED
        log.info("node=%s stopped", self.id)

    # ----- NATS callbacks -----------------------------------------------------------------

    async def _on_nats_reconnected(self) -> None:
        log.warning(
            "node=%s NATS reconnected: re-syncing %d connections from the inbox", self.id, len(self.hub)
        )
        self.delivery.resync_all()

    async def _on_nats_disconnected(self) -> None:
        if self.state is not ServerState.STOPPING:
            log.warning("node=%s NATS disconnected", self.id)

    async def _on_nats_error(self, exc: Exception) -> None:
        self.metrics.nats_errors.inc()
        log.warning("node=%s NATS error: %s", self.id, exc)


async def _bounded(aw: Awaitable[Any], what: str, timeout: float) -> None:
    """Await a cleanup step; log (do not raise) a failure or timeout, so the next step still runs."""
    try:
        async with asyncio.timeout(timeout):
            await aw
    except Exception as exc:  # cleanup goes on whatever one step raised
        log.warning("%s failed: %r", what, exc)
