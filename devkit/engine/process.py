"""Running the engine as a subprocess: for test fixtures, `make run` and anything that must kill it."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from devkit.processes import die_with_parent

_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 30.0


class EngineProcess:
    def __init__(self, data_dir: Path, port: int, rest_port: int, extra_args: Sequence[str]) -> None:
        self.data_dir = data_dir
        self.port = port
        self.rest_port = rest_port
        self.extra_args = tuple(extra_args)
        self._process: subprocess.Popen[bytes] | None = None
        self.address = ""
        self.rest_url = ""

    @classmethod
    def start(cls, data_dir: Path, port: int = 0, rest_port: int = 0, extra_args: Sequence[str] = ()) -> EngineProcess:
        engine = cls(data_dir, port, rest_port, extra_args)
        engine._launch()
        return engine

    @property
    def records_path(self) -> Path:
        return self.data_dir / "records.jsonl"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "engine.log"

    @property
    def pid(self) -> int:
        assert self._process is not None, "the engine is not running"
        return self._process.pid

    def _launch(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "devkit.engine",
            "--port", str(self.port), "--rest-port", str(self.rest_port), "--data", str(self.data_dir),
            *self.extra_args,
        ]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")]))}
        # An engine whose starter dies (a killed test session, a crashed `make run`) goes with it; the kernel
        # ties that to the starting thread, so an engine restarted from another thread is left without it.
        in_main_thread = threading.current_thread() is threading.main_thread()
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=log,
                cwd=_ROOT,
                env=env,
                preexec_fn=die_with_parent if in_main_thread else None,
            )
        line = self._ready_line()
        fields = dict(part.split("=", 1) for part in line.split()[2:])
        self.address = fields["grpc"]
        self.rest_url = fields["rest"]
        # A restart reuses the ports, so clients and the records reader keep working.
        self.port = int(self.address.rsplit(":", 1)[1])
        self.rest_port = int(self.rest_url.rsplit(":", 1)[1])

    def _ready_line(self) -> str:
        assert self._process is not None and self._process.stdout is not None
        deadline = time.monotonic() + READY_TIMEOUT
        buffer = b""
        while b"\n" not in buffer:
            remaining = deadline - time.monotonic()
            readable, _, _ = select.select([self._process.stdout], [], [], max(0.0, remaining))
            chunk = os.read(self._process.stdout.fileno(), 4096) if readable else b""
            if not chunk:
                self._process.kill()
                self._process.wait()
                log = self.log_path.read_text(errors="replace")[-2000:]
                why = "did not get ready in time" if remaining <= 0 or not readable else "exited"
                raise RuntimeError(f"the development engine {why}; its log ({self.log_path}) ends:\n{log}")
            buffer += chunk
        return buffer.split(b"\n", 1)[0].decode()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it has not stopped within `timeout`."""
        if self._process is None:
            return
        self._process.send_signal(signal.SIGTERM)
        try:
            self._process.wait(timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._close()

    def kill(self) -> None:
        if self._process is None:
            return
        self._process.kill()
        self._process.wait()
        self._close()

    def _close(self) -> None:
        if self._process is not None and self._process.stdout is not None:
            self._process.stdout.close()
        self._process = None

    def restart(self, kill: bool = True) -> EngineProcess:
        """The same engine again (same ports, same data dir), after SIGKILL or a clean stop."""
        self.kill() if kill else self.stop()
        self._launch()
        return self

    def __enter__(self) -> EngineProcess:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
