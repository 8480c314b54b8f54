"""The baselines' receiver side: a NATS subscriber that writes each message to one TCP socket.

``python -m cim_cli.bench.relay`` listens on ``BENCH_PORT``; a client sends one
frame ``{"t": "login", "token": NAME}`` and gets ``welcome``; from then on
every NATS message on ``bench.NAME`` (a MessagePack ``msg`` frame body, built
once by the publisher) is written to that socket with its 4-byte length. No
session, no replay, no ack: the least a node can do, so the baselines measure
the floor of the design's delivery hop.
"""

from __future__ import annotations

import asyncio
import os

import nats

from cim_cli.ops.launcher import run_async
from shared.errors import FrameError
from shared.protocol import HEADER, FrameDecoder, encode

__all__ = ["SUBJECT_PREFIX", "serve"]

SUBJECT_PREFIX = "bench."


class _Client(asyncio.Protocol):
    def __init__(self, sockets: dict[str, asyncio.Transport]) -> None:
        self._sockets = sockets
        self._decoder = FrameDecoder()
        self._name = ""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            frames = list(self._decoder.feed(data))
        except FrameError:
            self._transport.close()  # type: ignore[union-attr]
            return
        for frame in frames:
            if frame["t"] == "login" and not self._name:
                self._name = str(frame.get("token", ""))
                self._sockets[self._name] = self._transport  # type: ignore[assignment]
                welcome = {"t": "welcome", "user": self._name, "node": "relay", "heartbeat_s": 30}
                self._transport.write(encode({**welcome, "last_seq": 0}))  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        if self._name and self._sockets.get(self._name) is self._transport:
            del self._sockets[self._name]


async def serve(nats_url: str, port: int) -> None:
    """Relay ``bench.*`` to the logged-in sockets until cancelled."""
    sockets: dict[str, asyncio.Transport] = {}
    skip = len(SUBJECT_PREFIX)

    async def on_msg(msg: nats.aio.msg.Msg) -> None:
        transport = sockets.get(msg.subject[skip:])
        if transport is not None:
            transport.write(HEADER.pack(len(msg.data)) + msg.data)

    nc = await nats.connect(nats_url)
    await nc.subscribe(SUBJECT_PREFIX + ">", cb=on_msg, pending_msgs_limit=1_000_000)
    server = await asyncio.get_running_loop().create_server(lambda: _Client(sockets), "127.0.0.1", port)
    try:
        await server.serve_forever()
    finally:
        server.close()
        await nc.close()


def main() -> None:
    run_async(serve(os.environ["BENCH_NATS_URL"], int(os.environ["BENCH_PORT"])))


if __name__ == "__main__":
    main()
