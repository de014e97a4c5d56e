"""Logging: plain text or one JSON object per line, always passed through the secret masker."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

from worker.secrets import Masker, MaskingFilter

# Context fields the job handler attaches with `extra=`; the JSON formatter lifts them to the top.
CONTEXT_FIELDS = ("job_key", "process_instance_key", "element_id", "model", "status", "duration_ms", "outcome")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({name: getattr(record, name) for name in CONTEXT_FIELDS if hasattr(record, name)})
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        context = " ".join(f"{name}={getattr(record, name)}" for name in CONTEXT_FIELDS if hasattr(record, name))
        line = super().format(record)
        return f"{line} [{context}]" if context else line


def configure_logging(level: str, fmt: str, masker: Masker) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    # On the handler, not a logger: records from every library pass through it.
    handler.addFilter(MaskingFilter(masker))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Third-party debug output is noise at best and, for pyzeebe, whole job payloads at worst.
    # httpx logs every request at INFO, which the per-job line already covers.
    for name, floor in (
        ("httpx", logging.WARNING),
        ("httpcore", logging.WARNING),
        ("grpc", logging.INFO),
        ("pyzeebe", logging.INFO),
    ):
        logging.getLogger(name).setLevel(max(logging.getLevelName(level), floor))
