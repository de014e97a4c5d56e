"""The record log: every state change as one JSON line, with the field names and intents of Zeebe's
exported records, so tests and people read the engine's history the way they read a real broker's."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import IO, Any

TENANT = "<default>"


def now_ms() -> int:
    return int(time.time() * 1000)


class RecordLog:
    def __init__(self, path: Path | None, position: int = 0) -> None:
        """`path` None keeps the records in `self.kept` (memory mode); otherwise they go to that file."""
        self.position = position
        self.kept: list[dict[str, Any]] = []
        self._file: IO[str] | None = None if path is None else path.open("a", encoding="utf-8")
        self._pending: list[str] = []

    def append(self, value_type: str, intent: str, key: int, value: dict[str, Any]) -> None:
        self.position += 1
        record = {
            "position": self.position,
            "key": key,
            "timestamp": now_ms(),
            "recordType": "EVENT",
            "valueType": value_type,
            "intent": intent,
            "partitionId": 1,
            "value": value,
        }
        if self._file is None:
            self.kept.append(record)
        else:
            self._pending.append(json.dumps(record, separators=(",", ":")))

    def flush(self) -> None:
        if self._file is not None and self._pending:
            self._pending.append("")
            self._file.write("\n".join(self._pending))
            self._file.flush()
            self._pending = []

    def close(self) -> None:
        self.flush()
        if self._file is not None:
            self._file.close()
