"""The benchmark tells a live process from one that has exited, so a dead engine stops a run with a clear error."""

from __future__ import annotations

import os
import subprocess
import sys

from bench.procstat import is_running
from tests.support.waiting import wait_until


def test_a_running_process_is_running() -> None:
    assert is_running(os.getpid())


def test_an_exited_child_not_yet_reaped_is_not_running() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        wait_until(lambda: not is_running(child.pid), timeout=10, what="the child to exit")
    finally:
        child.wait()


def test_a_process_that_is_gone_is_not_running() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()

    assert not is_running(child.pid)
