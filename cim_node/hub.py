"""The node's index of logged-in users: user -> its live connections, one per device.

The newest login of a device wins: ``register`` returns the connection of the same device it
replaced so the caller kicks it with ``duplicate_login``. ``kick`` serves the bus's kick
payloads, whose optional connection id protects a newer login from a kick meant for an
older one; without one it kicks the user's device (when named) or every device.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Protocol

from shared.bus import Item
from shared.protocol import KickReason
from shared.tokens import DEFAULT_DEVICE

__all__ = ["Hub", "Member"]

log = logging.getLogger(__name__)


class Member(Protocol):
    """What the hub, the bus deliveries and the server need of a connection."""

    @property
    def user(self) -> str: ...

    @property
    def device(self) -> str: ...

    @property
    def conn_id(self) -> str: ...

    def deliver(self, item: Item) -> None: ...

    def resync(self) -> None: ...

    def kick(self, reason: KickReason) -> None: ...

    def close(self) -> None: ...


class Hub:
    """user -> device -> connection; holds only connections past the token check."""

    __slots__ = ("_users", "_count")

    def __init__(self) -> None:
        self._users: dict[str, dict[str, Member]] = {}
        self._count = 0

    def __len__(self) -> int:
        """Connections (devices), not users."""
        return self._count

    def __iter__(self) -> Iterator[Member]:
        return iter([conn for devices in self._users.values() for conn in devices.values()])

    def devices(self, user: str) -> tuple[Member, ...]:
        """``user``'s connections here (none: empty), a copy: a delivery may close one."""
        devices = self._users.get(user)
        return () if devices is None else tuple(devices.values())

    def get(self, user: str, device: str = DEFAULT_DEVICE) -> Member | None:
        devices = self._users.get(user)
        return None if devices is None else devices.get(device)

    def register(self, conn: Member) -> Member | None:
        """Make ``conn`` its user's device's connection; return the older one it replaces."""
        devices = self._users.setdefault(conn.user, {})
        old = devices.get(conn.device)
        devices[conn.device] = conn
        if old is None:
            self._count += 1
        return old if old is not conn else None

    def unregister(self, conn: Member) -> None:
        """Forget ``conn`` unless a newer connection of its device already replaced it."""
        devices = self._users.get(conn.user)
        if devices is not None and devices.get(conn.device) is conn:
            del devices[conn.device]
            self._count -= 1
            if not devices:
                del self._users[conn.user]

    def kick(self, user: str, reason: str, conn_id: str | None = None, device: str | None = None) -> bool:
        """Kick ``user``'s connection ``conn_id`` (when given), else its ``device`` (when given),
        else all its connections here; True if one was kicked."""
        try:
            why = KickReason(reason)
        except ValueError:
            log.warning("kick with unknown reason %r for user=%s ignored", reason, user)
            return False
        kicked = False
        for conn in self.devices(user):
            if (conn_id is None or conn.conn_id == conn_id) and (device is None or conn.device == device):
                conn.kick(why)
                kicked = True
        return kicked
