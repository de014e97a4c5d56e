"""One `hugging-face` job from its raw variables to its outcome, as a modeller sees it in Operate."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from tests.support.loopback_http import httpx_server
from worker.http_core import HttpCore
from worker.huggingface.ratelimit import RateLimiter
from worker.huggingface.requests import HfDefaults
from worker.jobs import Complete, Fail, JobContext, JobHandler, Report, ThrowBpmnError
from worker.secrets import EnvironmentSecrets, Masker, SecretResolver

TOKEN = "hf_taskSecretToken_93c1a7"
WORKER_TOKEN = "hf_workerDefault_5e2b90"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDRpixels"
MODEL_PATH = "/hf-inference/models/facebook/bart-large-cnn"

Handler = Callable[[httpx.Request], httpx.Response]


class Harness:
    """A JobHandler over a scripted Hugging Face on loopback, recording every request it receives."""

    def __init__(self, router: str) -> None:
        self.router = router
        self.requests: list[httpx.Request] = []
        self.reply: Handler = lambda request: httpx.Response(200, json=[{"summary_text": "Short."}])
        self.secrets = {"HUGGING_FACE_TOKEN": TOKEN, "SHORT": "ab"}
        self.masker = Masker([WORKER_TOKEN])
        self.cores: list[HttpCore] = []

    def answer(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.reply(request)

    def handler(self, *, max_message_chars: int = 6000, env_prefix: str = "SECRET_", max_response: int = 65536):
        core = HttpCore(max_response_bytes=max_response, environ={})
        self.cores.append(core)
        environ = {f"{env_prefix}{name}": value for name, value in self.secrets.items()}
        return JobHandler(
            http=core,
            secrets=SecretResolver([EnvironmentSecrets(env_prefix, environ)], self.masker),
            masker=self.masker,
            defaults=HfDefaults(self.router, WORKER_TOKEN, read_timeout=120.0, max_input_bytes=1024 * 1024),
            limiter=RateLimiter(0),
            max_message_chars=max_message_chars,
            max_retry_after_seconds=300.0,
        )

    async def run(self, variables: dict[str, Any], headers: dict[str, Any] | None = None, retries: int = 3, **kw):
        job = JobContext(key=42, retries=retries, variables=variables, headers=headers or {}, element_id="Summarize")
        return await self.handler(**kw).handle(job)


@pytest.fixture
async def hf() -> AsyncIterator[Harness]:
    harness: Harness | None = None
    async with httpx_server(lambda request: harness.answer(request) if harness else httpx.Response(500)) as server:
        harness = Harness(server.url(""))
        yield harness
        for core in harness.cores:
            await core.aclose()


def _summarize(**extra: Any) -> dict[str, Any]:
    return {
        "model": "facebook/bart-large-cnn",
        "input": {"inputs": "The tower is 324 metres tall."},
        "authentication": {"token": "{{secrets.HUGGING_FACE_TOKEN}}"},
        **extra,
    }


def _everything(report: Report) -> str:
    """Every text the outcome carries (code, message, variables), for leak checks."""
    return json.dumps(dataclasses.asdict(report.outcome), default=str)


# --- success ----------------------------------------------------------------------------------------


async def test_a_summary_lands_in_the_result_variable_and_expression(hf: Harness) -> None:
    hf.reply = lambda request: httpx.Response(200, json=[{"summary_text": "Short."}], headers={"x-request-id": "req-9"})
    report = await hf.run(
        _summarize(),
        {"resultVariable": "hfResponse", "resultExpression": '{"summary": body[0].summary_text}'},
    )
    assert isinstance(report.outcome, Complete)
    variables = report.outcome.variables
    assert variables["summary"] == "Short."
    assert variables["hfResponse"]["status"] == 200
    assert variables["hfResponse"]["body"] == [{"summary_text": "Short."}]
    assert variables["hfResponse"]["headers"]["x-request-id"] == "req-9"
    assert report.model == "facebook/bart-large-cnn"
    assert report.status == 200
    assert report.call_seconds is not None
    assert str(hf.requests[0].url) == hf.router + MODEL_PATH
    assert hf.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


async def test_without_result_mapping_the_job_completes_with_nothing(hf: Harness) -> None:
    report = await hf.run(_summarize())
    assert report.outcome == Complete({})


async def test_a_png_answer_becomes_a_base64_result(hf: Harness) -> None:
    hf.reply = lambda request: httpx.Response(200, content=PNG, headers={"content-type": "image/png"})
    report = await hf.run(
        _summarize(model="black-forest-labs/FLUX.1-schnell", input="a red fox", task="text-to-image"),
        {"resultVariable": "image"},
    )
    assert isinstance(report.outcome, Complete)
    body = report.outcome.variables["image"]["body"]
    assert body["contentType"] == "image/png"
    assert base64.b64decode(body["data"]) == PNG
    assert hf.requests[0].headers["accept"] == "image/png"


async def test_legacy_options_reach_the_router_as_headers(hf: Harness) -> None:
    await hf.run(_summarize(input={"inputs": "x", "options": {"wait_for_model": True, "use_cache": False}}))
    sent = hf.requests[0]
    assert sent.headers["x-wait-for-model"] == "true"
    assert sent.headers["x-use-cache"] == "false"
    assert json.loads(sent.content) == {"inputs": "x"}


async def test_a_chat_answer_is_easy_to_map(hf: Harness) -> None:
    hf.reply = lambda request: httpx.Response(
        200, json={"choices": [{"message": {"role": "assistant", "content": "4"}}], "usage": {"total_tokens": 9}}
    )
    report = await hf.run(
        {"operation": "chat", "model": "org/chat", "prompt": "2+2?", "maxTokens": 5},
        {"resultExpression": '{"answer": answer, "tokens": usage.total_tokens}'},
    )
    assert report.outcome == Complete({"answer": "4", "tokens": 9})
    assert json.loads(hf.requests[0].content)["max_tokens"] == 5


# --- secrets ----------------------------------------------------------------------------------------


async def test_a_missing_secret_fails_at_once_and_says_what_to_define(hf: Harness) -> None:
    report = await hf.run(_summarize(authentication={"token": "{{secrets.NOT_THERE}}"}))
    assert isinstance(report.outcome, Fail)
    assert report.outcome.retries == 0
    assert "Secret with name 'NOT_THERE' is not available" in report.outcome.message
    assert "SECRET_NOT_THERE" in report.outcome.message
    assert hf.requests == []


async def test_the_missing_secret_advice_uses_the_configured_prefix(hf: Harness) -> None:
    report = await hf.run(_summarize(authentication={"token": "{{secrets.NOT_THERE}}"}), env_prefix="CAMUNDA_SECRET_")
    assert isinstance(report.outcome, Fail)
    assert "CAMUNDA_SECRET_NOT_THERE" in report.outcome.message


async def test_secrets_are_resolved_in_headers_too(hf: Harness) -> None:
    hf.secrets["BACKOFF"] = "PT30S"
    hf.reply = lambda request: httpx.Response(503, text="overloaded")
    report = await hf.run(_summarize(), {"retryBackoff": "{{secrets.BACKOFF}}"}, retries=3)
    assert isinstance(report.outcome, Fail)
    assert (report.outcome.retries, report.outcome.backoff_seconds) == (2, 30.0)


async def test_a_server_echoing_the_token_never_leaks_it_into_the_result(hf: Harness) -> None:
    def echo(request: httpx.Request) -> httpx.Response:
        auth = request.headers["authorization"]
        return httpx.Response(200, json={"you_sent": auth, "escaped": json.dumps(auth)}, headers={"x-echo": auth})

    hf.reply = echo
    report = await hf.run(
        _summarize(), {"resultVariable": "r", "resultExpression": '{"copy": body.you_sent, "h": headers["x-echo"]}'}
    )
    assert isinstance(report.outcome, Complete)
    assert TOKEN not in _everything(report)
    assert report.outcome.variables["copy"] == "Bearer ***"


async def test_a_server_echoing_the_token_in_an_error_never_leaks_it(hf: Harness) -> None:
    hf.reply = lambda request: httpx.Response(401, json={"error": f"Invalid token {request.headers['authorization']}"})
    report = await hf.run(_summarize())
    assert isinstance(report.outcome, Fail)
    assert report.outcome.retries == 0
    assert report.outcome.code == "401"
    assert "Invalid token Bearer ***" in report.outcome.message
    assert "authentication.token" in report.outcome.message
    assert TOKEN not in _everything(report)


async def test_an_error_expression_cannot_leak_the_echoed_token(hf: Harness) -> None:
    hf.reply = lambda request: httpx.Response(400, text=f"bad request from {request.headers['authorization']}")
    report = await hf.run(
        _summarize(),
        {"errorExpression": 'bpmnError("HF_" ~ error.code, error.message, {"response": response, "e": error})'},
    )
    assert isinstance(report.outcome, ThrowBpmnError)
    assert report.outcome.code == "HF_400"
    assert TOKEN not in _everything(report)


async def test_an_error_expression_only_ever_sees_masked_text(hf: Harness) -> None:
    hf.reply = lambda request: httpx.Response(400, text=f"bad request from {request.headers['authorization']}")
    report = await hf.run(_summarize(), {"errorExpression": 'bpmnError("E", error.message | upper)'})
    assert TOKEN.upper() not in _everything(report)


async def test_the_worker_token_is_masked_when_echoed(hf: Harness) -> None:
    hf.reply = lambda request: httpx.Response(403, json={"error": request.headers["authorization"]})
    report = await hf.run({"model": "org/gated", "input": "x"})
    assert hf.requests[0].headers["authorization"] == f"Bearer {WORKER_TOKEN}"
    assert WORKER_TOKEN not in _everything(report)
    assert "gated" in report.outcome.message  # type: ignore[union-attr]


async def test_a_secret_in_a_refused_field_is_masked_in_the_incident(hf: Harness) -> None:
    hf.secrets["MODEL"] = "not a model/!!"
    report = await hf.run(_summarize(model="{{secrets.MODEL}}"))
    assert isinstance(report.outcome, Fail)
    assert report.outcome.retries == 0
    assert "not a model/!!" not in report.outcome.message
    assert "model" in report.outcome.message


# --- input problems ---------------------------------------------------------------------------------


async def test_a_missing_model_is_named_and_fails_at_once(hf: Harness) -> None:
    report = await hf.run({"input": "x"})
    assert isinstance(report.outcome, Fail)
    assert report.outcome.retries == 0
    assert report.outcome.code == "INVALID_INPUT"
    assert report.outcome.message.startswith("Invalid input: model:")
    assert hf.requests == []


async def test_an_invalid_header_is_named(hf: Harness) -> None:
    report = await hf.run(_summarize(), {"retryBackoff": "30 seconds"})
    assert isinstance(report.outcome, Fail)
    assert report.outcome.retries == 0
    assert "Invalid task header: retryBackoff" in report.outcome.message
    assert "PT30S" in report.outcome.message


async def test_a_broken_expression_fails_before_any_call(hf: Harness) -> None:
    report = await hf.run(_summarize(), {"resultExpression": '{"summary": body[0].}'})
    assert isinstance(report.outcome, Fail)
    assert report.outcome.retries == 0
    assert "result expression" in report.outcome.message
    assert hf.requests == []


async def test_an_input_that_cannot_become_a_request_fails_at_once(hf: Harness) -> None:
    report = await hf.run(_summarize(input="data:image/png;base64,%%%"))
    assert isinstance(report.outcome, Fail)
    assert report.outcome.retries == 0
    assert report.outcome.message.startswith("Invalid input:")
    assert "base64" in report.outcome.message
    assert hf.requests == []


async def test_a_blocked_destination_fails_without_a_call(hf: Harness) -> None:
    report = await hf.run(_summarize(endpoint="http://169.254.169.254/latest"))
    assert isinstance(report.outcome, Fail)
    assert report.outcome.code == "BLOCKED_DESTINATION"
    assert report.outcome.retries == 0
    assert hf.requests == []


# --- failures and retries ---------------------------------------------------------------------------


async def test_a_404_fails_with_no_retries(hf: Harness) -> None:
    hf.reply = lambda request: httpx.Response(404, json={"error": "Model org/x does not exist"})
    report = await hf.run(_summarize(model="org/x"), retries=3)
    assert isinstance(report.outcome, Fail)
    assert report.outcome.retries == 0
    assert report.outcome.code == "404"
    assert "Model org/x does not exist" in report.outcome.message
    assert "check the model id" in report.outcome.message
    assert report.status == 404


async def test_a_loading_model_is_retried_after_the_estimated_time(hf: Harness) -> None:
    hf.reply = lambda request: httpx.Response(503, json={"error": "Model is currently loading", "estimated_time": 20.0})
    report = await hf.run(_summarize(), retries=3)
    assert isinstance(report.outcome, Fail)
    assert report.outcome.retries == 2
    assert report.outcome.backoff_seconds == 20.0
    assert report.outcome.code == "503"


async def test_the_last_retry_does_not_go_negative(hf: Harness) -> None:
    hf.reply = lambda request: httpx.Response(502, text="bad gateway")
    report = await hf.run(_summarize(), retries=1)
    assert report.outcome.retries == 0  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("headers", "configured", "backoff"),
    [
        ({"retry-after": "7"}, None, 7.0),
        ({"ratelimit": '"api";r=0;t=55'}, None, 55.0),
        ({"retry-after": "7"}, "PT30S", 30.0),
        ({"retry-after": "55"}, "PT30S", 55.0),
        ({}, "PT10S", 10.0),
    ],
)
async def test_a_rate_limit_honours_the_server_and_the_retry_backoff_floor(
    hf: Harness, headers: dict[str, str], configured: str | None, backoff: float
) -> None:
    hf.reply = lambda request: httpx.Response(429, json={"error": "rate limited"}, headers=headers)
    task_headers = {"retryBackoff": configured} if configured else {}
    report = await hf.run(_summarize(), task_headers, retries=5)
    assert isinstance(report.outcome, Fail)
    assert report.outcome.retries == 4
    assert report.outcome.backoff_seconds == backoff


async def test_a_rate_limit_without_any_hint_still_waits(hf: Harness) -> None:
    hf.reply = lambda request: httpx.Response(429, text="slow down")
    report = await hf.run(_summarize(), retries=3)
    assert isinstance(report.outcome, Fail)
    assert report.outcome.retries == 2
    assert report.outcome.backoff_seconds > 0


async def test_a_timeout_is_408_and_says_to_raise_the_read_timeout(hf: Harness) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    hf.reply = slow
    report = await hf.run(_summarize(readTimeoutInSeconds=0.01), retries=3)
    assert isinstance(report.outcome, Fail)
    assert report.outcome.code == "408"
    assert report.outcome.retries == 2
    assert "readTimeoutInSeconds" in report.outcome.message
    assert report.status is None


async def test_an_oversized_answer_fails_without_retries(hf: Harness) -> None:
    hf.reply = lambda request: httpx.Response(200, content=b"x" * 5000, headers={"content-type": "text/plain"})
    report = await hf.run(_summarize(), max_response=2048)
    assert isinstance(report.outcome, Fail)
    assert report.outcome.code == "RESPONSE_TOO_LARGE"
    assert report.outcome.retries == 0


async def test_a_long_message_is_cut(hf: Harness) -> None:
    hf.reply = lambda request: httpx.Response(400, json={"error": ["x" * 400] * 5})
    report = await hf.run(_summarize(), max_message_chars=300)
    assert isinstance(report.outcome, Fail)
    assert len(report.outcome.message) <= 300
    assert report.outcome.message.endswith("(cut)")


async def test_the_job_deadline_is_extended_to_cover_the_call(hf: Harness) -> None:
    extensions: list[float] = []

    async def extend(seconds: float) -> None:
        extensions.append(seconds)

    job = JobContext(
        key=1, retries=3, variables=_summarize(connectionTimeoutInSeconds=5, readTimeoutInSeconds=50), headers={}
    )
    await hf.handler().handle(job, extend)
    assert extensions == [55.0]


# --- error expressions ------------------------------------------------------------------------------


async def test_an_error_expression_throws_a_bpmn_error(hf: Harness) -> None:
    hf.reply = lambda request: httpx.Response(404, json={"error": "not found"})
    report = await hf.run(
        _summarize(),
        {
            "errorExpression": 'bpmnError("MODEL_NOT_FOUND", error.message, {"status": response.status}) '
            'if error.code == "404"'
        },
    )
    assert isinstance(report.outcome, ThrowBpmnError)
    assert report.outcome.code == "MODEL_NOT_FOUND"
    assert "not found" in report.outcome.message
    assert report.outcome.variables == {"status": 404}


async def test_an_error_expression_fails_the_job_with_its_own_retries_and_backoff(hf: Harness) -> None:
    hf.reply = lambda request: httpx.Response(503, json={"error": "overloaded", "estimated_time": 5})
    report = await hf.run(
        _summarize(),
        {"errorExpression": 'jobError("busy: " ~ response.body.error, {"busy": true}, 7, "PT2M")'},
        retries=3,
    )
    assert report.outcome == Fail("busy: overloaded", 7, 120.0, {"busy": True}, "503")


async def test_a_job_error_without_retries_counts_down_and_uses_the_retry_backoff(hf: Harness) -> None:
    hf.reply = lambda request: httpx.Response(500, text="boom")
    report = await hf.run(_summarize(), {"errorExpression": 'jobError("failed")', "retryBackoff": "PT45S"}, retries=3)
    assert isinstance(report.outcome, Fail)
    assert (report.outcome.retries, report.outcome.backoff_seconds) == (2, 45.0)


async def test_a_job_error_with_negative_retries_means_no_retries(hf: Harness) -> None:
    hf.reply = lambda request: httpx.Response(500, text="boom")
    report = await hf.run(_summarize(), {"errorExpression": 'jobError("stop", {}, -4)'})
    assert report.outcome.retries == 0  # type: ignore[union-attr]


async def test_ignore_error_completes_the_job(hf: Harness) -> None:
    hf.reply = lambda request: httpx.Response(422, json={"error": ["bad input"]})
    report = await hf.run(_summarize(), {"errorExpression": 'ignoreError({"summary": "n/a", "why": error.code})'})
    assert report.outcome == Complete({"summary": "n/a", "why": "422"})


async def test_an_error_expression_that_decides_nothing_falls_back_to_the_default(hf: Harness) -> None:
    hf.reply = lambda request: httpx.Response(503, json={"error": "loading", "estimated_time": 3})
    report = await hf.run(_summarize(), {"errorExpression": 'bpmnError("X") if error.code == "404"'}, retries=3)
    assert report.outcome == Fail(report.outcome.message, 2, 3.0, {}, "503")  # type: ignore[union-attr]


async def test_an_error_expression_sees_timeouts_as_408(hf: Harness) -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    hf.reply = slow
    report = await hf.run(
        _summarize(readTimeoutInSeconds=0.01), {"errorExpression": 'bpmnError("TIMEOUT") if error.code == "408"'}
    )
    assert isinstance(report.outcome, ThrowBpmnError)
    assert report.outcome.code == "TIMEOUT"


async def test_an_error_expression_that_raises_fails_at_once(hf: Harness) -> None:
    hf.reply = lambda request: httpx.Response(500, text="boom")
    report = await hf.run(_summarize(), {"errorExpression": "1 / 0"})
    assert isinstance(report.outcome, Fail)
    assert report.outcome.code == "EXPRESSION_ERROR"
    assert report.outcome.retries == 0
    assert "error expression" in report.outcome.message


async def test_a_result_expression_that_fails_at_runtime_fails_at_once(hf: Harness) -> None:
    report = await hf.run(_summarize(), {"resultExpression": '{"x": body[5].summary_text.split()[0]}'})
    assert isinstance(report.outcome, Fail)
    assert report.outcome.code == "EXPRESSION_ERROR"
    assert report.outcome.retries == 0
    assert "result expression" in report.outcome.message
