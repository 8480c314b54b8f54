"""What every request handler needs, built once by the lifespan and reached through
``Ctx`` (a FastAPI dependency on ``app.state.context``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from nats.aio.client import Client as Nats

from cim_route.address import Networks
from cim_route.balancer import Balancer
from cim_route.batcher import Batcher
from cim_route.gate import AuthGate
from cim_route.guard import Guard
from cim_route.history import History
from cim_route.metrics import Metrics
from cim_route.nodes import NodeView
from cim_route.scheduler import Scheduler
from cim_route.send import Sender
from shared.keys import Keys
from shared.scripts import AnyRedis, Scripts
from shared.settings import RouteSettings

__all__ = ["Context", "Ctx"]


@dataclass(slots=True)
class Context:
    """The route's clients and services."""

    settings: RouteSettings
    keys: Keys
    redis: AnyRedis
    scripts: Scripts
    nats: Nats
    view: NodeView
    balancer: Balancer
    metrics: Metrics
    history: History
    guard: Guard
    batcher: Batcher
    sender: Sender
    scheduler: Scheduler
    gate: AuthGate
    proxies: Networks
    """``CIM_TRUSTED_PROXIES``, parsed (``cim_route.address``)."""


async def _context(request: Request) -> Context:
    # async: FastAPI runs a plain ``def`` dependency in a worker thread, a thread hop per request.
    return request.app.state.context


Ctx = Annotated[Context, Depends(_context)]
