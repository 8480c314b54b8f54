"""The HTTP API: one router per resource. ``API_ROUTERS`` go under ``/api/v1``; ``ROOT_ROUTERS``
(health, readiness, metrics, the browser pages) at the root."""

from __future__ import annotations

from cim_route.api import (
    account,
    edits,
    groups,
    health,
    history,
    messages,
    nodes,
    push,
    receipts,
    sessions,
    users,
    web,
)

__all__ = ["API_ROUTERS", "ROOT_ROUTERS"]

API_ROUTERS = (
    users.router,
    account.router,
    messages.router,
    groups.router,
    history.router,
    push.router,
    nodes.router,
    sessions.router,
    receipts.router,
    edits.router,
)
ROOT_ROUTERS = (health.router, web.router)
