"""The operator's HTTP endpoints: `/health/live`, `/health/ready` and `/metrics` (Prometheus).

Served from a thread, so a scrape or a probe never competes with job handling for the event loop,
and liveness still answers (with the truth) when that loop is stuck.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from prometheus_client.exposition import choose_encoder

from hf_connector.metrics import REGISTRY


@dataclass
class Health:
    """Written by the worker's event loop (Zeebe monitor, heartbeat, pyzeebe's task), read by the probes.

    Ready: pyzeebe's worker task is alive and Zeebe's topology answered on the last try.
    Live: Zeebe answered within the grace period (counted from the start until the first answer), and
    the event loop's heartbeat is no older than the grace period.
    """

    liveness_grace_seconds: float
    started_at: float = field(default_factory=time.monotonic)
    polling: bool = False
    zeebe_reachable: bool = False
    last_zeebe_contact: float | None = None
    last_heartbeat: float = field(default_factory=time.monotonic)
    detail: str = "starting"

    def beat(self) -> None:
        self.last_heartbeat = time.monotonic()

    def zeebe_seen(self) -> None:
        now = time.monotonic()
        self.zeebe_reachable, self.last_zeebe_contact, self.last_heartbeat = True, now, now
        self.detail = "ok"

    def zeebe_lost(self, reason: str) -> None:
        self.zeebe_reachable, self.last_heartbeat = False, time.monotonic()
        self.detail = reason

    def ready(self) -> tuple[bool, dict[str, Any]]:
        ok = self.polling and self.zeebe_reachable
        return ok, {"status": "UP" if ok else "DOWN", "polling": self.polling, "zeebe": self.detail}

    def live(self) -> tuple[bool, dict[str, Any]]:
        """Down when the worker cannot recover: Zeebe unreachable, or the event loop stuck, too long."""
        now = time.monotonic()
        last_contact = self.last_zeebe_contact if self.last_zeebe_contact is not None else self.started_at
        zeebe_ok = now - last_contact < self.liveness_grace_seconds
        loop_ok = now - self.last_heartbeat < self.liveness_grace_seconds
        ok = zeebe_ok and loop_ok
        return ok, {
            "status": "UP" if ok else "DOWN",
            "secondsSinceZeebeContact": round(now - last_contact, 1),
            "eventLoopResponsive": loop_ok,
        }


class OpsServer:
    def __init__(self, health: Health, host: str, port: int) -> None:
        self.health = health
        self._server = ThreadingHTTPServer((host, port), _handler_for(health))
        self._server.daemon_threads = True
        # A short poll interval: stop() waits for it, and stop() is the last step of a shutdown.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, name="ops-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler_for(health: Health) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = urlsplit(self.path).path.rstrip("/") or "/"
            if path == "/metrics":
                # Prometheus text format, or OpenMetrics when the scraper asks for it.
                encoder, content_type = choose_encoder(self.headers.get("accept", ""))
                self._send(200, encoder(REGISTRY), content_type)
            elif path in ("/health/live", "/health/ready", "/health"):
                ok, body = health.live() if path == "/health/live" else health.ready()
                self._send(200 if ok else 503, json.dumps(body).encode(), "application/json")
            else:
                self._send(404, b'{"error":"not found"}', "application/json")

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # probes every few seconds would drown the job logs

    return Handler
