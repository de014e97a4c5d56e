"""Child processes of development tools that must not outlive the tool that started them."""

from __future__ import annotations

import signal
import sys


def die_with_parent() -> None:
    """Linux: SIGTERM this (child) process when the process that started it dies without stopping it.

    Meant as ``preexec_fn`` of ``subprocess.Popen``. The kernel ties this to the starting *thread*, so callers
    pass it only when they start the child from the main thread.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL(None).prctl(pr_set_pdeathsig, signal.SIGTERM)
