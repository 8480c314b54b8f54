"""``python -m cim_route``: serve the route with uvicorn on ``CIM_ROUTE_HOST:CIM_ROUTE_PORT``.

Settings come from ``CIM_*`` variables. HTTP is uvicorn's httptools protocol with the route's
connection limits (``cim_route.limits``: header cap, request and idle deadlines). With
``CIM_ROUTE_WORKERS`` > 1 this process supervises that many route processes sharing the port
(``cim_route.workers``; each runs this module with ``--worker``). uvicorn handles
SIGTERM/SIGINT: it stops accepting, lets requests in flight finish, runs the lifespan shutdown
(tasks cancelled and awaited, NATS and Redis closed) and the process exits 0.
Exit 2: bad settings, missing credentials, or NATS or Redis refused them (checked once before
serving, ``shared.links.preflight``). With ``CIM_TLS_CERT``/``CIM_TLS_KEY`` it serves HTTPS.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import signal
import sys

import uvicorn

from cim_route.app import create_app
from cim_route.limits import ConnectionLimits, guarded_protocol
from cim_route.workers import WORKER_FLAG, listen_socket, supervise
from shared import gctune
from shared.errors import SettingsError
from shared.links import Refused, preflight
from shared.settings import RouteSettings


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        settings = RouteSettings.from_env()
    except SettingsError as exc:
        print(f"cim route: {exc.detail}", file=sys.stderr)
        return 2
    settings.configure_logging()
    worker = WORKER_FLAG in argv
    if not worker:
        try:
            asyncio.run(preflight(settings))
        except Refused as exc:
            print(f"cim route: {exc}", file=sys.stderr)
            return 2
    if settings.route_workers > 1 and not worker:
        return supervise(settings)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.route_host,
        port=settings.route_port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        http=guarded_protocol(ConnectionLimits(settings.http_request_s, settings.http_idle_s)),
        timeout_keep_alive=settings.http_idle_s,
        log_level=settings.log_level.lower(),
        lifespan="on",
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=10,
        ssl_certfile=settings.tls_cert or None,
        ssl_keyfile=settings.tls_key or None,
    )
    server = uvicorn.Server(config)
    # uvicorn re-raises the signal that stopped it once it has restored the previous handlers;
    # with these in place that ends here instead of killing the process, so a stop exits 0.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stopped_by)
    sockets = [listen_socket(settings.route_host, settings.route_port)] if worker else None
    gctune.settle()  # the app is built: what it loaded stays out of every collection
    server.run(sockets=sockets)
    return 0 if server.started else 1


def _stopped_by(signum: int, frame: object) -> None:
    logging.getLogger("cim_route").info("stopped by %s", signal.Signals(signum).name)


if __name__ == "__main__":
    sys.exit(main())
