"""One cim cluster for the in-process bench tests of this package (started once, stopped after)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from cim_cli.bench.target import CimTarget


@pytest_asyncio.fixture(scope="package", loop_scope="package")
async def cim() -> AsyncIterator[CimTarget]:
    """A ``cim bench`` cluster of two nodes, as the command starts it (no CIM_* from outside)."""
    with pytest.MonkeyPatch.context() as patch:
        for var in [v for v in os.environ if v.startswith("CIM_")]:
            patch.delenv(var)
        async with CimTarget(nodes=2) as target:
            yield target
