"""``cim up`` as a user runs it: a subprocess, its printed lines, ``cim status``/``cim push``
against it with no key given, its children restarted when they exit, SIGINT, nothing left behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from pathlib import Path

import httpx

from cim_client import AdminClient, CimApiError, Client
from tests.harness import eventually, first_message

PASSWORD = "password123"
START_TIMEOUT_S = 45.0


def _parent(pid: int) -> int | None:
    """The parent of ``pid`` (from /proc), None once it is gone."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None


def _descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc)."""
    parents = {int(e.name): _parent(int(e.name)) for e in Path("/proc").iterdir() if e.name.isdigit()}
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _program(pid: int) -> str:
    """What ``pid`` runs: ``python -m MODULE`` or the program's name (its ``comm``)."""
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if args[1:2] == [b"-m"]:
            return f"python -m {args[2].decode()}"
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Up:
    """One ``python -m cim_cli up`` process and what it printed."""

    def __init__(self, data: Path, env: dict[str, str], *flags: str) -> None:
        self.data = data
        self.env = env
        self.flags = flags
        self.proc: asyncio.subprocess.Process | None = None
        self.lines: list[str] = []
        self.pids: set[int] = set()
        """Every pid it printed: the nodes' at start, then each restarted child's."""

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "cim_cli",
            "up",
            "--nodes",
            "2",
            "--route-port",
            "0",
            "--data",
            str(self.data),
            *self.flags,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
        )
        assert self.proc.stdout is not None
        async with asyncio.timeout(START_TIMEOUT_S):
            while not self.lines or self.lines[-1] != "ready":
                line = await self.proc.stdout.readline()
                assert line, f"cim up ended early: {await self._stderr()}"
                self.lines.append(line.decode().rstrip("\n"))
        self.pids |= set(self.nodes.values())

    async def report(self, timeout: float = 30.0) -> str:
        """The next line on its standard error (the pid of a restarted child is noted)."""
        assert self.proc is not None and self.proc.stderr is not None
        async with asyncio.timeout(timeout):
            line = (await self.proc.stderr.readline()).decode().rstrip("\n")
        restarted = re.fullmatch(r"cim up: \S+ restarted \(pid (\d+)\)", line)
        if restarted:
            self.pids.add(int(restarted.group(1)))
        return line

    async def _stderr(self) -> str:
        assert self.proc is not None and self.proc.stderr is not None
        return (await self.proc.stderr.read()).decode(errors="replace")

    @property
    def route_url(self) -> str:
        return re.fullmatch(r"route: (https?://\S+:\d+)", self.lines[0]).group(1)

    @property
    def api_key(self) -> str:
        return re.fullmatch(r"api key: (\S+)", self.lines[1]).group(1)

    @property
    def nodes(self) -> dict[str, int]:
        """Node id -> pid, from ``node ID: HOST:PORT pid PID``."""
        found = [
            re.fullmatch(r"node (node-\d+): 127\.0\.0\.1:\d+ pid (\d+)", line) for line in self.lines[2:-1]
        ]
        return {m.group(1): int(m.group(2)) for m in found if m}

    async def interrupt(self) -> tuple[int, str]:
        """SIGINT; the exit code and stderr."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(30):
            code = await self.proc.wait()
            return code, await self._stderr()

    async def kill(self) -> None:
        """Whatever happened, leave no process: SIGTERM (cim up stops its children), then
        SIGKILL for cim up and for whatever below it is left (its children have sessions of
        their own, so nothing else would reach them once cim up is gone)."""
        if self.proc is None or self.proc.returncode is not None:
            return
        below = _descendants(self.proc.pid)
        self.proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(30):
                await self.proc.wait()
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        for pid in below:
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


async def _cim(*args: str) -> tuple[int, str, str]:
    """Run ``cim ARGS`` with no ``CIM_*`` variable; its exit code, stdout and stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cim_cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(),
    )
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    return proc.returncode, out.decode(), err.decode()


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIM_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


