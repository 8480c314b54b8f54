"""Confirming that Redis replicas hold a write (``CIM_REDIS_WAIT``).

Redis replication is asynchronous: ``WAIT n timeout`` reports how many replicas have
acknowledged the writes *of the connection that runs it* so far; it is not a consensus. So the
``WAIT`` goes at the end of the same pipeline as the writes it vouches for (a pool would run it
on another connection, whose own writes are none, and it would confirm nothing). A write that
was confirmed survives the loss of its master unless the replica promoted in its place is not
one of those that confirmed.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Unconfirmed", "Wait"]


class Unconfirmed(Exception):
    """Fewer replicas than required confirmed the writes within the timeout."""

    def __init__(self, wanted: int, confirmed: int, timeout_ms: int) -> None:
        super().__init__(f"{confirmed} of {wanted} Redis replicas confirmed the write within {timeout_ms} ms")
        self.wanted = wanted
        self.confirmed = confirmed


class Wait:
    """``WAIT replicas timeout_ms`` for the end of a pipeline, and the check of its reply."""

    __slots__ = ("replicas", "timeout_ms")

    def __init__(self, replicas: int, timeout_ms: int) -> None:
        self.replicas = replicas
        self.timeout_ms = timeout_ms

    @property
    def command(self) -> tuple[Any, ...]:
        return ("WAIT", self.replicas, self.timeout_ms)

    def check(self, reply: Any) -> None:
        """Raise ``Unconfirmed`` unless ``reply`` (WAIT's) counts enough replicas."""
        if isinstance(reply, Exception):
            raise reply
        if int(reply) < self.replicas:
            raise Unconfirmed(self.replicas, int(reply), self.timeout_ms)
