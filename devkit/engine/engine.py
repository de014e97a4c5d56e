"""The engine's commands and how a process instance moves: all synchronous, each command changing the
in-memory state and the store's rows in one go (the caller awaits `store.durable()` before answering).

Waiting happens elsewhere: jobs wait for workers (devkit.engine.dispatch), timers are the event loop's
(`call_at`, a heap), and a CreateProcessInstanceWithResult waits on a future completed here.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from devkit.engine import bpmn
from devkit.engine.records import TENANT, RecordLog, now_ms
from devkit.engine.state import ACTIVATABLE, ACTIVATED, ERROR_THROWN, FAILED, Incident, Instance, Job, Token
from devkit.engine.store import Store

KEY_BASE = 1 << 51  # partition 1's keys, as Zeebe numbers them
_META_KEY, _META_POSITION = 1, 2


class EngineError(Exception):
    """A command the engine rejects; `code` is the gRPC status name it answers with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def rejected(code: str, command: str, message: str) -> EngineError:
    """Zeebe's gateway wording for a rejected command."""
    return EngineError(code, f"Command '{command}' rejected with code '{_REJECTION[code]}': {message}")


_REJECTION = {"NOT_FOUND": "NOT_FOUND", "FAILED_PRECONDITION": "INVALID_STATE", "INVALID_ARGUMENT": "INVALID_ARGUMENT"}


@dataclass
class Deployed:
    key: int
    bpmn_process_id: str
    version: int
    resource_name: str
    checksum: str
    xml: str
    model: bpmn.ProcessModel


@dataclass
class ActivatedJob:
    """A job as handed to a worker: the job and the variables it sees."""

    job: Job
    variables: dict[str, Any]


def parse_variables(text: str, what: str = "variables") -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise EngineError(
            "INVALID_ARGUMENT", f"Expected {what} to be a JSON object, but it is not JSON: {error}"
        ) from error
    if not isinstance(value, dict):
        raise EngineError("INVALID_ARGUMENT", f"Expected {what} to be a JSON object, but got '{text[:100]}'")
    return value


def assign(target: dict[str, Any], path: str, value: Any) -> None:
    """Sets `a.b.c` in a variables dict, merging into the contexts already there."""
    *parents, last = path.split(".")
    for name in parents:
        inner = target.get(name)
        inner = dict(inner) if isinstance(inner, dict) else {}
        target[name] = inner
        target = inner
    target[last] = value


