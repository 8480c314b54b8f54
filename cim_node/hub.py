"""The node's index of logged-in users: user -> its one live connection.

The newest login wins: ``register`` returns the connection it replaced so the
caller kicks it with ``duplicate_login``. ``kick`` serves the bus's kick
payloads, whose optional connection id protects a newer login from a kick
meant for an older one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Protocol

from shared.bus import Item
from shared.protocol import KickReason

__all__ = ["Hub", "Member"]

log = logging.getLogger(__name__)


class Member(Protocol):
    """What the hub, the bus deliveries and the server need of a connection."""

    @property
    def user(self) -> str: ...

    @property
    def conn_id(self) -> str: ...

    def deliver(self, item: Item) -> None: ...

    def resync(self) -> None: ...

    def kick(self, reason: KickReason) -> None: ...

    def close(self) -> None: ...


class Hub:
    """user -> connection; holds only connections past the token check."""

    __slots__ = ("_users",)

    def __init__(self) -> None:
        self._users: dict[str, Member] = {}

    def __len__(self) -> int:
        return len(self._users)

    def __iter__(self) -> Iterator[Member]:
        return iter(list(self._users.values()))

    def get(self, user: str) -> Member | None:
        return self._users.get(user)

    def register(self, conn: Member) -> Member | None:
        """Make ``conn`` its user's connection; return the older one it replaces (to be kicked)."""
        old = self._users.get(conn.user)
        self._users[conn.user] = conn
        return old if old is not conn else None

    def unregister(self, conn: Member) -> None:
        """Forget ``conn`` unless a newer connection of its user already replaced it."""
        if self._users.get(conn.user) is conn:
            del self._users[conn.user]

    def kick(self, user: str, reason: str, conn_id: str | None = None) -> bool:
        """Kick ``user``'s connection (only if it is ``conn_id``, when given); True if one was kicked."""
        try:
            why = KickReason(reason)
        except ValueError:
            log.warning("kick with unknown reason %r for user=%s ignored", reason, user)
            return False
        conn = self._users.get(user)
        if conn is None or (conn_id is not None and conn.conn_id != conn_id):
            return False
        conn.kick(why)
        return True
