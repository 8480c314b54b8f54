"""The "ideal pipeline" baseline: the physical floor of cim's send path in Python on this box.

``python -m cim_cli.bench.ideal`` serves ``POST /messages {to, body}`` on
``BENCH_PORT`` with the server stack the route uses (uvicorn, httptools,
uvloop) but a raw ASGI app instead of FastAPI/pydantic: per request it does
ONE Redis pipeline (``INCR`` the recipient's seq, ``XADD`` the message to its
inbox, trimmed) and ONE NATS publish of the ready ``msg`` frame to
``bench.<to>`` (the relay writes it to the recipient's socket), then answers
202 ``{id, seq}``. With ``to`` a list (``cim bench fanout --baseline``) the one
pipeline holds an ``INCR`` + ``XADD`` per member, a publish goes to each, and
the answer is ``{id, recipients}``. No auth, no rate limit, no session lookup: what is left is
the work no implementation of this design can skip.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import msgpack
import nats
import redis.asyncio as aioredis
import uvicorn

from cim_cli.bench.relay import SUBJECT_PREFIX

__all__ = ["IdealApp"]

INBOX_MAXLEN = 10_000
REDIS_POOL = 64

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class IdealApp:
    """The raw ASGI app; its Redis and NATS connections live in the lifespan."""

    def __init__(self, nats_url: str, redis_url: str) -> None:
        self.nats_url = nats_url
        self.redis_url = redis_url
        self.nc: Any = None
        self.redis: aioredis.Redis | None = None

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                self.nc = await nats.connect(self.nats_url)
                # A pool that waits for a free connection: redis-py's default one raises
                # "Too many connections" past 100 requests in flight.
                pool = aioredis.BlockingConnectionPool.from_url(self.redis_url, max_connections=REDIS_POOL)
                self.redis = aioredis.Redis(connection_pool=pool)
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await self.nc.drain()
                await self.redis.aclose()  # type: ignore[union-attr]
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        try:
            request = json.loads(body)
            to, text = request["to"], request["body"]
            targets = to if isinstance(to, list) else [to]
        except (ValueError, KeyError, TypeError):
            await _answer(send, 422, {"error": "invalid_request", "detail": "{to, body} expected"})
            return
        msg_id = uuid.uuid4().hex
        async with self.redis.pipeline(transaction=False) as pipe:  # type: ignore[union-attr]
            for user in targets:
                pipe.incr(f"seq:{{{user}}}")
                pipe.xadd(
                    f"inbox:{{{user}}}", {"id": msg_id, "b": text}, maxlen=INBOX_MAXLEN, approximate=True
                )
            seqs = (await pipe.execute())[::2]
        kind = "group" if isinstance(to, list) else "p2p"
        for user, seq in zip(targets, seqs, strict=True):
            frame = {"t": "msg", "id": msg_id, "seq": seq, "kind": kind, "to": user, "body": text}
            await self.nc.publish(SUBJECT_PREFIX + user, msgpack.packb(frame))
        if isinstance(to, list):
            await _answer(send, 202, {"id": msg_id, "recipients": len(targets)})
        else:
            await _answer(send, 202, {"id": msg_id, "seq": seqs[0]})


async def _answer(send: Send, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    uvicorn.run(
        IdealApp(os.environ["BENCH_NATS_URL"], os.environ["BENCH_REDIS_URL"]),
        host="127.0.0.1",
        port=int(os.environ["BENCH_PORT"]),
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
