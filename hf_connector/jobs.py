"""Handling one `hugging-face` job, from its raw variables to an outcome. Knows nothing of pyzeebe.

The order matters: secrets first (so that validation sees real values), then validation and
compiling the expressions (so a bad job costs no Hugging Face call), then the call, then mapping the
answer. Every outcome is masked before it leaves, so no secret reaches Zeebe.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import ValidationError

from hf_connector.documents import DocumentClient, DocumentError, parse_reference
from hf_connector.durations import parse_iso_duration
from hf_connector.expressions import (
    BpmnError,
    ExpressionError,
    IgnoreError,
    JobError,
    compile_expression,
    evaluate_error_expression,
    evaluate_result_expression,
)
from hf_connector.http_core import HttpCore, HttpError, HttpResult
from hf_connector.huggingface.binary import BinaryInput
from hf_connector.huggingface.chat import InvalidJsonAnswerError
from hf_connector.huggingface.contract import BinaryResult, JobVariables, TaskHeaders
from hf_connector.huggingface.documents import binary_answer, file_name, with_documents
from hf_connector.huggingface.failures import (
    CallFailure,
    failure_from_http_error,
    failure_from_invalid_answer,
    failure_from_response,
)
from hf_connector.huggingface.ratelimit import RateLimiter
from hf_connector.huggingface.requests import HfCall, HfDefaults, InvalidInputError, build_call
from hf_connector.secrets import Masker, MissingSecretError, SecretResolver

logger = logging.getLogger(__name__)
_OVERLOAD_CODES = frozenset({"429", "503"})
SECRET_MISSING = "SECRET_MISSING"
_CUT = " ... (cut)"
DOCUMENTS_OFF = (
    "this worker has no document store: set CAMUNDA_REST_ADDRESS (or CAMUNDA_CLUSTER_ID and "
    "CAMUNDA_CLUSTER_REGION for Camunda SaaS) on the worker"
)


@dataclass(frozen=True, slots=True)
class JobContext:
    key: int
    retries: int
    variables: Mapping[str, Any]
    headers: Mapping[str, Any]
    element_id: str = ""
    process_instance_key: int = 0
    bpmn_process_id: str = ""


@dataclass(frozen=True, slots=True)
class Complete:
    variables: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Fail:
    message: str
    retries: int
    backoff_seconds: float = 0.0
    variables: dict[str, Any] = field(default_factory=dict)
    code: str = ""


@dataclass(frozen=True, slots=True)
class ThrowBpmnError:
    code: str
    message: str
    variables: dict[str, Any] = field(default_factory=dict)


Outcome = Complete | Fail | ThrowBpmnError


@dataclass(frozen=True, slots=True)
class Report:
    """What happened, for logs and metrics."""

    outcome: Outcome
    model: str = ""
    status: int | None = None
    call_seconds: float | None = None


class JobInputError(Exception):
    """Bad input: the job fails at once (retries 0) with this message."""

    def __init__(self, message: str, code: str = "INVALID_INPUT") -> None:
        super().__init__(message)
        self.code = code


class JobHandler:
    def __init__(
        self,
        *,
        http: HttpCore,
        secrets: SecretResolver,
        masker: Masker,
        defaults: HfDefaults,
        limiter: RateLimiter,
        max_message_chars: int,
        max_retry_after_seconds: float,
        overload_backoff_seconds: float = 10.0,
        documents: DocumentClient | None = None,
    ) -> None:
        self.http = http
        self.secrets = secrets
        self.masker = masker
        self.defaults = defaults
        self.limiter = limiter
        self.max_message_chars = max_message_chars
        self.max_retry_after_seconds = max_retry_after_seconds
        self.overload_backoff_seconds = overload_backoff_seconds
        self.documents = documents

    async def handle(self, job: JobContext) -> Report:
        try:
            headers, variables = self._prepare(job)
            variables = await with_documents(variables, self._fetch_document)
            call = self._build(variables)
        except JobInputError as exc:
            return Report(self._finish(Fail(str(exc), retries=0, code=exc.code)), self._model_as_given(job))
        except DocumentError as exc:
            return Report(self._finish(self._document_failure(job, exc)), self._model_as_given(job))
        result, failure, seconds = await self._call(call)
        # The model is a metric label and a log field: a model id or endpoint URL kept as a secret is masked.
        model = self.masker.mask(call.model)
        status = result.status if result else None
        if result is not None and failure is None and headers.binary_result is BinaryResult.DOCUMENT:
            try:
                result = await self._store_binary(job, call.model, result)
            except DocumentError as exc:
                return Report(self._finish(self._document_failure(job, exc)), model, status, seconds)
        outcome = self._decide(job, headers, call, result, failure)
        return Report(self._finish(outcome), model, status, seconds)

    # --- before the call ------------------------------------------------------------------------

    def _model_as_given(self, job: JobContext) -> str:
        """The model for the log line of a job that never got to a call: as written, secrets unresolved."""
        model = job.variables.get("model")
        return self.masker.mask(model) if isinstance(model, str) else ""

    def _prepare(self, job: JobContext) -> tuple[TaskHeaders, JobVariables]:
        try:
            raw_headers = self.secrets.resolve(dict(job.headers))
            raw_variables = self.secrets.resolve(dict(job.variables))
        except MissingSecretError as exc:
            raise JobInputError(str(exc), code=SECRET_MISSING) from None
        headers = _validated(TaskHeaders, raw_headers, "task header")
        variables = _validated(JobVariables, raw_variables, "input")
        for source, purpose in (
            (headers.result_expression, "result expression"),
            (headers.error_expression, "error expression"),
        ):
            if source:
                try:
                    compile_expression(source, purpose)
                except ExpressionError as exc:
                    raise JobInputError(str(exc)) from None
        return headers, variables

    def _build(self, variables: JobVariables) -> HfCall:
        try:
            return build_call(variables, self.defaults)
        except InvalidInputError as exc:
            raise JobInputError(f"Invalid input: {exc}") from None

    # --- documents --------------------------------------------------------------------------------

    async def _fetch_document(self, value: Mapping[str, Any]) -> BinaryInput:
        if self.documents is None:
            raise DocumentError("DOCUMENTS_OFF", f"The input holds a Camunda document reference, but {DOCUMENTS_OFF}")
        reference = parse_reference(value)
        limit = self.defaults.max_input_bytes
        content = await self.documents.download(reference, limit, "HF_CONNECTOR_MAX_INPUT_BYTES")
        return BinaryInput(content, reference.content_type.split(";")[0].strip())

    async def _store_binary(self, job: JobContext, model: str, result: HttpResult) -> HttpResult:
        """The answer with a binary body replaced by a reference to the document it is stored as."""
        binary = binary_answer(result.body)
        if binary is None:
            return result
        if self.documents is None:
            raise DocumentError(
                "DOCUMENTS_OFF",
                f"The answer is binary and binaryResult is document, but {DOCUMENTS_OFF}; or set binaryResult "
                "to inline",
            )
        metadata = {
            "contentType": binary.content_type,
            "fileName": file_name(model, binary.content_type),
            "size": len(binary.data),
            "processDefinitionId": job.bpmn_process_id,
            "processInstanceKey": str(job.process_instance_key),
        }
        reference = await self.documents.upload(binary.data, metadata)
        return dataclasses.replace(result, body=reference)

    def _document_failure(self, job: JobContext, error: DocumentError) -> Fail:
        if not error.retryable:
            return Fail(f"Document: {error}", retries=0, code=error.code)
        retries = max(job.retries - 1, 0)
        return Fail(f"Document: {error}", retries, self.overload_backoff_seconds, code=error.code)

    # --- the call -------------------------------------------------------------------------------

    async def _call(self, call: HfCall) -> tuple[HttpResult | None, CallFailure | None, float]:
        await self.limiter.acquire(call.request.url)
        # After the wait for a turn, so that call_seconds is Hugging Face's time whatever the outcome.
        started = time.perf_counter()
        try:
            result = await self.http.send(call.request)
        except HttpError as exc:
            return None, failure_from_http_error(exc), time.perf_counter() - started
        if result.status >= 400:
            response = self.masker.mask_data(result.as_variable())
            advice = call.rejection_advice(result.status)
            failure = failure_from_response(result, response, self.max_retry_after_seconds, advice)
            return result, failure, result.elapsed_seconds
        return result, None, result.elapsed_seconds

    # --- after the call -------------------------------------------------------------------------

    def _decide(
        self,
        job: JobContext,
        headers: TaskHeaders,
        call: HfCall,
        result: HttpResult | None,
        failure: CallFailure | None,
    ) -> Outcome:
        if failure is None and result is not None:
            try:
                return self._success(headers, call.result_variable(result))
            except InvalidJsonAnswerError as exc:
                failure = failure_from_invalid_answer(exc, self.masker.mask_data(result.as_variable()))
        assert failure is not None
        if headers.error_expression:
            try:
                decided = self._apply_error_expression(job, headers, failure)
            except ExpressionError as exc:
                return Fail(str(exc), retries=0, code="EXPRESSION_ERROR")
            if decided is not None:
                return decided
        return self._default_failure(job, headers, failure)

    def _success(self, headers: TaskHeaders, result_variable: dict[str, Any]) -> Outcome:
        """The variables to complete with; `_finish` masks them, as it does every outcome."""
        variables: dict[str, Any] = {}
        if headers.result_variable:
            variables[headers.result_variable] = result_variable
        if headers.result_expression:
            # Masked before the expression sees it: a transformed echo (upper, slices) would escape masking.
            response = self.masker.mask_data(result_variable)
            context = {"response": response, **response}
            try:
                variables.update(evaluate_result_expression(headers.result_expression, context))
            except ExpressionError as exc:
                return Fail(str(exc), retries=0, code="EXPRESSION_ERROR")
        return Complete(variables)

    def _apply_error_expression(self, job: JobContext, headers: TaskHeaders, failure: CallFailure) -> Outcome | None:
        assert headers.error_expression
        context = {
            # Masked before the expression sees it: a transformed echo (upper, slices) would escape masking.
            "error": {
                "code": failure.code,
                "message": self.masker.mask(failure.message),
                "variables": {"response": failure.response},
            },
            "response": failure.response,
            "job": {"retries": job.retries, "key": job.key, "elementId": job.element_id},
        }
        decision = evaluate_error_expression(headers.error_expression, context)
        if isinstance(decision, BpmnError):
            return ThrowBpmnError(decision.code, decision.message, dict(decision.variables))
        if isinstance(decision, JobError):
            retries = job.retries - 1 if decision.retries is None else max(decision.retries, 0)
            backoff = _backoff(decision.retry_backoff, headers.retry_backoff_seconds or 0.0)
            return Fail(decision.message, retries, backoff, dict(decision.variables), failure.code)
        if isinstance(decision, IgnoreError):
            return Complete(dict(decision.variables))
        return None

    def _default_failure(self, job: JobContext, headers: TaskHeaders, failure: CallFailure) -> Fail:
        configured = headers.retry_backoff_seconds or 0.0
        if not failure.retryable:
            return Fail(failure.message, retries=0, code=failure.code)
        hint = failure.retry_after_seconds
        if hint is None and failure.code in _OVERLOAD_CODES:
            # Rate limited or overloaded without a hint: retrying at once would burn every retry.
            hint = self.overload_backoff_seconds
        backoff = max(configured, hint or 0.0)
        return Fail(failure.message, retries=max(job.retries - 1, 0), backoff_seconds=backoff, code=failure.code)

    def _finish(self, outcome: Outcome) -> Outcome:
        """Masks and caps whatever is about to leave the worker."""
        if isinstance(outcome, Complete):
            return Complete(self.masker.mask_data(outcome.variables))
        if isinstance(outcome, Fail):
            return Fail(
                self._message(outcome.message),
                outcome.retries,
                outcome.backoff_seconds,
                self.masker.mask_data(outcome.variables),
                outcome.code,
            )
        return ThrowBpmnError(
            self.masker.mask(outcome.code), self._message(outcome.message), self.masker.mask_data(outcome.variables)
        )

    def _message(self, message: str) -> str:
        masked = self.masker.mask(message)
        if len(masked) <= self.max_message_chars:
            return masked
        return masked[: self.max_message_chars - len(_CUT)] + _CUT


_Model = TypeVar("_Model", TaskHeaders, JobVariables)


def _validated(model: type[_Model], data: Mapping[str, Any], what: str) -> _Model:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise JobInputError(describe_validation_error(exc, what)) from None


def describe_validation_error(exc: ValidationError, what: str) -> str:
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        location = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{location}: {message}" if location else message)
    return f"Invalid {what}: " + "; ".join(problems)


def _backoff(duration: str | None, fallback: float) -> float:
    if not duration:
        return fallback
    try:
        return parse_iso_duration(duration)
    except ValueError as exc:
        # Falling back silently would retry at a pace the modeller never asked for.
        raise ExpressionError(f"The error expression's jobError(...) gave an invalid retryBackoff: {exc}") from None
