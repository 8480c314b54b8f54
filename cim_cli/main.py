"""The ``cim`` command: ``up``, ``route``, ``node``, ``chat``, ``push``, ``status``, ``bench``.

``cim route`` and ``cim node`` replace themselves with ``python -m cim_route`` /
``python -m cim_node``, their flags turned into ``CIM_*`` variables (flags win
over the environment). The other subcommands import their module only when
they run, so ``cim --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from shared.settings import DEFAULT_ROUTE_URL

__all__ = ["build_parser", "main", "process_env"]

# Flag (argparse dest) -> CIM_* variable, per process subcommand.
_ROUTE_FLAGS = {
    "host": "CIM_ROUTE_HOST",
    "port": "CIM_ROUTE_PORT",
    "nats_url": "CIM_NATS_URL",
    "redis_url": "CIM_REDIS_URL",
    "secret": "CIM_SECRET",
    "api_keys": "CIM_API_KEYS",
    "balancer": "CIM_BALANCER",
    "workers": "CIM_ROUTE_WORKERS",
    "log_level": "CIM_LOG_LEVEL",
}
_NODE_FLAGS = {
    "host": "CIM_NODE_HOST",
    "port": "CIM_NODE_PORT",
    "node_id": "CIM_NODE_ID",
    "advertise_host": "CIM_ADVERTISE_HOST",
    "nats_url": "CIM_NATS_URL",
    "redis_url": "CIM_REDIS_URL",
    "secret": "CIM_SECRET",
    "log_level": "CIM_LOG_LEVEL",
}
_PROCESS = {"route": ("cim_route", _ROUTE_FLAGS), "node": ("cim_node", _NODE_FLAGS)}


def _add_process_flags(parser: argparse.ArgumentParser, kind: str) -> None:
    parser.add_argument("--host", help=f"listen address (CIM_{kind.upper()}_HOST)")
    parser.add_argument("--port", type=int, help=f"listen port (CIM_{kind.upper()}_PORT)")
    parser.add_argument("--nats-url", help="CIM_NATS_URL")
    parser.add_argument("--redis-url", help="CIM_REDIS_URL")
    parser.add_argument("--secret", help="CIM_SECRET (the same on the route and every node)")
    parser.add_argument("--log-level", help="CIM_LOG_LEVEL")
    if kind == "route":
        parser.add_argument("--api-keys", help="CIM_API_KEYS (comma-separated)")
        parser.add_argument("--balancer", help="CIM_BALANCER")
        parser.add_argument("--workers", type=int, help="processes sharing the port (CIM_ROUTE_WORKERS)")
    else:
        parser.add_argument("--node-id", help="CIM_NODE_ID ([a-z0-9-])")
        parser.add_argument("--advertise-host", help="CIM_ADVERTISE_HOST (what clients are told)")


def _add_admin_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--route", help=f"route URL (CIM_ROUTE_URL, default {DEFAULT_ROUTE_URL})")
    parser.add_argument(
        "--api-key",
        help="X-API-Key (CIM_API_KEY, or the first of CIM_API_KEYS; default: the key cim up keeps)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        help="data folder of the cim up whose key to use (default: cim up's default)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``cim``."""
    parser = argparse.ArgumentParser(
        prog="cim", description="cim: instant messaging and push over NATS and Redis"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="run a whole cluster on this machine (NATS, Redis, route, nodes)")
    up.add_argument("--nodes", type=int, default=2, help="how many nodes (default 2)")
    up.add_argument(
        "--route-port", type=int, default=8080, help="route port (default 8080, 0 = any free port)"
    )
    up.add_argument("--data", type=Path, help="data folder (default: the user's data directory)")
    up.add_argument("--route-workers", type=int, help="route processes sharing its port (default 2)")
    up.add_argument(
        "--tls", action="store_true", help="TLS for route, nodes and NATS (a private CA in the data folder)"
    )
    up.add_argument(
        "--ha",
        action="store_true",
        help="a 3-server NATS cluster and a Redis Cluster (3 masters + 3 replicas) instead of one each",
    )

    _add_process_flags(sub.add_parser("route", help="run one route (HTTP API)"), "route")
    _add_process_flags(sub.add_parser("node", help="run one connection node"), "node")

    chat = sub.add_parser("chat", help="the terminal chat client")
    chat.add_argument("username", nargs="?", help="who to log in as (registers on first use)")
    chat.add_argument("--route", help="route URL (CIM_ROUTE_URL)")
    chat.add_argument("--device", help="this device's name among mine (default: the host name)")

    push = sub.add_parser("push", help="push a message to users (API key)")
    push.add_argument("--to", required=True, help="comma-separated usernames, or '*' for every online user")
    push.add_argument("text", nargs="+", help="the message")
    _add_admin_flags(push)

    status = sub.add_parser("status", help="nodes, connections and online users (API key)")
    _add_admin_flags(status)

    from cim_cli.bench.options import add_bench_arguments  # noqa: PLC0415 - argparse only, no load code

    add_bench_arguments(sub.add_parser("bench", help="measure throughput, latency and CPU per message"))
    return parser


def process_env(args: argparse.Namespace, environ: dict[str, str]) -> dict[str, str]:
    """The environment of ``cim route`` / ``cim node``: ``environ`` plus the flags given."""
    _, flags = _PROCESS[args.command]
    env = dict(environ)
    for dest, var in flags.items():
        value = getattr(args, dest, None)
        if value is not None:
            env[var] = str(value)
    return env


def _exec_process(args: argparse.Namespace) -> int:
    module, _ = _PROCESS[args.command]
    argv = [sys.executable, "-m", module]
    os.execve(sys.executable, argv, process_env(args, dict(os.environ)))
    return 1  # not reached


def _chat(args: argparse.Namespace) -> int:
    from cim_cli.chat.app import run_chat  # noqa: PLC0415 - prompt-toolkit only when chatting

    return run_chat(args.route, args.username, device=args.device)


def _admin(args: argparse.Namespace) -> int:
    from cim_cli.ops import status  # noqa: PLC0415

    route = status.route_from(args.route, os.environ)
    try:
        key = status.api_key_from(args.api_key, os.environ, args.data)
    except status.NoApiKey as exc:
        print(f"cim: {exc}", file=sys.stderr)
        return 2
    ca = status.tls_ca_from(os.environ, args.data)
    if args.command == "status":
        return status.run_admin(status.status(route, key, tls_ca=ca))
    return status.run_admin(status.push(route, key, args.to, " ".join(args.text), tls_ca=ca))


def _up(args: argparse.Namespace) -> int:
    from cim_cli.ops.launcher import run_up  # noqa: PLC0415

    return run_up(args.nodes, args.route_port, args.data, args.route_workers, args.tls, args.ha)


def _bench(args: argparse.Namespace) -> int:
    from cim_cli.bench.runner import run_bench  # noqa: PLC0415

    return run_bench(args)


_COMMANDS = {
    "up": _up,
    "route": _exec_process,
    "node": _exec_process,
    "chat": _chat,
    "push": _admin,
    "status": _admin,
    "bench": _bench,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cim`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    return _COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
