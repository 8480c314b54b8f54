"""``/nodes`` (API key): the connection nodes and draining one."""

from __future__ import annotations

import dataclasses
import logging
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel

from cim_route.api.schemas import API_PREFIX
from cim_route.auth import ApiKey
from cim_route.context import Ctx
from shared import bus
from shared.errors import ApiError
from shared.protocol import NODE_ID_RE
from shared.registry import NodeInfo

router = APIRouter(prefix=API_PREFIX, tags=["nodes"], dependencies=[ApiKey])
log = logging.getLogger(__name__)


class Node(BaseModel):
    id: str
    host: str
    port: int
    connections: int
    state: str
    started_at: int
    metrics_port: int | None = None
    """Where the node serves ``/metrics`` (on ``host``), if it does."""
    ws_url: str | None = None
    """Where browsers connect (``ws://host:port/ws``), or null without a WebSocket listener."""


@router.get("/nodes", summary="Every node in the registry")
async def nodes(ctx: Ctx) -> list[Node]:
    """``[{id, host, port, connections, state, started_at, metrics_port, ws_url}]`` sorted by
    id; ``state`` is ``up`` or ``draining``."""
    await ctx.view.loaded()
    return [_node(n) for n in ctx.view.listed()]


def _node(info: NodeInfo) -> Node:
    fields = dataclasses.asdict(info)
    del fields["ws_port"]
    return Node(**fields, ws_url=info.ws_url)


class Draining(BaseModel):
    id: str
    state: str


@router.post("/nodes/{node_id}/drain", status_code=202, summary="Drain a node")
async def drain(ctx: Ctx, node_id: Annotated[str, Path(pattern=NODE_ID_RE.pattern)]) -> Draining:
    """202: the node stops taking logins (this route hands it out no more at once) and moves
    its clients away; 404 ``unknown_node``."""
    await ctx.view.loaded()
    if ctx.view.get(node_id) is None:
        raise ApiError(404, "unknown_node", f"no such node: {node_id}")
    await ctx.nats.publish(bus.node_subject(node_id), bus.drain())
    ctx.view.mark_draining(node_id)
    log.info("drain requested for node %s", node_id)
    return Draining(id=node_id, state="draining")
