"""Fixtures of the SDK tests: a fake node and a mock route pointing at it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.client.fakes import FakeNode, FakeRoute


@pytest.fixture
async def node() -> AsyncIterator[FakeNode]:
    fake = FakeNode()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def route(node: FakeNode) -> AsyncIterator[FakeRoute]:
    fake = FakeRoute(node)
    yield fake
    await fake.http.aclose()
