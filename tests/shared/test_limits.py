"""``raise_open_files``: the soft open-files limit goes up to the hard one."""

from __future__ import annotations

import resource
from collections.abc import Iterator

import pytest

from shared.limits import raise_open_files


@pytest.fixture
def lowered() -> Iterator[int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))
    try:
        yield hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_soft_limit_is_raised_to_the_hard_limit(lowered: int) -> None:
    assert raise_open_files() == lowered
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (lowered, lowered)


def test_already_at_the_hard_limit_is_left_alone(lowered: int) -> None:
    raise_open_files()
    assert raise_open_files() == lowered
