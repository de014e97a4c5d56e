"""The engine's state objects and their JSON rows."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Job states, with Zeebe's names (FAILED covers both a retry backoff and no retries left).
ACTIVATABLE = "ACTIVATABLE"
ACTIVATED = "ACTIVATED"
FAILED = "FAILED"
ERROR_THROWN = "ERROR_THROWN"


@dataclass
class Job:
    key: int
    job_type: str
    instance_key: int
    element_instance_key: int
    element_id: str
    bpmn_process_id: str
    process_definition_key: int
    version: int
    retries: int
    custom_headers: dict[str, str]
    state: str = ACTIVATABLE
    worker: str = ""
    deadline: int = -1  # epoch ms, while ACTIVATED
    recur_at: int = -1  # epoch ms, while FAILED with a backoff
    retry_backoff: int = 0
    error_message: str = ""
    error_code: str = ""

    def row(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Token:
    """An element instance that waits: a service task (its job, its local variables) or an element whose
    step raised an incident and runs again when the incident is resolved."""

    element_id: str
    local: dict[str, Any] = field(default_factory=dict)
    job_key: int = -1
    # the variables the task's job completed with, kept while its output mappings wait on an incident
    completion: dict[str, Any] | None = None


@dataclass
class Instance:
    key: int
    process_key: int
    bpmn_process_id: str
    version: int
    variables: dict[str, Any] = field(default_factory=dict)
    tokens: dict[int, Token] = field(default_factory=dict)
    state: str = "ACTIVE"

    def row(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "process_key": self.process_key,
            "bpmn_process_id": self.bpmn_process_id,
            "version": self.version,
            "variables": dict(self.variables),
            "tokens": {str(k): asdict(t) for k, t in self.tokens.items()},
            "state": self.state,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Instance:
        tokens = {int(k): Token(**t) for k, t in row.pop("tokens").items()}
        return cls(**row, tokens=tokens)


@dataclass
class Incident:
    key: int
    instance_key: int
    element_instance_key: int
    element_id: str
    bpmn_process_id: str
    process_definition_key: int
    error_type: str
    error_message: str
    creation_time: int
    job_key: int = -1
    state: str = "ACTIVE"

    def row(self) -> dict[str, Any]:
        return asdict(self)
