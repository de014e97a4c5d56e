"""Reading what the broker itself recorded: Zeebe's DebugLogExporter writes every record (incidents, job
failures with their retries and backoff, thrown errors, completed instances) as one JSON line into the
broker log of the test session. Tests assert on Zeebe's own state this way, not on worker internals."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.support.waiting import wait_until

RECORDS_LOG_ENV = "HF_TEST_ZEEBE_RECORDS_LOG"
_MARKER = "io.camunda.zeebe.broker.exporter.debug - "

Record = dict[str, Any]


class ZeebeRecords:
    def __init__(self, log_file: Path) -> None:
        self.log_file = log_file
        self._offset = 0
        self._records: list[Record] = []

    @classmethod
    def of_session(cls) -> ZeebeRecords:
        path = os.environ.get(RECORDS_LOG_ENV)
        if not path:
            raise RuntimeError(
                f"{RECORDS_LOG_ENV} is not set: Zeebe's records are only readable from a broker the test "
                "session started itself (unset ZEEBE_ADDRESS)"
            )
        return cls(Path(path))

    def _read_new(self) -> None:
        with self.log_file.open("rb") as log:
            log.seek(self._offset)
            data = log.read()
        complete = data.rfind(b"\n") + 1  # a line still being written is read next time
        self._offset += complete
        for line in data[:complete].decode("utf-8", errors="replace").splitlines():
            if line.startswith("{"):  # the development engine's records.jsonl: one record per line
                self._records.append(json.loads(line))
                continue
            _, marker, payload = line.partition(_MARKER)
            if marker and payload.startswith("{"):  # the exporter also logs plain lines such as "opened"
                self._records.append(json.loads(payload))

    def all(self) -> list[Record]:
        self._read_new()
        return list(self._records)

    def matching(self, value_type: str, intent: str, **value: Any) -> list[Record]:
        return [
            record
            for record in self.all()
            if record.get("valueType") == value_type
            and record.get("intent") == intent
            and record.get("recordType") == "EVENT"
            and all(record["value"].get(key) == wanted for key, wanted in value.items())
        ]

    def wait_for(
        self, value_type: str, intent: str, timeout: float = 30.0, count: int = 1, **value: Any
    ) -> list[Record]:
        def enough() -> list[Record]:
            found = self.matching(value_type, intent, **value)
            return found if len(found) >= count else []

        return wait_until(enough, timeout, f"{count} Zeebe {value_type} {intent} record(s) matching {value}")

    def incident(self, process_instance_key: int, timeout: float = 30.0) -> Record:
        """The incident Zeebe created for this instance (waits until there is one)."""
        return self.wait_for("INCIDENT", "CREATED", timeout, processInstanceKey=process_instance_key)[0]["value"]

    def job_failures(self, process_instance_key: int) -> list[Record]:
        return [r["value"] for r in self.matching("JOB", "FAILED", processInstanceKey=process_instance_key)]

    def completed(self, process_instance_key: int) -> bool:
        return bool(
            self.matching(
                "PROCESS_INSTANCE",
                "ELEMENT_COMPLETED",
                processInstanceKey=process_instance_key,
                bpmnElementType="PROCESS",
            )
        )
