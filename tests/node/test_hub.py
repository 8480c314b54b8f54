"""The node's hub: a connection per device of a user, kicks by connection, device or user."""

from __future__ import annotations

from dataclasses import dataclass, field

from cim_node.hub import Hub
from shared.bus import Item
from shared.protocol import KickReason


@dataclass(eq=False)
class FakeConn:
    user: str
    device: str
    conn_id: str
    kicked: list[KickReason] = field(default_factory=list)

    def deliver(self, item: Item) -> None: ...

    def resync(self) -> None: ...

    def kick(self, reason: KickReason) -> None:
        self.kicked.append(reason)

    def close(self) -> None: ...


def test_devices_side_by_side_and_the_same_device_replaced() -> None:
    hub = Hub()
    laptop, phone = FakeConn("alice", "laptop", "c1"), FakeConn("alice", "phone", "c2")
    assert hub.register(laptop) is None and hub.register(phone) is None
    assert len(hub) == 2 and set(hub.devices("alice")) == {laptop, phone}
    newer = FakeConn("alice", "phone", "c3")
    assert hub.register(newer) is phone  # the caller kicks it
    assert len(hub) == 2 and hub.get("alice", "phone") is newer
    hub.unregister(phone)  # the replaced one closing leaves the newer in place
    assert hub.get("alice", "phone") is newer
    hub.unregister(laptop)
    hub.unregister(newer)
    assert len(hub) == 0 and list(hub.devices("alice")) == [] and list(hub) == []


def test_kick_by_connection_device_or_all() -> None:
    hub = Hub()
    laptop, phone = FakeConn("bob", "laptop", "c1"), FakeConn("bob", "phone", "c2")
    hub.register(laptop)
    hub.register(phone)
    assert not hub.kick("bob", "device_limit", conn_id="nope")
    assert hub.kick("bob", "device_limit", conn_id="c1") and laptop.kicked == [KickReason.DEVICE_LIMIT]
    assert hub.kick("bob", "logout", device="phone") and phone.kicked == [KickReason.LOGOUT]
    assert hub.kick("bob", "revoked")
    assert laptop.kicked[-1] is phone.kicked[-1] is KickReason.REVOKED
    assert not hub.kick("bob", "no-such-reason") and not hub.kick("carol", "revoked")
