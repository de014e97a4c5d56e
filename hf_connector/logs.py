"""Logging: plain text or one JSON object per line, always passed through the secret masker."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

from hf_connector.secrets import Masker

# Context fields the job handler attaches with `extra=`; the JSON formatter lifts them to the top.
CONTEXT_FIELDS = (
    "job_key",
    "process_instance_key",
    "bpmn_process_id",
    "element_id",
    "model",
    "status",
    "duration_ms",
    "outcome",
)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({name: getattr(record, name) for name in CONTEXT_FIELDS if hasattr(record, name)})
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        context = " ".join(f"{name}={getattr(record, name)}" for name in CONTEXT_FIELDS if hasattr(record, name))
        line = super().format(record)
        if not context:
            return line
        # The context belongs to the first line; a traceback (if any) follows it.
        first, newline, rest = line.partition("\n")
        return f"{first} [{context}]{newline}{rest}"


class MaskingFormatter(logging.Formatter):
    """Masks the finished line: message, arguments, context fields (a model may be an endpoint URL with a
    token), traceback and stack alike, whichever library logged the record. One pass over the line costs
    less than one per part; the masker knows each secret's JSON-escaped forms too, so JSON lines are
    masked as well as text ones."""

    def __init__(self, inner: logging.Formatter, masker: Masker) -> None:
        super().__init__()
        self.inner = inner
        self.masker = masker

    def format(self, record: logging.LogRecord) -> str:
        return self.masker.mask(self.inner.format(record))


class RepeatedWarnings(logging.Filter):
    """For a logger that repeats itself: lets the first record of a kind through, then at most one per
    interval, which tells how many were held back since the last one shown. A kind is a logger and a
    message template; the arguments (the error, a job key) may differ."""

    def __init__(self, interval_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval_seconds = interval_seconds
        self.clock = clock
        self._last_shown: dict[tuple[str, object], tuple[float, int]] = {}  # when, and how many held since

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.msg)
        now = self.clock()
        shown_at, held = self._last_shown.get(key, (None, 0))
        if shown_at is not None and now - shown_at < self.interval_seconds:
            self._last_shown[key] = (shown_at, held + 1)
            return False
        self._last_shown[key] = (now, 0)
        if shown_at is not None and held:
            record.msg = f"{record.getMessage()} ({held} more like this in the last {now - shown_at:.0f} s)"
            record.args = None
        return True


def configure_logging(level: str, fmt: str, masker: Masker) -> None:
    handler = logging.StreamHandler(sys.stderr)
    # On the handler, not a logger: records from every library pass through it.
    handler.setFormatter(MaskingFormatter(JsonFormatter() if fmt == "json" else TextFormatter(), masker))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    # Neither format shows where a record was logged from, nor thread or process: not collecting them
    # saves a stack walk and three lookups per record (the logging HOWTO's "Optimization" section).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root.setLevel(level)
    # Python warnings become log records too, so a JSON log stays one JSON object per line.
    logging.captureWarnings(True)
    # Third-party debug output is noise at best and, for pyzeebe, whole job payloads at worst.
    # httpx logs every request at INFO, which the per-job line already covers.
    for name, floor in (
        ("httpx", logging.WARNING),
        ("httpcore", logging.WARNING),
        ("grpc", logging.INFO),
        ("pyzeebe", logging.INFO),
    ):
        logging.getLogger(name).setLevel(max(logging.getLevelName(level), floor))
