"""The "bare" baseline of ``cim bench --baseline``: a FastAPI endpoint that only publishes to NATS.

``python -m cim_cli.bench.baseline`` serves ``POST /messages {to, body}`` on
``BENCH_PORT`` and publishes a ``msg`` frame with ``body`` to ``bench.<to>`` on
``BENCH_NATS_URL`` (the relay writes it to the recipient's socket), answering
202. Nothing is stored, nobody is authenticated, no seq is assigned: the same
HTTP (FastAPI + pydantic, like the route) and NATS hops as cim without any of
cim's own work, so the ratio of the two measurements is what that work costs.
"""

from __future__ import annotations

import importlib.util
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgpack
import nats
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from cim_cli.bench.relay import SUBJECT_PREFIX

__all__ = ["create_app"]


class Send(BaseModel):
    to: str | list[str]
    """One user, or a group's members (``cim bench fanout --baseline``)."""
    body: str


def create_app(nats_url: str) -> FastAPI:
    """The app: one NATS connection opened and closed in the lifespan."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.nc = await nats.connect(nats_url)
        try:
            yield
        finally:
            await app.state.nc.drain()

    app = FastAPI(lifespan=lifespan)

    @app.post("/messages", status_code=202)
    async def send(msg: Send) -> dict[str, str | int]:
        msg_id = uuid.uuid4().hex
        targets = msg.to if isinstance(msg.to, list) else [msg.to]
        kind = "group" if isinstance(msg.to, list) else "p2p"
        for user in targets:
            frame = {"t": "msg", "id": msg_id, "seq": 0, "kind": kind, "to": user, "body": msg.body}
            await app.state.nc.publish(SUBJECT_PREFIX + user, msgpack.packb(frame))
        return {"id": msg_id, "recipients": len(targets)}

    return app


def main() -> None:
    uvicorn.run(
        create_app(os.environ["BENCH_NATS_URL"]),
        host="127.0.0.1",
        port=int(os.environ["BENCH_PORT"]),
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
