"""The flags of ``cim bench`` (kept apart from the load code so that ``cim --help`` stays fast)."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_bench_arguments"]


def add_bench_arguments(bench: argparse.ArgumentParser) -> None:
    """The scenarios of ``cim bench`` and their flags."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--route", help="an existing cluster's route URL (no CPU figures)")
    common.add_argument("--api-key", help="API key of --route's cluster (fanout --push-all)")
    common.add_argument("--nodes", type=int, default=2, help="nodes of the cluster it starts (default 2)")
    common.add_argument(
        "--route-workers", type=int, help="route processes of the cluster it starts (default: as cim up, 2)"
    )
    common.add_argument("--grace", type=float, default=5.0, help="seconds to wait for stragglers (default 5)")
    common.add_argument("--json", metavar="FILE", help="write every figure to FILE as JSON")
    common.add_argument(
        "--tls", action="store_true", help="TLS on every link of the cluster it starts (as cim up --tls)"
    )
    common.add_argument(
        "--ha", action="store_true", help="NATS and Redis clusters for the cluster it starts (as cim up --ha)"
    )
    scenarios = bench.add_subparsers(dest="scenario", required=True, metavar="SCENARIO")
    p2p = scenarios.add_parser("p2p", parents=[common], help="sends to random connected receivers")
    sweep = scenarios.add_parser("sweep", parents=[common], help="p2p at concurrency 1..256 (+ chart)")
    for parser in (p2p, sweep):
        parser.add_argument("--receivers", type=int, default=1000, help="connected users (default 1000)")
        parser.add_argument("--baseline", action="store_true", help="also the bare and ideal baselines")
    p2p.add_argument("--concurrency", type=int, default=64, help="concurrent senders (default 64)")
    p2p.add_argument("--procs", type=int, default=1, help="generator processes (default 1)")
    p2p.add_argument("--duration", type=float, default=10.0, help="seconds of load (default 10)")
    sweep.add_argument("--levels", default="1,4,16,64,256", help="concurrency levels (default 1,4,16,64,256)")
    sweep.add_argument("--point-duration", type=float, default=3.0, help="seconds per level (default 3)")
    sweep.add_argument("--png", type=Path, help="draw throughput and p99 into this PNG (needs cim[bench])")
    fanout = scenarios.add_parser("fanout", parents=[common], help="group bursts or push to '*'")
    fanout.add_argument("--members", type=int, default=2000, help="group size (default 2000)")
    fanout.add_argument("--bursts", type=int, default=20, help="bursts (default 20)")
    fanout.add_argument("--burst-size", type=int, default=1, help="messages per burst (default 1)")
    fanout.add_argument("--baseline", action="store_true", help="also the bare and ideal baselines")
    fanout.add_argument("--push-all", action="store_true", help="push to '*' with the API key (not stored)")
    idle = scenarios.add_parser("idle", parents=[common], help="idle logged-in connections on one node")
    idle.add_argument("--connections", type=int, default=10000, help="connections (default 10000)")
    reconnect = scenarios.add_parser("reconnect", parents=[common], help="clients of a SIGKILLed node")
    reconnect.add_argument("--clients", type=int, default=5000, help="clients (default 5000)")
    reconnect.add_argument(
        "--overlap", action="store_true", help="clients come back while the messages are being sent"
    )
    reconnect.add_argument("--timeout", type=float, default=120.0, help="give up after (s, default 120)")
