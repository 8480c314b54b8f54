"""Reading a request body in ASGI up to a limit, and giving what was read to the next app."""

from __future__ import annotations

from starlette.types import Message, Receive

__all__ = ["read_body", "replay"]


async def read_body(receive: Receive, limit: int) -> tuple[list[bytes], bool]:
    """The request body's chunks up to about ``limit`` bytes; True if there is more (or the
    client left: the next app sees that when it reads on)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return chunks, True
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return chunks, False
        if size > limit:
            return chunks, True


def replay(raw: bytes, more: bool, receive: Receive) -> Receive:
    """A ``receive`` that gives what was read already, then the rest from ``receive``."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": raw, "more_body": more}

    return replayed
