"""Reading what the engine itself recorded: the development engine appends every record (incidents, job
failures with their retries and backoff, thrown errors, completed instances) as one JSON line to
``records.jsonl`` in its data directory. Tests assert on the engine's own state this way, not on worker
internals.

Against another Camunda (``ZEEBE_ADDRESS``, ``ENGINE=camunda``) there are no records: created incidents and
completed instances fall back to what the REST API shows, and every other query skips the test with the reason.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from tests.support.waiting import wait_until

RECORDS_ENV = "HF_TEST_ENGINE_RECORDS"
REST_ADDRESS_ENV = "CAMUNDA_REST_ADDRESS"

Record = dict[str, Any]


class ZeebeRecords:
    def __init__(self, log_file: Path) -> None:
        self.log_file = log_file
        self._offset = 0
        self._records: list[Record] = []

    @classmethod
    def of_session(cls) -> ZeebeRecords:
        path = os.environ.get(RECORDS_ENV)
        if path:
            return cls(Path(path))
        rest_url = os.environ.get(REST_ADDRESS_ENV, "").strip()
        if rest_url:
            return GatewayRecords(rest_url)
        pytest.skip(
            "needs the records of the development engine the test session starts (or CAMUNDA_REST_ADDRESS "
            "for what the REST API shows); ZEEBE_ADDRESS points this session at another Camunda"
        )

    def _read_new(self) -> None:
        with self.log_file.open("rb") as log:
            log.seek(self._offset)
            data = log.read()
        complete = data.rfind(b"\n") + 1  # a line still being written is read next time
        self._offset += complete
        self._records.extend(json.loads(line) for line in data[:complete].splitlines() if line.strip())

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

        return wait_until(enough, timeout, f"{count} {value_type} {intent} record(s) matching {value}")

    def incident(self, process_instance_key: int, timeout: float = 30.0) -> Record:
        """The incident the engine created for this instance (waits until there is one)."""
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


class GatewayRecords(ZeebeRecords):
    """What a Camunda without our records shows through its REST API (8.8+): incidents, and whether an
    instance completed. Any other query skips the test; ``needed`` keeps the reason, so that the session
    plugin can skip a test whose own code caught that skip (``asyncio.gather(return_exceptions=True)``)."""

    needed: ClassVar[list[str]] = []

    def __init__(self, rest_url: str) -> None:
        super().__init__(Path(os.devnull))
        self.rest_url = rest_url.rstrip("/")

    def all(self) -> list[Record]:
        reason = (
            "needs the development engine's records (job failures, activations, thrown errors); this "
            f"session talks to another Camunda ({self.rest_url})"
        )
        GatewayRecords.needed.append(reason)
        pytest.skip(reason)

    def matching(self, value_type: str, intent: str, **value: Any) -> list[Record]:
        wanted = (value_type, intent, frozenset(value), value.get("bpmnElementType", "PROCESS"))
        if wanted[:3] == ("INCIDENT", "CREATED", frozenset({"processInstanceKey"})):
            return [self._record("INCIDENT", intent, i) for i in self._incidents(value["processInstanceKey"])]
        if wanted == ("PROCESS_INSTANCE", "ELEMENT_COMPLETED", frozenset(_COMPLETION), "PROCESS"):
            key = value["processInstanceKey"]
            answer = httpx.get(f"{self.rest_url}/v2/process-instances/{key}", timeout=10)
            done = answer.status_code == httpx.codes.OK and answer.json().get("state") == "COMPLETED"
            return [self._record("PROCESS_INSTANCE", intent, value)] if done else []
        return self.all()

    def _incidents(self, process_instance_key: int) -> list[Record]:
        answer = httpx.post(
            f"{self.rest_url}/v2/incidents/search",
            json={"filter": {"processInstanceKey": str(process_instance_key)}},
            timeout=10,
        )
        answer.raise_for_status()
        return [
            {
                "errorType": item.get("errorType"),
                "errorMessage": item.get("errorMessage"),
                "elementId": item.get("elementId"),
                "bpmnProcessId": item.get("processDefinitionId"),
                "processInstanceKey": int(item["processInstanceKey"]),
                "jobKey": int(item["jobKey"]) if item.get("jobKey") else -1,
            }
            for item in answer.json().get("items", [])
        ]

    @staticmethod
    def _record(value_type: str, intent: str, value: Record) -> Record:
        return {"recordType": "EVENT", "valueType": value_type, "intent": intent, "value": value}


_COMPLETION = {"processInstanceKey", "bpmnElementType"}
