"""``python -m cim_route``: serve the route with uvicorn on ``CIM_ROUTE_HOST:CIM_ROUTE_PORT``.

Settings come from ``CIM_*`` variables. uvicorn handles SIGTERM/SIGINT: it stops
accepting, lets requests in flight finish, runs the lifespan shutdown (tasks
cancelled and awaited, NATS and Redis closed) and the process exits 0.
"""

from __future__ import annotations

import importlib.util
import logging
import signal
import sys

import uvicorn

from cim_route.app import create_app
from shared.errors import SettingsError
from shared.settings import RouteSettings


def main() -> int:
    try:
        settings = RouteSettings.from_env()
    except SettingsError as exc:
        print(f"cim route: {exc.detail}", file=sys.stderr)
        return 2
    settings.configure_logging()
    config = uvicorn.Config(
        create_app(settings),
        host=settings.route_host,
        port=settings.route_port,
        loop="uvloop" if importlib.util.find_spec("uvloop") else "asyncio",
        log_level=settings.log_level.lower(),
        lifespan="on",
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    server = uvicorn.Server(config)
    # uvicorn re-raises the signal that stopped it once it has restored the previous handlers;
    # with these in place that ends here instead of killing the process, so a stop exits 0.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stopped_by)
    server.run()
    return 0 if server.started else 1


def _stopped_by(signum: int, frame: object) -> None:
    logging.getLogger("cim_route").info("stopped by %s", signal.Signals(signum).name)


if __name__ == "__main__":
    sys.exit(main())
