"""A cheaper packing of Redis commands for redis-py's asyncio connections: the same bytes.

redis-py builds a command's RESP by joining a growing buffer once per argument, each through
``Encoder.encode``'s chain of ``isinstance`` checks; with a dozen keys and arguments per
``EVALSHA`` that was a tenth of the route's CPU per send and of a node's per delivery (ack
cursors). ``fast_packing`` makes a client's pool build its connections from a subclass that
packs every command with one ``join`` and exact-type checks for ``bytes``, ``str`` and ``int``
(anything else -- float, memoryview, bool -- goes to the encoder, which decides as before).
What goes on the wire is byte for byte what redis-py would send.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

from redis.asyncio.connection import AbstractConnection
from redis.typing import EncodableT

__all__ = ["fast_packing", "pack_into"]

_LENGTHS = [b"$%d\r\n" % n for n in range(1024)]
"""The bulk-string headers of the usual argument lengths, formatted once."""


def pack_into(parts: list[bytes], args: tuple[EncodableT, ...], encoder: Any) -> None:
    """Append the RESP of one command (``args``, as ``execute_command`` takes them) to ``parts``."""
    first = args[0]
    if isinstance(first, str):
        if " " in first:  # 'CONFIG GET': the server wants the words as separate arguments
            args = (*first.encode().split(), *args[1:])
    elif isinstance(first, bytes) and b" " in first:
        args = (*first.split(), *args[1:])
    append = parts.append
    append(b"*%d\r\n" % len(args))
    utf8 = encoder.encoding == "utf-8" and encoder.encoding_errors == "strict"
    for arg in args:
        kind = type(arg)
        if kind is bytes:
            data = arg
        elif kind is str and utf8:
            data = arg.encode()
        elif kind is int:
            data = b"%d" % arg
        else:
            data = encoder.encode(arg)
        size = len(data)
        append(_LENGTHS[size] if size < 1024 else b"$%d\r\n" % size)
        append(data)
        append(b"\r\n")


class _FastPacking:
    """Mixin for an ``AbstractConnection`` subclass: ``pack_command(s)`` with one join."""

    encoder: Any

    def pack_command(self, *args: EncodableT) -> list[bytes]:
        parts: list[bytes] = []
        pack_into(parts, args, self.encoder)
        return [b"".join(parts)]

    def pack_commands(self, commands: Iterable[Iterable[EncodableT]]) -> list[bytes]:
        parts: list[bytes] = []
        encoder = self.encoder
        for command in commands:
            pack_into(parts, tuple(command), encoder)
        return [b"".join(parts)]


@cache
def _fast(cls: type[AbstractConnection]) -> type[AbstractConnection]:
    return type(f"Fast{cls.__name__}", (_FastPacking, cls), {})


def fast_packing(client: Any) -> None:
    """Make the connections ``client``'s pool opens from now on pack commands the cheap way.

    A client without a single pool (a ``RedisCluster``) is left as it is."""
    pool = getattr(client, "connection_pool", None)
    cls = getattr(pool, "connection_class", None)
    if isinstance(cls, type) and issubclass(cls, AbstractConnection) and not issubclass(cls, _FastPacking):
        pool.connection_class = _fast(cls)  # type: ignore[union-attr]
