"""The figures of docs/operations.md for WebSocket clients against TCP ones, on one node.

    python -m tests.node.ws_figures memory 10000     # RSS delta / idle logged-in connections
    python -m tests.node.ws_figures receive 20000    # node CPU per delivered live message

Not a test (pytest does not collect it). It starts its own nats-server, redis-server and one
``python -m cim_node`` per transport, and raw clients (no SDK) in this process: ``tcp``
(length-prefixed frames), ``binary`` and ``json`` (WebSocket messages). Run it on a quiet
machine; only ratios within one run mean much.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import msgpack
import nats

from cim_cli.ops.services import child_env, free_port, nats_service, redis_service, spawn_module
from shared import bus, tokens
from shared.protocol import FrameDecoder, encode

SECRET = "figures-" + "x" * 32
KINDS = ("tcp", "binary", "json")


@dataclass
class Node:
    proc: subprocess.Popen
    port: int
    ws_port: int
    node_id: str

    def rss_kib(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))

    def cpu_s(self) -> float:
        with open(f"/proc/{self.proc.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@asynccontextmanager
async def servers(tmp: Path) -> AsyncIterator[tuple[str, str]]:
    infra = [
        nats_service(tmp, log_path=tmp / "nats.log"),
        redis_service(tmp, log_path=tmp / "redis.log", aof=False),
    ]
    for service in infra:
        service.spawn()
    await asyncio.sleep(1.5)
    try:
        yield infra[0].url, infra[1].url
    finally:
        for service in infra:
            service.stop()


@asynccontextmanager
async def node(tmp: Path, nats_url: str, redis_url: str, node_id: str) -> AsyncIterator[Node]:
    port, ws_port = free_port(), free_port()
    env = child_env(
        nats_url=nats_url,
        redis_url=redis_url,
        secret=SECRET,
        node_id=node_id,
        node_port=port,
        node_ws_port=ws_port,
        redis_prefix=f"{node_id}:",
        log_level="warning",
        heartbeat_s=3600,
    )
    proc = spawn_module("cim_node", env, tmp / f"{node_id}.log")
    try:
        for _ in range(100):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)
        yield Node(proc, port, ws_port, node_id)
    finally:
        proc.kill()  # not SIGTERM: draining thousands of clients takes a while
        proc.wait(20)


def _ws_frame(payload: bytes, text: bool) -> bytes:
    """A client's frame: masked (with a zero key, which leaves the payload as it is)."""
    size = len(payload)
    length = bytes([0x80 | size]) if size < 126 else bytes([0x80 | 126]) + struct.pack(">H", size)
    return bytes([0x81 if text else 0x82]) + length + b"\0\0\0\0" + payload


async def login(node: Node, kind: str, user: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A logged-in raw client of ``kind``; the welcome (and the 101) read."""
    frame = {"t": "login", "token": tokens.issue(SECRET, user, 3600)[0]}
    if kind == "tcp":
        reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
        writer.write(encode(frame))
    else:
        reader, writer = await asyncio.open_connection("127.0.0.1", node.ws_port)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        await reader.readuntil(b"\r\n\r\n")
        text = kind == "json"
        writer.write(_ws_frame(json.dumps(frame).encode() if text else msgpack.packb(frame), text))
    await reader.read(4096)
    return reader, writer


async def memory(count: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with servers(Path(tmp)) as (nats_url, redis_url):
            for kind in KINDS:
                async with node(Path(tmp), nats_url, redis_url, f"mem-{kind}") as n:
                    warm = [await login(n, kind, f"w{i}") for i in range(200)]  # allocator, code paths
                    await asyncio.sleep(1.0)
                    before = n.rss_kib()
                    conns = []
                    for start in range(0, count, 500):
                        batch = range(start, min(count, start + 500))
                        conns += await asyncio.gather(*(login(n, kind, f"u{i}") for i in batch))
                    await asyncio.sleep(2.0)
                    per = (n.rss_kib() - before) * 1024 / count
                    print(f"{kind:6s} {count} idle logins: {per:6.0f} bytes each", flush=True)
                    for _, writer in conns + warm:
                        writer.close()


async def receive(count: int) -> None:
    frames = [
        {
            "t": "msg",
            "id": f"m{i}",
            "seq": i,
            "kind": "p2p",
            "from": "z",
            "to": "",
            "body": "hello " * 16,
            "ts": 1,
        }
        for i in range(1, count + 1)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        async with (
            servers(Path(tmp)) as (nats_url, redis_url),
            node(Path(tmp), nats_url, redis_url, "recv") as n,
        ):
            nc = await nats.connect(nats_url)
            try:
                for kind in KINDS * 2:
                    user = f"r-{kind}-{time.monotonic_ns()}"
                    reader, writer = await login(n, kind, user)
                    mine = [{**f, "to": user} for f in frames]
                    cpu, start = n.cpu_s(), time.monotonic()
                    reading = asyncio.ensure_future(_drain(reader, kind, count))
                    for i in range(0, count, 100):
                        await nc.publish(bus.node_subject(n.node_id), bus.msgs(mine[i : i + 100]))
                    await nc.flush()
                    await asyncio.wait_for(reading, 120)
                    took, used = time.monotonic() - start, n.cpu_s() - cpu
                    print(
                        f"{kind:6s} {count} messages: node CPU {1e6 * used / count:5.1f} us each, "
                        f"{count / took:8.0f}/s",
                        flush=True,
                    )
                    writer.close()
            finally:
                await nc.close()


async def _drain(reader: asyncio.StreamReader, kind: str, count: int) -> None:
    """Read until ``count`` messages came, in big reads (a slow reader would be cut off)."""
    if kind == "tcp":
        decoder, got = FrameDecoder(1 << 24), 0
        while got < count:
            data = await reader.read(1 << 20)
            if not data:
                raise EOFError(f"closed after {got} messages (cut off as a slow reader? try fewer)")
            got += sum(1 for f in decoder.feed(data) if f["t"] == "msg")
        return
    buf, at, got = b"", 0, 0
    while got < count:
        data = await reader.read(1 << 20)
        if not data:
            raise EOFError(f"closed after {got} messages (cut off as a slow reader? try fewer)")
        buf, at = buf[at:] + data, 0
        while len(buf) - at >= 2:  # whole server frames: header, then the payload
            size, head = buf[at + 1] & 0x7F, 2
            if size == 126:
                if len(buf) - at < 4:
                    break
                (size,), head = struct.unpack_from(">H", buf, at + 2), 4
            if len(buf) - at < head + size:
                break
            at += head + size
            got += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("figure", choices=("memory", "receive"))
    parser.add_argument("count", type=int)
    args = parser.parse_args()
    asyncio.run(memory(args.count) if args.figure == "memory" else receive(args.count))


if __name__ == "__main__":
    sys.exit(main())