async def test_up_prints_serves_and_stops_everything(tmp_path: Path) -> None:
    up = Up(tmp_path / "data", _env())
    try:
        await up.start()
        assert len(up.lines) == 5 and up.lines[-1] == "ready"
        assert set(up.nodes) == {"node-1", "node-2"}
        children = _descendants(up.proc.pid)
        assert set(up.nodes.values()) <= children and len(children) >= 5  # route, 2 nodes, nats, redis
        assert (tmp_path / "data" / "secret").stat().st_mode & 0o777 == 0o600
        assert (tmp_path / "data").stat().st_mode & 0o777 == 0o700
        assert (tmp_path / "data" / "api_key").read_text().strip() == up.api_key
        assert {p.name for p in (tmp_path / "data" / "logs").iterdir()} >= {
            "route.log",
            "node-1.log",
            "nats.log",
        }

        async with AdminClient(up.route_url, up.api_key) as admin:
            nodes = await admin.nodes()
            assert {n["id"] for n in nodes} == {"node-1", "node-2"}
            assert all(n["ws_url"].startswith("ws://127.0.0.1:") for n in nodes), nodes  # browsers too
        async with (
            Client(up.route_url, "alice", PASSWORD) as alice,
            Client(up.route_url, "bob", PASSWORD) as bob,
        ):
            await first_message(alice, bob, "over cim up")
            token = alice.token
            carol = Client(up.route_url, "carol", PASSWORD)
            await carol.register()
            await alice.send("carol", "kept across a restart")
            await carol.close()

        # With no key given, `cim status` and `cim push` read the one cim up keeps in --data.
        where = ("--route", up.route_url, "--data", str(up.data))
        code, out, err = await _cim("status", *where)
        assert code == 0, err
        assert [line.split()[0] for line in out.splitlines()[1:3]] == ["node-1", "node-2"]
        code, out, err = await _cim("push", *where, "--to", "carol", "hi")
        assert code == 0 and out.endswith("to 1 recipient(s)\n"), err
        assert (tmp_path / "data" / "api_key").stat().st_mode & 0o777 == 0o600

        code, stderr = await up.interrupt()
        assert code == 0, stderr
        await eventually(_none_alive(children), timeout=10, what="no child left")
    finally:
        await up.kill()

    # Same data folder again: the secret (so the old token), users and stored messages survive.
    again = Up(tmp_path / "data", _env())
    try:
        await again.start()
        async with httpx.AsyncClient() as http:
            me = await http.get(again.route_url + "/api/v1/me", headers={"Authorization": f"Bearer {token}"})
            assert me.status_code == 200 and me.json()["username"] == "alice"
        async with Client(again.route_url, "carol", PASSWORD) as carol:
            await carol.connect()
            assert [(await carol.next_message(10)).body for _ in range(2)] == ["kept across a restart", "hi"]
        children = _descendants(again.proc.pid)
        code, stderr = await again.interrupt()
        assert code == 0, stderr
        await eventually(_none_alive(children), timeout=10, what="no child left")
    finally:
        await again.kill()


async def test_up_tls_serves_every_link_over_tls_and_prints_its_ca(tmp_path: Path) -> None:
    up = Up(tmp_path / "data", _env(), "--tls")
    try:
        await up.start()
        ca = tmp_path / "data" / "tls" / "ca.pem"
        assert up.lines[2] == f"ca: {ca}" and len(up.lines) == 6
        assert up.route_url.startswith("https://127.0.0.1:")
        async with (
            Client(up.route_url, "alice", PASSWORD, tls_ca=str(ca)) as alice,
            Client(up.route_url, "bob", PASSWORD, tls_ca=str(ca)) as bob,
        ):
            for c in (alice, bob):
                await c.register()
                await c.connect()
                assert c.node is not None and c.node.tls
            sent = await alice.send("bob", "over cim up --tls")
            assert (await bob.next_message(10)).id == sent.id
        # `cim status` and `cim push` find the CA in the data folder, as they find the key.
        where = ("--route", up.route_url, "--data", str(up.data))
        code, out, err = await _cim("status", *where)
        assert code == 0 and "2 node(s)" in out, err
        code, out, err = await _cim("push", *where, "--to", "bob", "hi")
        assert code == 0, err
        # NATS speaks TLS too (its configuration names the certificate), on loopback only.
        nats_conf = (tmp_path / "data" / "nats.conf").read_text()
        assert '"cert_file"' in nats_conf and '"listen": "127.0.0.1:' in nats_conf
        code, stderr = await up.interrupt()
        assert code == 0, stderr
    finally:
        await up.kill()


