"""The restart back-off of ``cim up``'s supervisor (the restarts themselves: test_launcher.py)."""

from __future__ import annotations

from cim_cli.ops.supervisor import Backoff


def test_backoff_doubles_to_30s_and_starts_over_after_60s_up() -> None:
    backoff = Backoff()
    assert [backoff.delay(uptime=0.5) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.delay(uptime=59.0) == 30
    assert backoff.delay(uptime=60.0) == 1
    assert backoff.delay(uptime=3.0) == 2
