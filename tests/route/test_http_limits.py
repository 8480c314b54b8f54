"""The route's connection limits on a real ``python -m cim_route`` (uvicorn + httptools):
body cap before reading (413), header cap (431), request and idle deadlines (slowloris)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from cim_cli.ops.services import Service, free_port
from tests.route.conftest import route_env, start_route_process, stop_process

REQUEST_S = 1.0
IDLE_S = 2.0
MIB = 1 << 20


@pytest.fixture(scope="module")
def route_port(
    nats_service: Service, redis_service: Service, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[int, int]]:
    """A route process with short deadlines: its port and pid."""
    port = free_port()
    env = route_env(
        nats_service,
        redis_service,
        port,
        redis_prefix="limits:",
        http_request_s=REQUEST_S,
        http_idle_s=IDLE_S,
        log_level="warning",
    )
    proc = start_route_process(env, tmp_path_factory.mktemp("route") / "route.log", port)
    try:
        yield port, proc.pid
    finally:
        stop_process(proc)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def answer(reader: asyncio.StreamReader) -> tuple[int, dict]:
    """Status and JSON body of one HTTP answer (read to the close)."""
    raw = await asyncio.wait_for(reader.read(), 10)
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), orjson.loads(body)


async def send_all(writer: asyncio.StreamWriter, data: bytes, total: int) -> int:
    """Write ``data`` until ``total`` bytes are out or the server closes; how many went out."""
    sent = 0
    try:
        while sent < total:
            writer.write(data)
            await asyncio.wait_for(writer.drain(), 5)
            sent += len(data)
    except (ConnectionError, TimeoutError):
        pass
    return sent


async def closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(), seconds) == b""
    except ConnectionError:
        return True


async def test_48_mib_body_is_refused_before_it_is_read(route_port: tuple[int, int]) -> None:
    port, pid = route_port
    before = rss_kib(pid)
    for framing in (b"content-length: %d\r\n" % (48 * MIB), b"transfer-encoding: chunked\r\n"):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /api/v1/login HTTP/1.1\r\nhost: r\r\ncontent-type: application/json\r\n"
            + framing
            + b"\r\n"
        )
        chunk = b"x" * MIB
        if framing.startswith(b"transfer"):
            chunk = b"%x\r\n%s\r\n" % (MIB, chunk)
        await send_all(writer, chunk, 48 * MIB)  # a client that uploads it all before reading
        status, body = await answer(reader)
        writer.close()
        assert status == 413 and body["error"] == "too_large"
    assert rss_kib(pid) - before < 10 * 1024


async def test_a_big_body_with_httpx(route_port: tuple[int, int]) -> None:
    port, pid = route_port
    before = rss_kib(pid)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as http:
        for path in ("/api/v1/login", "/api/v1/messages"):  # the lean send path too
            resp = await http.post(path, content=b"{" + b" " * (48 * MIB) + b"}")
            assert resp.status_code == 413 and resp.json()["error"] == "too_large"
        ok = await http.post("/api/v1/login", content=b"{" + b" " * 60_000 + b"}")  # within the cap
        assert ok.status_code == 422
    assert rss_kib(pid) - before < 10 * 1024


async def test_header_cap(route_port: tuple[int, int]) -> None:
    port, _ = route_port
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET /healthz HTTP/1.1\r\nhost: r\r\nx-pad: " + b"a" * (15 * 1024) + b"\r\nconnection: close\r\n\r\n"
    )
    raw = await asyncio.wait_for(reader.read(), 10)
    assert raw.startswith(b"HTTP/1.1 200")
    writer.close()
    for head in (
        b"x-big: " + b"b" * (4 * MIB),
        b"".join(b"x-h%d: %s\r\n" % (i, b"c" * 100) for i in range(200)),
    ):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await send_all(writer, b"GET /healthz HTTP/1.1\r\nhost: r\r\n" + head + b"\r\n\r\n", 1)
        status, body = await answer(reader)
        writer.close()
        assert status == 431 and body["error"] == "too_large"


async def test_slowloris_connections_are_closed(route_port: tuple[int, int]) -> None:
    port, _ = route_port
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(50)]
    start = time.monotonic()
    for _, writer in conns:
        writer.write(b"GET /healthz HTTP/1.1\r\nhost: r\r\n")

    async def drip(writer: asyncio.StreamWriter) -> None:
        try:
            for i in range(30):
                writer.write(b"x-%d: y\r\n" % i)
                await writer.drain()
                await asyncio.sleep(0.2)
        except ConnectionError:
            pass

    drips = [asyncio.create_task(drip(w)) for _, w in conns]
    try:
        closed = await asyncio.gather(*(closed_within(r, REQUEST_S + 3) for r, _ in conns))
    finally:
        for task in drips:
            task.cancel()
        await asyncio.gather(*drips, return_exceptions=True)
    assert all(closed) and time.monotonic() - start < REQUEST_S + 3
    for _, writer in conns:
        writer.close()


async def test_a_silent_connection_is_closed_and_a_prompt_one_served(route_port: tuple[int, int]) -> None:
    port, _ = route_port
    silent_r, silent_w = await asyncio.open_connection("127.0.0.1", port)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for _ in range(2):  # keep-alive: two requests on one connection, each in time
        writer.write(b"GET /healthz HTTP/1.1\r\nhost: r\r\n\r\n")
        line = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert line.startswith(b"HTTP/1.1 200")
        length = int(line.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
    start = time.monotonic()
    assert await closed_within(silent_r, IDLE_S + 3)
    assert time.monotonic() - start < IDLE_S + 3
    assert await closed_within(reader, IDLE_S + 3)  # idle after its answers: closed too
    silent_w.close()
    writer.close()
