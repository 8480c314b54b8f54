"""``cim bench SCENARIO``: run one scenario against cim (and baselines), print its table.

Every scenario starts a cluster of its own (``LocalCluster`` in a temporary
folder, rate limit off, cheap password hashing for the setup) unless
``--route URL`` is given, and stops everything it started. One summary table
per scenario goes to standard output, ``--json FILE`` gets every figure. The
exit code is 1 when a message was lost or the run failed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from cim_cli.bench import chart, fanout, idle, reconnect
from cim_cli.bench.p2p import Target, connected
from cim_cli.bench.rawhttp import HttpError
from cim_cli.bench.report import Report, write_json
from cim_cli.bench.target import BASELINES, Baseline, CimTarget
from cim_cli.bench.workers import measure_procs
from cim_cli.ops.launcher import run_async

__all__ = ["run_bench"]


def _cim(args: argparse.Namespace, **env: str) -> CimTarget:
    return CimTarget(
        nodes=args.nodes,
        route_url=args.route,
        api_key=args.api_key or "",
        env=env,
        route_workers=args.route_workers,
        tls=args.tls,
        ha=args.ha,
        ca=os.environ.get("CIM_TLS_CA", ""),
    )


def _targets(args: argparse.Namespace) -> list[Target]:
    targets: list[Target] = [_cim(args)]
    if args.baseline:
        targets += [Baseline(kind) for kind in BASELINES]
    return targets


async def _p2p(args: argparse.Namespace) -> list[Report]:
    report = Report(
        "p2p",
        {
            "receivers": args.receivers,
            "concurrency": args.concurrency,
            "duration s": args.duration,
            "procs": args.procs,
        },
    )
    for target in _targets(args):
        async with target:
            _progress(f"{target.name}: {args.receivers} receivers")
            if args.procs > 1:
                run = await measure_procs(
                    target, args.receivers, args.procs, args.concurrency, args.duration, args.grace
                )
            else:
                async with connected(target, args.receivers) as bench:
                    run = await bench.measure(args.concurrency, args.duration, args.grace)
            report.runs.append(run)
    return [report]


async def _sweep(args: argparse.Namespace) -> list[Report]:
    """Every target up at once and measured in turn at each level, so that a change in the
    machine's background load hits all of them alike."""
    if args.png:
        chart.require()
    levels = [int(c) for c in args.levels.split(",")]
    params = {"receivers": args.receivers, "duration s": args.point_duration}
    reports = [Report("sweep", {**params, "concurrency": c}) for c in levels]
    async with contextlib.AsyncExitStack() as stack:
        benches = []
        for target in _targets(args):
            await stack.enter_async_context(target)
            benches.append(await stack.enter_async_context(connected(target, args.receivers)))
        for level, report in zip(levels, reports, strict=True):
            for bench in benches:
                _progress(f"{bench.target.name}: concurrency {level}")
                report.runs.append(await bench.measure(level, args.point_duration, args.grace))
    if args.png:
        chart.draw(reports, args.png, f"cim bench sweep: {args.receivers} receivers, p2p")
        _progress(f"chart: {args.png}")
    return reports


async def _fanout(args: argparse.Namespace) -> list[Report]:
    if args.baseline and args.push_all:
        raise ValueError("--baseline goes with a stored group, not --push-all")
    report = fanout.new_report(args)
    env = {"group_max": str(max(1000, args.members + 1))}
    targets = [_cim(args, **env), *(Baseline(kind) for kind in BASELINES if args.baseline)]
    for target in targets:
        async with target:
            _progress(f"{target.name}: {args.members} members")
            report.runs.append(await fanout.run(target, args))
    return [report]


async def _idle(args: argparse.Namespace) -> list[Report]:
    async with _cim(args) as target:
        return [await idle.run(target, args)]


async def _reconnect(args: argparse.Namespace) -> list[Report]:
    if args.route:
        raise ValueError("reconnect kills a node: it needs a cluster of its own (no --route)")
    async with CimTarget(nodes=max(2, args.nodes), route_workers=args.route_workers) as target:
        return [await reconnect.run(target, args)]


_SCENARIOS: dict[str, Callable[[argparse.Namespace], Awaitable[list[Report]]]] = {
    "p2p": _p2p,
    "sweep": _sweep,
    "fanout": _fanout,
    "idle": _idle,
    "reconnect": _reconnect,
}


def _progress(text: str) -> None:
    print(f"cim bench: {text}", file=sys.stderr, flush=True)


def _raise_open_files() -> int:
    """Raise this process's open-files limit to its hard limit (the cluster it starts inherits it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def run_bench(args: argparse.Namespace) -> int:
    """The ``cim bench`` command: print each report's table (and ``--json``); 1 if anything was lost."""
    _raise_open_files()
    try:
        reports = run_async(_SCENARIOS[args.scenario](args))
    except (ValueError, RuntimeError, TimeoutError, OSError, HttpError) as exc:
        print(f"cim bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # everything it started was stopped on the way out
        print("cim bench: interrupted", file=sys.stderr)
        return 130
    for report in reports:
        print("\n".join(report.table()) + "\n")
    if args.json:
        write_json(Path(args.json), reports)
    with contextlib.suppress(BrokenPipeError):
        sys.stdout.flush()
    lost = any(run.figures.get("lost") for report in reports for run in report.runs)
    return 1 if lost else 0
