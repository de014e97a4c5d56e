"""Running the real worker (`python -m hf_connector run`) as a subprocess for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Connector:
    """One worker process; its log is kept so tests can scan it (e.g. for secret values)."""

    def __init__(
        self,
        *,
        zeebe_address: str,
        hf_url: str,
        job_type: str,
        log_path: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.job_type = job_type
        self.log_path = log_path
        self.http_port = free_port()
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("SECRET_", "HF_", "CAMUNDA_"))},
            "ZEEBE_ADDRESS": zeebe_address,
            "HF_INFERENCE_ENDPOINT": hf_url,
            "HF_CONNECTOR_JOB_TYPE": job_type,
            "HF_CONNECTOR_HTTP_HOST": "127.0.0.1",
            "HF_CONNECTOR_HTTP_PORT": str(self.http_port),
            "HF_CONNECTOR_SECRETS_DIR": "",
            "HF_CONNECTOR_LOG_LEVEL": "DEBUG",
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout: float = 60.0) -> Connector:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hf_connector", "run"],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.wait_ready(ready_timeout)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def health(self, kind: str = "ready") -> tuple[int, dict[str, Any]]:
        status, body = self.get(f"/health/{kind}")
        return status, json.loads(body)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._raise_if_exited()
            try:
                if self.health("ready")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"the worker was not ready within {timeout}s:\n{self.log_tail()}")

    def _raise_if_exited(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"the worker exited with {self.process.returncode}:\n{self.log_tail()}")

    def metric(self, name: str, labels: Mapping[str, str] | None = None) -> float:
        """The value of one Prometheus sample from /metrics (0 when absent)."""
        wanted = ",".join(f'{k}="{v}"' for k, v in sorted((labels or {}).items()))
        _, text = self.get("/metrics")
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            sample, _, value = line.rpartition(" ")
            sample_name, _, label_text = sample.partition("{")
            if sample_name == name and ",".join(sorted(label_text.rstrip("}").split(","))) == wanted:
                return float(value)
        return 0.0

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def signal(self, sig: signal.Signals) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)

    def wait_exit(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self, timeout: float = 40.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait(10)
