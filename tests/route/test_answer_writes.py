"""The route's transport wrapper: the writes of one loop turn go to the socket as one write,
a close still sends what was queued first, and a large answer is not held back."""

from __future__ import annotations

import asyncio
from typing import Any

from cim_route.limits import COALESCE_MAX, _LingeringTransport


class FakeTransport:
    """Records what the wrapper hands to the socket, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append(("write", data))

    def write_eof(self) -> None:
        self.calls.append(("eof", None))

    def can_write_eof(self) -> bool:
        return True

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True
        self.calls.append(("close", None))

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def wrapped() -> tuple[_LingeringTransport, FakeTransport]:
    raw = FakeTransport()
    return _LingeringTransport(raw, asyncio.get_running_loop()), raw  # type: ignore[arg-type]


async def test_head_and_body_of_an_answer_are_one_write() -> None:
    transport, raw = wrapped()
    transport.write(b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n")
    transport.write(b"{}")
    assert raw.calls == [] and transport.get_write_buffer_size() == 46
    await asyncio.sleep(0)
    assert raw.calls == [("write", b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}")]
    assert transport.get_write_buffer_size() == 0


async def test_a_close_sends_the_queued_answer_before_the_end_of_stream() -> None:
    transport, raw = wrapped()
    transport.write(b"answer")
    transport.close()
    assert raw.calls == [("write", b"answer"), ("eof", None)] and transport.is_closing()
    await asyncio.sleep(0)
    assert raw.calls == [("write", b"answer"), ("eof", None)]


async def test_a_large_answer_goes_out_at_once() -> None:
    transport, raw = wrapped()
    transport.write(b"h")
    transport.write(b"x" * COALESCE_MAX)
    assert raw.calls == [("write", b"h" + b"x" * COALESCE_MAX)]


async def test_nothing_is_written_to_a_closed_socket() -> None:
    transport, raw = wrapped()
    transport.write(b"late")
    raw.closing = True
    await asyncio.sleep(0)
    assert raw.calls == []