class Engine:
    def __init__(self, store: Store, records: RecordLog) -> None:
        self.store = store
        self.records = records
        self.processes: dict[int, Deployed] = {}
        self.latest: dict[str, Deployed] = {}
        self.instances: dict[int, Instance] = {}
        self.jobs: dict[int, Job] = {}
        self.incidents: dict[int, Incident] = {}
        self.activatable: dict[str, dict[int, None]] = {}  # per job type, oldest first
        self.on_activatable: Callable[[str], None] = lambda job_type: None
        self.on_released: Callable[[int], None] = lambda job_key: None  # a job left the worker that held it
        self.result_waiters: dict[int, list[asyncio.Future[dict[str, Any]]]] = {}
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._key = KEY_BASE
        store.before_commit(self._save_counters)
        store.before_commit(records.flush)

    # ------------------------------------------------------------------------------------------ state

    def load(self) -> None:
        """Reads the store back after a restart and re-arms every job's timer."""
        meta = dict(self.store.rows("meta"))
        self._key = meta.get(_META_KEY, KEY_BASE)
        self.records.position = meta.get(_META_POSITION, 0)
        for _, row in self.store.rows("processes"):
            self._register(row, bpmn.parse_bpmn(row["xml"].encode(), row["resource_name"]))
        for _, row in self.store.rows("instances"):
            if row["state"] == "ACTIVE":
                instance = Instance.from_row(row)
                self.instances[instance.key] = instance
        for _, row in self.store.rows("incidents"):
            incident = Incident(**row)
            if incident.state == "ACTIVE":
                self.incidents[incident.key] = incident
        for _, row in self.store.rows("jobs"):
            job = Job(**row)
            self.jobs[job.key] = job
            if job.state == ACTIVATABLE:
                self._make_activatable(job, notify=False)
            elif job.state == ACTIVATED:
                self._arm(job.key, job.deadline, self._time_out)
            elif job.state == FAILED and job.recur_at >= 0:
                self._arm(job.key, job.recur_at, self._recur)

    def _save_counters(self) -> None:
        self.store.put("meta", _META_KEY, self._key)
        self.store.put("meta", _META_POSITION, self.records.position)

    def next_key(self) -> int:
        self._key += 1
        return self._key

    def _save_instance(self, instance: Instance) -> None:
        self.store.put("instances", instance.key, instance.row())

    def _save_job(self, job: Job) -> None:
        self.store.put("jobs", job.key, job.row())

    def _save_incident(self, incident: Incident) -> None:
        self.store.put("incidents", incident.key, incident.row())

    # ------------------------------------------------------------------------------------- deployment

    def deploy(self, resources: Iterable[tuple[str, bytes]]) -> tuple[int, list[Deployed]]:
        parsed = []
        for name, content in resources:
            if not name.endswith((".bpmn", ".xml")):
                raise EngineError(
                    "INVALID_ARGUMENT",
                    f"Expected to deploy BPMN resources, but '{name}' is not one (the development engine deploys "
                    "only .bpmn files)",
                )
            try:
                models = bpmn.parse_bpmn(content, name)
            except bpmn.DeploymentError as error:
                raise EngineError(
                    "INVALID_ARGUMENT",
                    f"Command 'CREATE' rejected with code 'INVALID_ARGUMENT': "
                    f"Expected to deploy new resources, but encountered the following errors:\n"
                    f"'{name}': {error}",
                ) from error
            parsed.append((name, content, models))
        deployment_key = self.next_key()
        deployed = []
        for name, content, models in parsed:
            checksum = hashlib.md5(content).hexdigest()
            for model in models:
                latest = self.latest.get(model.process_id)
                if latest is not None and latest.checksum == checksum and latest.resource_name == name:
                    deployed.append(latest)
                    continue
                version = 1 if latest is None else latest.version + 1
                row = {
                    "key": self.next_key(),
                    "bpmn_process_id": model.process_id,
                    "version": version,
                    "resource_name": name,
                    "checksum": checksum,
                    "xml": content.decode("utf-8"),
                }
                process = self._register(row, [model])
                self.store.put("processes", process.key, row)
                self.records.append("PROCESS", "CREATED", process.key, self._process_value(process))
                deployed.append(process)
        self.records.append(
            "DEPLOYMENT",
            "CREATED",
            deployment_key,
            {
                "processesMetadata": [self._process_value(p) for p in deployed],
                "resources": [],
                "decisionsMetadata": [],
                "decisionRequirementsMetadata": [],
                "formMetadata": [],
                "tenantId": TENANT,
            },
        )
        self.store.changed()
        return deployment_key, deployed

    def _register(self, row: dict[str, Any], models: list[bpmn.ProcessModel]) -> Deployed:
        model = next(m for m in models if m.process_id == row["bpmn_process_id"])
        process = Deployed(
            row["key"], row["bpmn_process_id"], row["version"], row["resource_name"], row["checksum"], row["xml"], model
        )
        self.processes[process.key] = process
        latest = self.latest.get(process.bpmn_process_id)
        if latest is None or latest.version < process.version:
            self.latest[process.bpmn_process_id] = process
        return process

    @staticmethod
    def _process_value(process: Deployed) -> dict[str, Any]:
        return {
            "bpmnProcessId": process.bpmn_process_id,
            "version": process.version,
            "processDefinitionKey": process.key,
            "resourceName": process.resource_name,
            "checksum": process.checksum,
            "duplicate": False,
            "tenantId": TENANT,
        }

    # -------------------------------------------------------------------------------------- instances

    def find_process(self, bpmn_process_id: str, version: int, definition_key: int) -> Deployed:
        if definition_key > 0:
            if definition_key not in self.processes:
                raise rejected(
                    "NOT_FOUND",
                    "CREATE",
                    f"Expected to find process definition with key '{definition_key}', but none found",
                )
            return self.processes[definition_key]
        if version > 0:
            for process in self.processes.values():
                if process.bpmn_process_id == bpmn_process_id and process.version == version:
                    return process
            raise rejected(
                "NOT_FOUND",
                "CREATE",
                f"Expected to find process definition with process ID '{bpmn_process_id}' and version "
                f"'{version}', but none found",
            )
        if bpmn_process_id not in self.latest:
            raise rejected(
                "NOT_FOUND",
                "CREATE",
                f"Expected to find process definition with process ID '{bpmn_process_id}', but none found",
            )
        return self.latest[bpmn_process_id]

    def create_instance(self, process: Deployed, variables: dict[str, Any]) -> Instance:
        instance = Instance(self.next_key(), process.key, process.bpmn_process_id, process.version)
        self.instances[instance.key] = instance
        self._element_record(instance, "ELEMENT_ACTIVATING", instance.key, process.bpmn_process_id, bpmn.PROCESS, -1)
        self._set_variables(instance, instance.key, variables)
        self._element_record(instance, "ELEMENT_ACTIVATED", instance.key, process.bpmn_process_id, bpmn.PROCESS, -1)
        self._activate(instance, process.model.start)
        self._settle(instance)
        return instance

    def instance(self, key: int, command: str, what: str) -> Instance:
        instance = self.instances.get(key)
        if instance is None:
            raise rejected("NOT_FOUND", command, f"Expected to {what} with key '{key}', but no such process was found")
        return instance

    def cancel_instance(self, key: int) -> None:
        instance = self.instance(key, "CANCEL", "cancel a process instance")
        for element_key in list(instance.tokens):
            self._terminate(instance, element_key)
        self._finish(instance, "ELEMENT_TERMINATING", "ELEMENT_TERMINATED", "TERMINATED")
        for waiter in self.result_waiters.pop(instance.key, []):
            if not waiter.done():
                waiter.set_exception(
                    EngineError(
                        "FAILED_PRECONDITION",
                        f"Expected to complete process instance with key '{key}', but it was terminated",
                    )
                )

    def set_variables(self, element_key: int, variables: dict[str, Any], local: bool) -> int:
        for instance in self.instances.values():
            if element_key == instance.key or element_key in instance.tokens:
                break
        else:
            raise rejected(
                "NOT_FOUND",
                "UPDATE",
                f"Expected to update variables for element with key '{element_key}', but no such element was found",
            )
        if local and element_key != instance.key:
            token = instance.tokens[element_key]
            self._set_local(instance, element_key, token, variables)
        else:
            self._set_variables(instance, instance.key, variables)
        self._save_instance(instance)
        return self.next_key()

    # ------------------------------------------------------------------------------ how a token moves

    def _activate(self, instance: Instance, element: bpmn.Element) -> None:
        key = self.next_key()
        self._element_record(instance, "ELEMENT_ACTIVATING", key, element.id, element.element_type)
        token = Token(element.id)
        instance.tokens[key] = token
        self._enter(instance, key, token, self._model(instance).elements[element.id])

    def _enter(self, instance: Instance, key: int, token: Token, element: bpmn.Element) -> None:
        """The element's own step; an incident leaves the token where it is, to run this again."""
        kind = element.element_type
        if kind == bpmn.SERVICE_TASK:
            self._enter_task(instance, key, token, element)
        elif kind == bpmn.EXCLUSIVE_GATEWAY:
            self._element_record(instance, "ELEMENT_ACTIVATED", key, element.id, kind)
            flow = self._choose(instance, key, element)
            if flow is not None:
                self._leave(instance, key, element, [flow])
        elif kind == bpmn.END_EVENT and element.is_error_event:
            self._element_record(instance, "ELEMENT_ACTIVATED", key, element.id, kind)
            self._incident(instance, key, element.id, "UNHANDLED_ERROR_EVENT", _uncaught(element.error_code or "", ""))
        else:
            self._element_record(instance, "ELEMENT_ACTIVATED", key, element.id, kind)
            self._leave(instance, key, element, element.outgoing)

    def _enter_task(self, instance: Instance, key: int, token: Token, element: bpmn.Element) -> None:
        local: dict[str, Any] = {}
        context = dict(instance.variables)
        try:
            for mapping in element.inputs:
                assign(local, mapping.target, mapping.source.evaluate(context))
                context.update(local)
        except bpmn.EvaluationError as error:
            self._incident(instance, key, element.id, "IO_MAPPING_ERROR", str(error))
            return
        try:
            assert element.job_type is not None and element.retries is not None
            job_type = element.job_type.evaluate(context)
            retries = element.retries.evaluate(context)
            retries = int(retries) if isinstance(retries, str) else retries
            if not isinstance(job_type, str) or not isinstance(retries, int):
                raise ValueError(f"expected a job type string and a number of retries, got {job_type!r}, {retries!r}")
        except (bpmn.EvaluationError, ValueError) as error:
            self._incident(instance, key, element.id, "EXTRACT_VALUE_ERROR", str(error))
            return
        self._set_local(instance, key, token, local)
        self._element_record(instance, "ELEMENT_ACTIVATED", key, element.id, bpmn.SERVICE_TASK)
        process = self.processes[instance.process_key]
        job = Job(
            key=self.next_key(),
            job_type=job_type,
            instance_key=instance.key,
            element_instance_key=key,
            element_id=element.id,
            bpmn_process_id=instance.bpmn_process_id,
            process_definition_key=process.key,
            version=process.version,
            retries=retries,
            custom_headers=dict(element.headers),
        )
        token.job_key = job.key
        self.jobs[job.key] = job
        self._job_record("CREATED", job)
        self._make_activatable(job)
        self._save_job(job)

    def _choose(self, instance: Instance, key: int, gateway: bpmn.Element) -> bpmn.Flow | None:
        if len(gateway.outgoing) == 1 and gateway.outgoing[0].condition is None:
            return gateway.outgoing[0]  # a merging gateway: its one flow needs no condition
        for flow in gateway.outgoing:
            if flow.condition is None or flow.id == gateway.default_flow:
                continue
            try:
                result = flow.condition.evaluate(dict(instance.variables))
            except bpmn.EvaluationError as error:
                self._incident(instance, key, gateway.id, "CONDITION_ERROR", str(error))
                return None
            if not isinstance(result, bool):
                self._incident(
                    instance,
                    key,
                    gateway.id,
                    "CONDITION_ERROR",
                    f"Expected result of the expression '{flow.condition.source}' to be 'BOOLEAN', but was "
                    f"'{_feel_type(result)}'.",
                )
                return None
            if result:
                return flow
        for flow in gateway.outgoing:
            if flow.id == gateway.default_flow:
                return flow
        self._incident(
            instance,
            key,
            gateway.id,
            "CONDITION_ERROR",
            "Expected at least one condition to evaluate to true, or to have a default flow",
        )
        return None

    def _leave(self, instance: Instance, key: int, element: bpmn.Element, flows: list[bpmn.Flow]) -> None:
        self._element_record(instance, "ELEMENT_COMPLETING", key, element.id, element.element_type)
        self._element_record(instance, "ELEMENT_COMPLETED", key, element.id, element.element_type)
        del instance.tokens[key]
        model = self._model(instance)
        for flow in flows:
            self._element_record(instance, "SEQUENCE_FLOW_TAKEN", self.next_key(), flow.id, "SEQUENCE_FLOW")
            self._activate(instance, model.elements[flow.target])

    def _complete_task(self, instance: Instance, key: int, token: Token, variables: dict[str, Any]) -> None:
        element = self._model(instance).elements[token.element_id]
        if element.outputs:
            context = {**instance.variables, **token.local, **variables}
            results: dict[str, Any] = {}
            try:
                for mapping in element.outputs:
                    name = mapping.target.split(".", 1)[0]
                    if name not in results and isinstance(instance.variables.get(name), dict):
                        results[name] = instance.variables[name]
                    assign(results, mapping.target, mapping.source.evaluate(context))
            except bpmn.EvaluationError as error:
                token.completion = variables
                self._incident(instance, key, element.id, "IO_MAPPING_ERROR", str(error))
                return
            variables = results
        token.completion = None
        self._set_variables(instance, instance.key, variables)
        self._leave(instance, key, element, element.outgoing)

    def _catch(self, instance: Instance, key: int, boundary: bpmn.Element, variables: dict[str, Any]) -> None:
        self._terminate(instance, key)
        self._activate_boundary(instance, boundary, variables)

    def _activate_boundary(self, instance: Instance, boundary: bpmn.Element, variables: dict[str, Any]) -> None:
        key = self.next_key()
        self._element_record(instance, "ELEMENT_ACTIVATING", key, boundary.id, boundary.element_type)
        self._element_record(instance, "ELEMENT_ACTIVATED", key, boundary.id, boundary.element_type)
        token = Token(boundary.id)
        instance.tokens[key] = token
        if boundary.outputs:
            context = {**instance.variables, **variables}
            results: dict[str, Any] = {}
            try:
                for mapping in boundary.outputs:
                    assign(results, mapping.target, mapping.source.evaluate(context))
            except bpmn.EvaluationError as error:
                self._incident(instance, key, boundary.id, "IO_MAPPING_ERROR", str(error))
                return
            variables = results
        self._set_variables(instance, instance.key, variables)
        self._leave(instance, key, boundary, boundary.outgoing)

    def _terminate(self, instance: Instance, key: int) -> None:
        token = instance.tokens.pop(key)
        element = self._model(instance).elements[token.element_id]
        self._element_record(instance, "ELEMENT_TERMINATING", key, element.id, element.element_type)
        job = self.jobs.get(token.job_key)
        if job is not None:
            self._drop_job(job)
            self._job_record("CANCELED", job)
        for incident in [i for i in self.incidents.values() if i.element_instance_key == key]:
            self._resolved(incident)
        self._element_record(instance, "ELEMENT_TERMINATED", key, element.id, element.element_type)

    def _settle(self, instance: Instance) -> None:
        """Completes the instance once no token is left; saves it otherwise."""
        if instance.tokens or instance.state != "ACTIVE":
            self._save_instance(instance)
            return
        self._finish(instance, "ELEMENT_COMPLETING", "ELEMENT_COMPLETED", "COMPLETED")
        for waiter in self.result_waiters.pop(instance.key, []):
            if not waiter.done():
                waiter.set_result(dict(instance.variables))

    def _finish(self, instance: Instance, ending: str, ended: str, state: str) -> None:
        self._element_record(instance, ending, instance.key, instance.bpmn_process_id, bpmn.PROCESS, -1)
        self._element_record(instance, ended, instance.key, instance.bpmn_process_id, bpmn.PROCESS, -1)
        instance.state = state
        self._save_instance(instance)
        del self.instances[instance.key]

    def _model(self, instance: Instance) -> bpmn.ProcessModel:
        return self.processes[instance.process_key].model

    # -------------------------------------------------------------------------------------- variables

    def _set_variables(self, instance: Instance, scope_key: int, updates: dict[str, Any]) -> None:
        for name, value in updates.items():
            self._variable(instance, scope_key, instance.variables, name, value)

    def _set_local(self, instance: Instance, scope_key: int, token: Token, updates: dict[str, Any]) -> None:
        for name, value in updates.items():
            self._variable(instance, scope_key, token.local, name, value)

    def _variable(self, instance: Instance, scope_key: int, scope: dict[str, Any], name: str, value: Any) -> None:
        if name in scope and scope[name] == value:
            return
        intent = "UPDATED" if name in scope else "CREATED"
        scope[name] = value
        self.records.append(
            "VARIABLE",
            intent,
            self.next_key(),
            {
                "name": name,
                "value": json.dumps(value, separators=(",", ":")),
                "scopeKey": scope_key,
                "processInstanceKey": instance.key,
                "processDefinitionKey": instance.process_key,
                "bpmnProcessId": instance.bpmn_process_id,
                "tenantId": TENANT,
            },
        )

    # ------------------------------------------------------------------------------------------- jobs

    def activate(
        self, job_type: str, max_jobs: int, worker: str, timeout_ms: int, fetch: list[str]
    ) -> list[ActivatedJob]:
        queue = self.activatable.get(job_type)
        if not queue or max_jobs <= 0:
            return []
        keys = []
        for key in queue:
            keys.append(key)
            if len(keys) >= max_jobs:
                break
        deadline = now_ms() + timeout_ms
        activated = []
        for key in keys:
            del queue[key]
            job = self.jobs[key]
            job.state, job.worker, job.deadline = ACTIVATED, worker, deadline
            self._arm(key, deadline, self._time_out)
            self._save_job(job)
            activated.append(ActivatedJob(job, self._job_variables(job, fetch)))
        self.records.append(
            "JOB_BATCH",
            "ACTIVATED",
            self.next_key(),
            {
                "type": job_type,
                "worker": worker,
                "timeout": timeout_ms,
                "maxJobsToActivate": max_jobs,
                "jobKeys": keys,
                "jobs": [self._job_value(a.job, a.variables) for a in activated],
                "truncated": False,
                "tenantIds": [TENANT],
            },
        )
        return activated

    def give_back(self, jobs: list[ActivatedJob]) -> None:
        """Jobs activated for a request whose client left before they were sent: activatable again."""
        for activated in jobs:
            job = activated.job
            if self.jobs.get(job.key) is job and job.state == ACTIVATED:
                self.on_released(job.key)
                self._job_record("YIELDED", job)
                self._make_activatable(job)
                self._save_job(job)

    def _job_variables(self, job: Job, fetch: list[str]) -> dict[str, Any]:
        instance = self.instances[job.instance_key]
        token = instance.tokens[job.element_instance_key]
        variables = {**instance.variables, **token.local}
        if fetch:
            return {name: variables[name] for name in fetch if name in variables}
        return variables

    def job(self, key: int, command: str, verb: str, allowed: tuple[str, ...]) -> Job:
        job = self.jobs.get(key)
        if job is None:
            raise rejected("NOT_FOUND", command, f"Expected to {verb} job with key '{key}', but no such job was found")
        if job.state not in allowed:
            state = "it is not yet activated" if job.state == ACTIVATABLE else f"it is in state '{job.state}'"
            raise rejected("FAILED_PRECONDITION", command, f"Expected to {verb} job with key '{key}', but {state}")
        return job

    def complete_job(self, key: int, variables: dict[str, Any]) -> None:
        job = self.job(key, "COMPLETE", "complete", (ACTIVATED,))
        self._drop_job(job)
        self._job_record("COMPLETED", job, variables)
        instance = self.instances[job.instance_key]
        token = instance.tokens[job.element_instance_key]
        token.job_key = -1
        self._complete_task(instance, job.element_instance_key, token, variables)
        self._settle(instance)

    def fail_job(self, key: int, retries: int, message: str, backoff_ms: int, variables: dict[str, Any]) -> None:
        job = self.job(key, "FAIL", "fail", (ACTIVATED,))
        self.on_released(job.key)
        self._disarm(job.key)
        job.retries, job.error_message, job.retry_backoff = retries, message, backoff_ms
        job.worker, job.deadline = "", -1
        instance = self.instances[job.instance_key]
        if variables:
            self._set_local(instance, job.element_instance_key, instance.tokens[job.element_instance_key], variables)
            self._save_instance(instance)
        job.state = FAILED
        self._job_record("FAILED", job, variables)
        if retries <= 0:
            self._incident(
                instance,
                job.element_instance_key,
                job.element_id,
                "JOB_NO_RETRIES",
                message or "No more retries left.",
                job.key,
            )
            self._save_instance(instance)
        elif backoff_ms > 0:
            job.recur_at = now_ms() + backoff_ms
            self._arm(job.key, job.recur_at, self._recur)
        else:
            self._make_activatable(job)
        self._save_job(job)

    def throw_error(self, key: int, code: str, message: str, variables: dict[str, Any]) -> None:
        job = self.job(key, "THROW_ERROR", "throw an error for", (ACTIVATED, ACTIVATABLE))
        job.error_code, job.error_message = code, message
        instance = self.instances[job.instance_key]
        element = self._model(instance).elements[job.element_id]
        boundary = self._model(instance).boundary_for(element, code)
        self.on_released(job.key)
        self._disarm(job.key)
        self.activatable.get(job.job_type, {}).pop(job.key, None)
        job.state, job.worker, job.deadline = ERROR_THROWN, "", -1
        self._job_record("ERROR_THROWN", job, variables)
        if boundary is None:
            self._incident(
                instance,
                job.element_instance_key,
                job.element_id,
                "UNHANDLED_ERROR_EVENT",
                _uncaught(code, message),
                job.key,
            )
            self._save_job(job)
            self._save_instance(instance)
            return
        self._catch(instance, job.element_instance_key, boundary, variables)
        self._settle(instance)

    def update_timeout(self, key: int, timeout_ms: int) -> None:
        job = self.job(key, "UPDATE_TIMEOUT", "update timeout of", (ACTIVATED,))
        job.deadline = now_ms() + timeout_ms
        self._arm(job.key, job.deadline, self._time_out)
        self._job_record("TIMEOUT_UPDATED", job)
        self._save_job(job)

    def update_retries(self, key: int, retries: int) -> None:
        job = self.jobs.get(key)
        if job is None:
            raise rejected(
                "NOT_FOUND",
                "UPDATE_RETRIES",
                f"Expected to update retries for job with key '{key}', but no such job was found",
            )
        if retries < 1:
            raise rejected(
                "INVALID_ARGUMENT",
                "UPDATE_RETRIES",
                f"Expected to update retries for job with key '{key}' with a positive amount of retries, "
                f"but was '{retries}'",
            )
        job.retries = retries
        self._job_record("RETRIES_UPDATED", job)
        self._save_job(job)

    def _make_activatable(self, job: Job, notify: bool = True) -> None:
        job.state, job.worker, job.deadline, job.recur_at = ACTIVATABLE, "", -1, -1
        self.activatable.setdefault(job.job_type, {})[job.key] = None
        if notify:
            self.on_activatable(job.job_type)

    def _drop_job(self, job: Job) -> None:
        self.on_released(job.key)
        self._disarm(job.key)
        self.activatable.get(job.job_type, {}).pop(job.key, None)
        del self.jobs[job.key]
        self.store.delete("jobs", job.key)

    # ----------------------------------------------------------------------------------------- timers

    def _arm(self, key: int, at_ms: int, action: Callable[[int, int], None]) -> None:
        self._disarm(key)
        loop = asyncio.get_running_loop()
        delay = max(0.0, (at_ms - now_ms()) / 1000)
        self._timers[key] = loop.call_at(loop.time() + delay, action, key, at_ms)

    def _disarm(self, key: int) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def _time_out(self, key: int, deadline: int) -> None:
        self._timers.pop(key, None)
        job = self.jobs.get(key)
        if job is None or job.state != ACTIVATED or job.deadline != deadline:
            return
        self.on_released(job.key)
        self._job_record("TIMED_OUT", job)
        self._make_activatable(job)
        self._save_job(job)

    def _recur(self, key: int, recur_at: int) -> None:
        self._timers.pop(key, None)
        job = self.jobs.get(key)
        if job is None or job.state != FAILED or job.recur_at != recur_at:
            return
        self._job_record("RECURRED_AFTER_BACKOFF", job)
        self._make_activatable(job)
        self._save_job(job)

    # -------------------------------------------------------------------------------------- incidents

    def _incident(
        self, instance: Instance, element_key: int, element_id: str, error_type: str, message: str, job_key: int = -1
    ) -> None:
        incident = Incident(
            key=self.next_key(),
            instance_key=instance.key,
            element_instance_key=element_key,
            element_id=element_id,
            bpmn_process_id=instance.bpmn_process_id,
            process_definition_key=instance.process_key,
            error_type=error_type,
            error_message=message,
            creation_time=now_ms(),
            job_key=job_key,
        )
        self.incidents[incident.key] = incident
        self.records.append("INCIDENT", "CREATED", incident.key, self._incident_value(incident))
        self._save_incident(incident)

    def _resolved(self, incident: Incident) -> None:
        incident.state = "RESOLVED"
        del self.incidents[incident.key]
        self.records.append("INCIDENT", "RESOLVED", incident.key, self._incident_value(incident))
        self._save_incident(incident)

    def resolve_incident(self, key: int) -> None:
        incident = self.incidents.get(key)
        if incident is None:
            raise rejected(
                "NOT_FOUND", "RESOLVE", f"Expected to resolve incident with key '{key}', but no such incident was found"
            )
        instance = self.instances[incident.instance_key]
        if incident.job_key >= 0:
            job = self.jobs[incident.job_key]
            if job.retries <= 0:
                raise rejected(
                    "FAILED_PRECONDITION",
                    "RESOLVE",
                    f"Expected to resolve incident with key '{key}', but job with key '{job.key}' has no retries "
                    "left; update its retries first",
                )
            self._resolved(incident)
            self._make_activatable(job)
            self._save_job(job)
            return
        self._resolved(incident)
        token = instance.tokens[incident.element_instance_key]
        element = self._model(instance).elements[token.element_id]
        if token.completion is not None:
            self._complete_task(instance, incident.element_instance_key, token, token.completion)
        elif element.element_type == bpmn.BOUNDARY_EVENT:
            del instance.tokens[incident.element_instance_key]
            self._activate_boundary(instance, element, {})
        else:
            self._enter(instance, incident.element_instance_key, token, element)
        self._settle(instance)

    def incident_count(self, instance_key: int) -> int:
        return sum(1 for i in self.incidents.values() if i.instance_key == instance_key)

    # ---------------------------------------------------------------------------------------- records

    def _element_record(
        self, instance: Instance, intent: str, key: int, element_id: str, element_type: str, scope: int | None = None
    ) -> None:
        self.records.append(
            "PROCESS_INSTANCE",
            intent,
            key,
            {
                "bpmnElementType": element_type,
                "elementId": element_id,
                "processInstanceKey": instance.key,
                "bpmnProcessId": instance.bpmn_process_id,
                "version": instance.version,
                "processDefinitionKey": instance.process_key,
                "flowScopeKey": instance.key if scope is None else scope,
                "bpmnEventType": "UNSPECIFIED",
                "parentProcessInstanceKey": -1,
                "parentElementInstanceKey": -1,
                "tenantId": TENANT,
            },
        )

    def _job_record(self, intent: str, job: Job, variables: dict[str, Any] | None = None) -> None:
        self.records.append("JOB", intent, job.key, self._job_value(job, variables or {}))

    @staticmethod
    def _job_value(job: Job, variables: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": job.job_type,
            "worker": job.worker,
            "retries": job.retries,
            "retryBackoff": job.retry_backoff,
            "recurringTime": job.recur_at,
            "deadline": job.deadline,
            "errorMessage": job.error_message,
            "errorCode": job.error_code,
            "variables": variables,
            "customHeaders": job.custom_headers,
            "elementId": job.element_id,
            "elementInstanceKey": job.element_instance_key,
            "bpmnProcessId": job.bpmn_process_id,
            "processDefinitionVersion": job.version,
            "processDefinitionKey": job.process_definition_key,
            "processInstanceKey": job.instance_key,
            "tenantId": TENANT,
            "jobKind": "BPMN_ELEMENT",
        }

    @staticmethod
    def _incident_value(incident: Incident) -> dict[str, Any]:
        return {
            "errorType": incident.error_type,
            "errorMessage": incident.error_message,
            "bpmnProcessId": incident.bpmn_process_id,
            "processDefinitionKey": incident.process_definition_key,
            "processInstanceKey": incident.instance_key,
            "elementId": incident.element_id,
            "elementInstanceKey": incident.element_instance_key,
            "jobKey": incident.job_key,
            "variableScopeKey": incident.element_instance_key,
            "tenantId": TENANT,
        }


def _uncaught(code: str, message: str) -> str:
    return (
        f"Expected to throw an error event with the code '{code}' with message '{message}', but it was not caught. "
        "No error events are available in the scope."
    )


def _feel_type(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "STRING"
    if isinstance(value, int | float):
        return "NUMBER"
    if isinstance(value, dict):
        return "CONTEXT"
    if isinstance(value, list):
        return "LIST"
    return type(value).__name__.upper()
