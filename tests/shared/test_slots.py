"""Redis Cluster slots of the keys one script touches together (issue 11): all in one slot."""

from __future__ import annotations

from redis.crc import key_slot

from shared.keys import BUCKETS, Keys, bucket, user_tag

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
