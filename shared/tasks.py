"""Small asyncio helpers every cim process uses."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

__all__ = ["first_done"]


async def first_done(*aws: Awaitable[Any], timeout: float | None = None) -> asyncio.Future[Any] | None:
    """Wait until the first of ``aws`` finishes, then cancel the others and await them.

    Returns the one that finished first (a task or future: read its ``result()`` or
    ``exception()``), or None when ``timeout`` passed first (then all were cancelled).
    Whatever happens, including the caller's own cancellation, none of them is left
    running when this returns.
    """
    futures = [asyncio.ensure_future(aw) for aw in aws]
    try:
        done, _ = await asyncio.wait(futures, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for fut in futures:
            fut.cancel()
        await asyncio.gather(*futures, return_exceptions=True)
    return next((fut for fut in futures if fut in done), None)
