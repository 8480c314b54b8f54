"""The users of the ``nats-server`` cim starts, with the smallest permissions each role needs.

``cim up`` writes a configuration file (mode 0600) with one user for the route
and one per node, each with a random password (``NatsAuth.render``). A node's
user may only read its own subject and write its own registry key, so a
compromised or buggy node cannot inject deliveries to other nodes' users nor
pretend to be another node. The table (also in ``docs/operations.md``):

==================  ===============================================  ==============================
role                publish                                          subscribe
==================  ===============================================  ==============================
route               ``cim.node.*``, ``cim.broadcast``, the registry  ``_INBOX.route.>``
                    bucket's JetStream API (bind, create, watch,
                    read)
node ``ID``         ``cim.kick.*``, ``$KV.cim-nodes.ID``, the        ``cim.node.ID``, ``cim.kick.ID``,
                    bucket's bind/create                             ``cim.broadcast``,
                                                                     ``_INBOX.ID.>``
==================  ===============================================  ==============================

Why each: a node tells another node to kick a replaced session (duplicate
login) on ``cim.kick.<other>``, where only kicks are accepted, never
deliveries; it binds the bucket (creating it when it starts before any route);
everything else a node learns comes on its own subject. Replies (JetStream
acknowledgements, watch deliveries) come to an inbox named after the user
(``shared.links`` sets nats-py's ``inbox_prefix``), so no user reads another's
replies. ``admin`` (tests, ``cim bench``'s own servers) may do anything.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from shared.links import inbox_prefix

__all__ = ["ADMIN", "ROUTE", "NatsAuth", "NatsUser", "node_user", "route_user"]

ADMIN = "admin"
ROUTE = "route"
_BUCKET_STREAM = "KV_cim-nodes"
_KV_PREFIX = "$KV.cim-nodes"
_BIND = ["$JS.API.INFO", f"$JS.API.STREAM.INFO.{_BUCKET_STREAM}", f"$JS.API.STREAM.CREATE.{_BUCKET_STREAM}"]
_READ = [
    f"$JS.API.CONSUMER.CREATE.{_BUCKET_STREAM}",
    f"$JS.API.CONSUMER.CREATE.{_BUCKET_STREAM}.>",
    f"$JS.API.CONSUMER.DELETE.{_BUCKET_STREAM}.>",
    f"$JS.API.CONSUMER.INFO.{_BUCKET_STREAM}.>",
    f"$JS.API.DIRECT.GET.{_BUCKET_STREAM}.>",
    f"$JS.API.STREAM.MSG.GET.{_BUCKET_STREAM}",
    f"$JS.FC.{_BUCKET_STREAM}.>",
]


@dataclass(frozen=True)
class NatsUser:
    """One user: name, password, and the subjects it may publish and subscribe to (None: all)."""

    name: str
    password: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    publish: tuple[str, ...] | None = None
    subscribe: tuple[str, ...] | None = None

    def entry(self) -> dict:
        """This user in nats-server's ``authorization.users`` list."""
        entry: dict = {"user": self.name, "password": self.password}
        if self.publish is not None or self.subscribe is not None:
            entry["permissions"] = {
                "publish": {"allow": list(self.publish or ())},
                "subscribe": {"allow": list(self.subscribe or ())},
            }
        return entry


def route_user() -> NatsUser:
    return NatsUser(
        ROUTE,
        publish=("cim.node.*", "cim.broadcast", *_BIND, *_READ),
        subscribe=(f"{inbox_prefix(ROUTE)}.>",),
    )


def node_user(node_id: str) -> NatsUser:
    if node_id in (ROUTE, ADMIN):
        raise ValueError(f"node id {node_id!r} is taken by the NATS user of another role")
    return NatsUser(
        node_id,
        publish=("cim.kick.*", f"{_KV_PREFIX}.{node_id}", *_BIND),
        subscribe=(
            f"cim.node.{node_id}",
            f"cim.kick.{node_id}",
            "cim.broadcast",
            f"{inbox_prefix(node_id)}.>",
        ),
    )


@dataclass
class NatsAuth:
    """The users of one ``nats-server`` and the configuration file that declares them."""

    users: dict[str, NatsUser] = field(default_factory=dict)

    def add(self, user: NatsUser) -> NatsUser:
        """Add ``user`` unless one of that name exists; return the one kept."""
        return self.users.setdefault(user.name, user)

    def url(self, name: str, host: str, port: int, tls: bool = False) -> str:
        """``nats://name:password@host:port`` (``tls://`` with TLS) for the user ``name``."""
        user = self.users[name]
        scheme = "tls" if tls else "nats"
        return f"{scheme}://{quote(user.name, safe='')}:{quote(user.password, safe='')}@{host}:{port}"

    def render(
        self,
        host: str,
        port: int,
        store: Path,
        tls: tuple[Path, Path] | None = None,
        extra: dict | None = None,
    ) -> str:
        """The configuration (JSON, which nats-server reads as its own format): listen on
        ``host:port`` only, JetStream in ``store``, these users, TLS with ``(cert, key)``, and
        the ``extra`` settings (a cluster member's ``server_name`` and ``cluster``)."""
        config: dict = {
            **(extra or {}),
            "listen": f"{host}:{port}",
            "jetstream": {"store_dir": str(store)},
            "authorization": {"users": [u.entry() for u in self.users.values()]},
        }
        if tls is not None:
            config["tls"] = {"cert_file": str(tls[0]), "key_file": str(tls[1])}
        return json.dumps(config, indent=2) + "\n"
