"""The cap on connections that have not logged in yet, in total and per client address.

A socket costs the node memory and a place in the deadline wheel before it
proves anything, so one address cannot hold more than ``per_address`` of
them and all addresses together no more than ``total`` (``CIM_MAX_PENDING``,
``CIM_MAX_PENDING_PER_ADDRESS``). A connection past either cap is closed as
soon as it arrives; one that logs in (or closes) frees its place at once.
With TLS the count starts once the handshake is done (the handshake itself is
bounded by the login deadline).
"""

from __future__ import annotations

from collections import Counter

__all__ = ["PendingLogins"]


class PendingLogins:
    """How many connections wait for their login, by address; ``admit`` or refuse a new one."""

    def __init__(self, total: int = 1000, per_address: int = 64) -> None:
        self.total = total
        self.per_address = per_address
        self._by_address: Counter[str] = Counter()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def admit(self, address: str) -> bool:
        """Count one more waiting connection from ``address``; False (nothing counted) past a cap."""
        if self._count >= self.total or self._by_address[address] >= self.per_address:
            return False
        self._by_address[address] += 1
        self._count += 1
        return True

    def leave(self, address: str) -> None:
        """One connection from ``address`` logged in or closed."""
        self._count -= 1
        left = self._by_address[address] - 1
        if left:
            self._by_address[address] = left
        else:
            del self._by_address[address]
