"""The baseline of ``cim bench p2p --baseline``: a bare FastAPI endpoint that only publishes to NATS.

``python -m cim_cli.bench.baseline`` serves ``POST /messages {to, body}`` on
``BENCH_PORT`` and publishes ``body`` to ``bench.<to>`` on ``BENCH_NATS_URL``,
answering 202. Nothing is stored, nobody is authenticated, no seq is assigned:
the same HTTP and NATS hops as cim without any of cim's own work, so the ratio
of the two measurements is what that work costs.
"""

from __future__ import annotations

import importlib.util
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import nats
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

__all__ = ["SUBJECT_PREFIX", "create_app"]

SUBJECT_PREFIX = "bench."


class Send(BaseModel):
    to: str
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
    async def send(msg: Send) -> dict[str, str]:
        await app.state.nc.publish(SUBJECT_PREFIX + msg.to, msg.body.encode())
        return {"id": uuid.uuid4().hex}

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
