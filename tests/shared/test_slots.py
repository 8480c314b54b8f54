"""Redis Cluster slots of the keys one script touches together (issue 11): all in one slot.

Each script's KEYS are taken from the code that builds them (the key builder, the session
calls, the guard, the p2p send's cluster strategy, the fan-out store), recorded instead of
sent; ``send.lua`` (sender and recipient in one call) runs on one Redis only."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.crc import key_slot

from cim_node.acks import AckCursors
from cim_node.metrics import NodeMetrics
from cim_route.gate import AuthGate
from cim_route.guard import Guard
from cim_route.metrics import Metrics
from cim_route.send import Sender
from shared import inbox, sessions
from shared.keys import BUCKETS, Keys, bucket, user_tag
from shared.scripts import Scripts
from shared.settings import RateLimit, RouteSettings
from shared.tokens import Token
from tests.conftest import SECRET

K = Keys()


def _slots(*keys: str) -> set[int]:
    return {key_slot(key.encode()) for key in keys}


def _user_keys(u: str) -> list[str]:
    return [
        K.user(u), K.seq(u), K.inbox(u), K.ack(u), K.device_ack(u, "phone"), K.reads(u),
        K.typing(u, "bob"), K.session(u), K.idem(u, "c1"), K.ratelimit(u), K.user_groups(u),
        K.token_epoch(u), K.revoked(u, "jti-1"),
    ]  # fmt: skip


def test_every_key_of_a_user_is_in_the_slot_of_its_bucket() -> None:
    for u in ("alice", "Bob", "carol.x", "d_123"):
        assert _slots(*_user_keys(u)) == _slots(f"{user_tag(u)}")


def test_case_variants_share_a_bucket_but_not_their_keys() -> None:
    assert bucket("Alice") == bucket("alice") == bucket("ALICE")
    assert 0 <= bucket("alice") < BUCKETS
    assert user_tag("alice") == f"{{u:{bucket('alice'):04d}}}"
    assert K.inbox("Alice") != K.inbox("alice")


def test_users_of_one_bucket_keep_apart_keys() -> None:
    names = [f"user{i}" for i in range(5000)]
    by_bucket: dict[int, list[str]] = {}
    for name in names:
        by_bucket.setdefault(bucket(name), []).append(name)
    a, b = next(group for group in by_bucket.values() if len(group) > 1)[:2]
    assert _slots(K.inbox(a), K.inbox(b)) == _slots(K.inbox(a))
    assert K.inbox(a) != K.inbox(b) and K.seq(a) != K.seq(b)


def test_auth_gate_keys_are_in_the_slot_of_the_address() -> None:
    assert len(_slots(K.auth_rate("10.0.0.7"), K.login_failures("alice", "10.0.0.7"))) == 1
    assert len(_slots(K.auth_rate("::1"), K.login_failures("Zed", "::1"))) == 1


# --- every script's KEYS, as the code builds them -------------------------------------------

USERS = ("alice", "Bob", "carol.x", "d_123", "system")


def _evalsha_slots(command: tuple[Any, ...]) -> set[int]:
    assert command[0] == "EVALSHA"
    numkeys = command[2]
    return _slots(*command[3 : 3 + numkeys])


class _Recorder:
    """A pipeline or batcher that keeps the commands given to it and answers like the scripts."""

    def __init__(self, scripts: Scripts) -> None:
        self.commands: list[tuple[Any, ...]] = []
        self._scripts = scripts

    def execute_command(self, *args: Any, **_: Any) -> None:
        self.commands.append(args)

    def reply(self, command: tuple[Any, ...]) -> Any:
        sha = command[1] if command[0] == "EVALSHA" else None
        if sha in (self._scripts.guard.sha, self._scripts.auth_gate.sha):
            return [b"ok"]
        if sha == self._scripts.store_p2p.sha:
            return [b"ok", 1, 1, 1, b"id", b"", b"stored"]
        if sha == self._scripts.store_batch.sha:
            recipients = command[2] // (4 if command[3 + command[2] + 4] == 1 else 3)
            return [1, 1, b"id", *[1, 1, b""] * recipients]
        return 1

    async def call(self, *command: Any) -> Any:
        self.commands.append(command)
        return self.reply(command)

    async def call_many(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        return [await self.call(*command) for command in commands]

    # a pipeline of a fake cluster client (store_many)
    async def __aenter__(self) -> _Recorder:
        return self

    async def __aexit__(self, *_: Any) -> None:
        return None

    def __len__(self) -> int:
        return len(self.commands)

    @property
    def command_stack(self) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
        return [(c, {}) for c in self.commands]

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        return [self.reply(c) for c in self.commands]


class _FakeCluster(RedisCluster):
    """A RedisCluster that never connects: its pipelines record."""

    def __init__(self, recorder: _Recorder) -> None:
        super().__init__(startup_nodes=[ClusterNode("127.0.0.1", 1)])
        self.recorder = recorder

    def pipeline(self, transaction: bool | None = None, shard_hint: Any = None) -> Any:
        return self.recorder


def _scripts() -> Scripts:
    return Scripts.register(Redis())  # register_script computes the sha, no server needed


def test_session_scripts_touch_one_slot() -> None:
    for u in USERS:
        for node in ("n1", "node-a7f3"):
            assert len(_slots(*sessions.session_keys(K, u, node))) == 1


def test_guard_touches_the_senders_slot_only() -> None:
    scripts = _scripts()
    guard = Guard(scripts, K, RateLimit(10, 20), Metrics(), cluster=True)
    for u in USERS:
        token = Token(username=u, jti="j1", expires_at=0, issued_at=1, device="phone")
        for t in (token, None):
            assert _evalsha_slots(guard.command(t, u)) == _slots(user_tag(u))


def test_p2p_on_a_cluster_is_a_call_per_slot_and_never_send_lua() -> None:
    scripts = _scripts()
    recorder = _Recorder(scripts)
    cluster = _FakeCluster(recorder)
    guard = Guard(scripts, K, RateLimit(10, 20), Metrics(), cluster=True)
    settings = RouteSettings(secret=SECRET)
    sender = Sender(cluster, scripts, K, None, settings, None, Metrics(), guard, recorder)  # type: ignore[arg-type]
    assert not sender.one_call
    token = Token(username="alice", jti="j1", expires_at=0, issued_at=1, device="phone")
    for to, t in (("Bob", token), ("alice", token), ("carol.x", None)):
        asyncio.run(sender.direct(sender="alice", to=to, body="hi", msg_id="m1", idem_scope="s", token=t))
    scripts_run = [c for c in recorder.commands if c[0] == "EVALSHA"]
    assert {c[1] for c in scripts_run} == {scripts.guard.sha, scripts.store_p2p.sha, scripts.store_batch.sha}
    for command in scripts_run:
        assert len(_evalsha_slots(command)) == 1, command
    # the one-Redis sender runs send.lua
    assert Sender(Redis(), scripts, K, None, settings, None, Metrics(), guard, recorder).one_call  # type: ignore[arg-type]


def test_fan_out_on_a_cluster_stores_per_slot_and_the_carbon_in_the_senders() -> None:
    scripts = _scripts()
    recorder = _Recorder(scripts)
    members = [f"member{i}" for i in range(40)]
    retention = inbox.Retention(60, 100, 60)
    batch = asyncio.run(
        inbox.store_many(
            _FakeCluster(recorder), scripts, K, users=members, packed=b"m", msg_id="m1",
            retention=retention, idem_scope="g", carbon=("alice", b"c"),
        )
    )  # fmt: skip
    assert sorted(d.to for d in batch.deliveries if not d.carbon) == sorted(members)
    assert [d.to for d in batch.deliveries if d.carbon] == ["alice"]
    for command in recorder.commands:
        assert len(_evalsha_slots(command)) == 1, command


def test_auth_gate_and_ack_flush_touch_one_slot() -> None:
    scripts = _scripts()
    recorder = _Recorder(scripts)
    cluster = _FakeCluster(recorder)
    gate = AuthGate(scripts, K, RouteSettings(secret=SECRET), Metrics())
    acks = AckCursors(cluster, scripts, K, retention_ms=1000, interval_s=1, metrics=NodeMetrics())
    for u in USERS:
        asyncio.run(gate.enter(cluster, "10.0.0.7", u))
        asyncio.run(gate.enter(cluster, "::1"))
        acks.mark(u, "phone", 3)
    asyncio.run(acks.flush())
    ran = {c[1] for c in recorder.commands}
    assert ran == {scripts.auth_gate.sha, scripts.max_set.sha}
    for command in recorder.commands:
        assert len(_evalsha_slots(command)) == 1, command
    assert len(_slots(K.delayed)) == 1  # delayed_claim.lua: one key


def test_per_bucket_views_share_the_slot_of_their_users() -> None:
    for u in ("Alice", "alice", "ALICE"):
        b = bucket(u)
        assert _slots(K.online(b), K.users(b), K.usernames(b), K.node_sessions("n1", b)) == _slots(K.seq(u))
    assert K.usernames(bucket("Alice")) == K.usernames(bucket("alice"))
    assert K.online(bucket("Alice")) == K.online(bucket("alice"))
    assert K.users(bucket("Alice")) == K.users(bucket("alice"))
