"""CPU per process from /proc: a busy child's time counts under its parent's name unless named."""

from __future__ import annotations

import os
import subprocess
import sys

from cim_cli.bench.cpu import CpuWindow, rss_kib, sample

_BUSY = """
import time
end = time.process_time() + 0.3
while time.process_time() < end:
    pass
print("done", flush=True)
input()
"""


def test_a_child_counts_under_its_parent_unless_it_is_named_itself() -> None:
    child = subprocess.Popen([sys.executable, "-c", _BUSY], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdout is not None and child.stdout.readline() == b"done\n"
        as_part = sample({"me": os.getpid()})["me"]
        apart = sample({"me": os.getpid(), "child": child.pid})
        assert apart["child"] >= 0.25
        assert as_part - apart["me"] >= 0.25
    finally:
        child.communicate(b"\n", timeout=10)


def test_window_reports_the_cpu_used_between_start_and_stop() -> None:
    window = CpuWindow({"me": os.getpid()})
    window.start()
    end = sum(os.times()[:2]) + 0.05
    while sum(os.times()[:2]) < end:
        pass
    used = window.stop()
    assert used["me"] >= 0.04
    assert rss_kib(os.getpid()) > 1000