def _none_alive(pids: set[int]):
    async def check() -> bool:
        return not any(_alive(p) for p in pids)

    return check


async def test_up_restarts_whatever_exits_and_still_stops_everything(tmp_path: Path) -> None:
    up = Up(tmp_path / "data", _env())
    try:
        await up.start()
        children = _descendants(up.proc.pid)
        async with AdminClient(up.route_url, up.api_key) as admin:
            before = {n["id"]: n for n in await admin.nodes()}

            async def back(node_id: str) -> dict | None:
                """The node's record once a new process of that id announced itself."""
                now = {n["id"]: n for n in await admin.nodes()}.get(node_id)
                fresh = now and now["state"] == "up" and now["started_at"] > before[node_id]["started_at"]
                return now if fresh else None

            # SIGKILL: reported, restarted after 1 s with the same id, back in GET /nodes within 5 s.
            killed = up.nodes["node-2"]
            os.kill(killed, signal.SIGKILL)
            assert await up.report() == (
                f"cim up: node-2 (pid {killed}) exited (code -9); restarting in 1 s "
                f"(log: {up.data / 'logs' / 'node-2.log'})"
            )
            await eventually(lambda: back("node-2"), timeout=5, what="node-2 back")
            assert re.fullmatch(r"cim up: node-2 restarted \(pid \d+\)", await up.report())
            assert _alive(up.nodes["node-1"]) and killed not in _descendants(up.proc.pid)

            # Drained: the node exits 0 once empty, and a fresh one takes its place.
            await admin.drain("node-1")
            assert re.fullmatch(
                rf"cim up: node-1 \(pid {up.nodes['node-1']}\) exited \(code 0\); restarting in 1 s .*",
                await up.report(timeout=20),
            )
            await eventually(lambda: back("node-1"), timeout=10, what="node-1 back")
            assert re.fullmatch(r"cim up: node-1 restarted \(pid \d+\)", await up.report())
            assert {n["id"] for n in await admin.nodes()} == {"node-1", "node-2"}

        # The route, NATS and Redis likewise, on the same ports with the same data.
        async with Client(up.route_url, "dora", PASSWORD) as dora:
            await dora.register()
        # Its own children only: a route with workers has more `python -m cim_route` below it.
        servers = {_program(pid): pid for pid in _descendants(up.proc.pid) if _parent(pid) == up.proc.pid}
        for pid in (servers["nats-server"], servers["redis-server"], servers["python -m cim_route"]):
            os.kill(pid, signal.SIGKILL)
        reports = [await up.report() for _ in range(6)]
        for name in ("route", "nats", "redis"):
            assert any(r.startswith(f"cim up: {name} (pid ") and "(code -9)" in r for r in reports), reports
            assert any(re.fullmatch(rf"cim up: {name} restarted \(pid \d+\)", r) for r in reports), reports
        async with Client(up.route_url, "dora", PASSWORD) as dora:

            async def logs_in() -> bool:
                """True once the login works; 503 or no answer while the cluster recovers."""
                try:
                    await dora.login()
                except httpx.TransportError:
                    return False
                except CimApiError as exc:
                    if exc.status != 503:
                        raise
                    return False
                return True

            await eventually(logs_in, timeout=15, what="dora logs in again (her user survived)")

        children |= _descendants(up.proc.pid)
        assert len(up.pids) == 7 and up.pids <= children
        code, stderr = await up.interrupt()
        assert code == 0, stderr
        await eventually(_none_alive(children), timeout=10, what="no child left")
    finally:
        await up.kill()


async def test_up_ha_refuses_a_given_nats_or_redis_url(tmp_path: Path) -> None:
    env = {**_env(), "CIM_REDIS_URL": "redis://cim:secret@127.0.0.1:1/0"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cim_cli",
        "up",
        "--ha",
        "--data",
        str(tmp_path / "data"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    assert proc.returncode == 2 and out == b""
    assert err.decode() == "cim up: --ha starts its own NATS and Redis clusters: unset CIM_REDIS_URL\n"
    assert not (tmp_path / "data").exists()
