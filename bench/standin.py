"""The Hugging Face stand-in in a process of its own, so that it competes with neither the load
generator nor the worker for a Python interpreter lock.

``python -m bench.standin LATENCY`` prints ``URL`` on its first line, serves until its standard input
closes or SIGTERM arrives, then prints one JSON line ``{"requests": N, "outcomes": {...}, "peak_in_flight": P}``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(REPO))
    from devkit.hf_standin import HfStandin

    latency = float(argv[0]) if argv else 0.1
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with HfStandin(latency=latency, record=False) as hf:
        print(hf.url, flush=True)
        threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
        while not done.wait(1.0):
            pass
        summary = {
            "requests": hf.request_count,
            "outcomes": {str(k): v for k, v in hf.outcomes.items()},
            "peak_in_flight": hf.peak_in_flight,
        }
    print(json.dumps(summary), flush=True)
    return 0


class StandinProcess:
    """Starts ``python -m bench.standin``; ``url`` once started, ``stop()`` returns its summary."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.process: subprocess.Popen[str] | None = None
        self.url = ""

    def start(self) -> StandinProcess:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.standin", str(self.latency)],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http://127.0.0.1:"):
            self.stop()
            raise RuntimeError(f"the Hugging Face stand-in did not start (said {self.url!r})")
        return self

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def stop(self) -> dict[str, Any]:
        process, self.process = self.process, None
        if process is None:
            return {}
        assert process.stdin is not None and process.stdout is not None
        try:
            out, _ = process.communicate(timeout=15)  # closes its standard input: the stand-in stops
        except subprocess.TimeoutExpired:
            process.kill()
            out, _ = process.communicate(timeout=5)
        for line in reversed(out.splitlines()):
            if line.startswith("{"):
                return dict(json.loads(line))
        return {}


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
