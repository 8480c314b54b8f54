"""The connection node: clients' TCP links, NATS deliveries, replay from the inbox.

Run it with ``python -m cim_node`` (settings from ``CIM_*``, see ``shared.settings.NodeSettings``).
"""

from __future__ import annotations

from cim_node.server import NodeServer, ServerState

__all__ = ["NodeServer", "ServerState"]
