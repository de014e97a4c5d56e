"""Log lines an operator ships to a log store: JSON with the job's context, text for a terminal, and
never a secret, whichever logger wrote the record and whatever it carried (arguments, tracebacks)."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pyzeebe.worker.job_poller import JobPoller

from hf_connector import app
from hf_connector.jobs import Complete, Fail, JobContext, Report
from hf_connector.logs import CONTEXT_FIELDS, RepeatedWarnings, configure_logging
from hf_connector.secrets import Masker
from hf_connector.zeebe import limit_repeated_gateway_warnings

SECRET = "hf_logTestSecret_9d1c3b77"
OTHER_SECRET = "client-secret-5e8a0f21"

Configure = Callable[[str], None]


@pytest.fixture
def logs(capsys: pytest.CaptureFixture[str]) -> Iterator[Configure]:
    """Configures logging as the worker does (to the captured stderr) and restores it afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    third_party = {name: logging.getLogger(name).level for name in ("httpx", "httpcore", "grpc", "pyzeebe")}

    def configure(fmt: str) -> None:
        configure_logging("INFO", fmt, Masker([SECRET, OTHER_SECRET]))

    yield configure
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)
    for name, level in third_party.items():
        logging.getLogger(name).setLevel(level)
    logging.captureWarnings(False)


def _json_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines()]


JOB = JobContext(key=2251799813685249, retries=3, variables={}, headers={}, element_id="summarize",
                 process_instance_key=2251799813685240, bpmn_process_id="invoice-summary")  # fmt: skip


def test_json_job_line_carries_the_job_context(logs: Configure, capsys: pytest.CaptureFixture[str]) -> None:
    logs("json")
    report = Report(Complete({"r": 1}), model="facebook/bart-large-cnn", status=200, call_seconds=0.4)
    app.record(JOB, report, 0.61234)
    [line] = _json_lines(capsys)
    assert line["level"] == "INFO"
    assert line["logger"] == "hf_connector"
    assert line["message"] == "job 2251799813685249 completed"
    assert {name: line[name] for name in CONTEXT_FIELDS} == {
        "job_key": 2251799813685249,
        "process_instance_key": 2251799813685240,
        "bpmn_process_id": "invoice-summary",
        "element_id": "summarize",
        "model": "facebook/bart-large-cnn",
        "status": 200,
        "duration_ms": 612.3,
        "outcome": "completed",
    }
    assert line["time"].endswith("+00:00")


@pytest.mark.parametrize(
    ("retries", "outcome", "level"),
    [(2, "failed", "WARNING"), (0, "incident", "WARNING")],
)
def test_json_failure_line_has_the_outcome_and_a_masked_message(
    logs: Configure, capsys: pytest.CaptureFixture[str], retries: int, outcome: str, level: str
) -> None:
    logs("json")
    fail = Fail(f"Hugging Face answered 401: token {SECRET} refused", retries=retries, code="401")
    app.record(JOB, Report(fail, model="m/x", status=401, call_seconds=0.1), 0.2)
    [line] = _json_lines(capsys)
    assert (line["level"], line["outcome"], line["status"]) == (level, outcome, 401)
    assert line["message"] == "job 2251799813685249 " + outcome + ": Hugging Face answered 401: token *** refused"


def test_text_line_has_the_context_after_the_message(logs: Configure, capsys: pytest.CaptureFixture[str]) -> None:
    logs("text")
    app.record(JOB, Report(Complete({}), model="m/x", status=200, call_seconds=0.1), 0.25)
    [line] = capsys.readouterr().err.splitlines()
    assert " INFO hf_connector: job 2251799813685249 completed [job_key=2251799813685249 " in line
    assert line.endswith("model=m/x status=200 duration_ms=250.0 outcome=completed]")


def _log_failure(logger: logging.Logger) -> None:
    try:
        raise ValueError(f"the gateway said: bad secret {OTHER_SECRET}")
    except ValueError:
        logger.exception("calling with %s failed", SECRET, extra={"model": f"https://e.example/?key={SECRET}"})


def test_json_masks_message_arguments_context_and_traceback(
    logs: Configure, capsys: pytest.CaptureFixture[str]
) -> None:
    logs("json")
    _log_failure(logging.getLogger("hf_connector.jobs"))
    err = capsys.readouterr().err
    assert SECRET not in err and OTHER_SECRET not in err
    [line] = [json.loads(text) for text in err.splitlines()]  # a traceback stays inside one JSON line
    assert line["message"] == "calling with *** failed"
    assert line["model"] == "https://e.example/?key=***"
    assert "Traceback" in line["exception"]
    assert "ValueError: the gateway said: bad secret ***" in line["exception"]


def test_text_masks_message_arguments_context_and_traceback(
    logs: Configure, capsys: pytest.CaptureFixture[str]
) -> None:
    logs("text")
    _log_failure(logging.getLogger("hf_connector.jobs"))
    err = capsys.readouterr().err
    assert SECRET not in err and OTHER_SECRET not in err
    first, *rest = err.splitlines()
    assert first.endswith("calling with *** failed [model=https://e.example/?key=***]")
    assert rest[0].startswith("Traceback")
    assert rest[-1] == "ValueError: the gateway said: bad secret ***"


def test_records_from_libraries_and_stack_info_are_masked(logs: Configure, capsys: pytest.CaptureFixture[str]) -> None:
    logs("json")
    logging.getLogger("grpc").warning("credentials %s rejected", OTHER_SECRET)
    record = logging.LogRecord("hf_connector", logging.WARNING, __file__, 1, "here", None, None)
    record.stack_info = f'Stack (most recent call last):\n  File "x.py", line 1, in f\n    call(token="{SECRET}")'
    record.element_id = SECRET
    logging.getLogger("hf_connector").handle(record)
    err = capsys.readouterr().err
    assert SECRET not in err and OTHER_SECRET not in err
    grpc_line, stack_line = (json.loads(text) for text in err.splitlines())
    assert grpc_line["message"] == "credentials *** rejected"
    assert stack_line["element_id"] == "***"
    assert stack_line["stack"].endswith('call(token="***")')


def test_python_warnings_become_json_lines(logs: Configure, capsys: pytest.CaptureFixture[str]) -> None:
    logs("json")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn(f"deprecated option with {SECRET}", DeprecationWarning, stacklevel=1)
    [line] = _json_lines(capsys)
    assert line["logger"] == "py.warnings"
    assert "DeprecationWarning: deprecated option with ***" in line["message"]


def test_library_debug_output_stays_quiet_at_debug_level(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level, {n: logging.getLogger(n).level for n in ("httpx", "httpcore", "pyzeebe")}
    try:
        configure_logging("DEBUG", "text", Masker())
        assert logging.getLogger("hf_connector").isEnabledFor(logging.DEBUG)
        assert not logging.getLogger("pyzeebe").isEnabledFor(logging.DEBUG)  # it logs whole job payloads
        assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)  # one line per request otherwise
    finally:
        root.handlers[:], level, third_party = saved[0], saved[1], saved[2]
        root.setLevel(level)
        for name, value in third_party.items():
            logging.getLogger(name).setLevel(value)
        logging.captureWarnings(False)


# --- a warning that repeats every few seconds ------------------------------------------------------


def _record(name: str, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(name, logging.WARNING, __file__, 1, msg, args, None)


def test_a_repeating_warning_shows_first_then_once_a_minute_with_the_count() -> None:
    clock = [0.0]
    limit = RepeatedWarnings(clock=lambda: clock[0])
    shown = []
    for second in range(0, 125, 5):  # every 5 s for two minutes, as pyzeebe retries an unreachable gateway
        clock[0] = float(second)
        record = _record("pyzeebe.worker.job_poller", "Failed to activate jobs. Exception: %s. Retrying", "UNAVAILABLE")
        if limit.filter(record):
            shown.append((second, record.getMessage()))
    assert shown == [
        (0, "Failed to activate jobs. Exception: UNAVAILABLE. Retrying"),
        (60, "Failed to activate jobs. Exception: UNAVAILABLE. Retrying (11 more like this in the last 60 s)"),
        (120, "Failed to activate jobs. Exception: UNAVAILABLE. Retrying (11 more like this in the last 60 s)"),
    ]


def test_different_warnings_are_not_held_back_by_each_other() -> None:
    limit = RepeatedWarnings(clock=lambda: 0.0)
    assert limit.filter(_record("pyzeebe.worker.job_poller", "one"))
    assert limit.filter(_record("pyzeebe.worker.job_poller", "two"))
    assert limit.filter(_record("hf_connector.zeebe.gateway", "one"))
    assert not limit.filter(_record("pyzeebe.worker.job_poller", "one"))


@pytest.fixture
def gateway_loggers() -> Iterator[list[logging.Logger]]:
    loggers = [logging.getLogger(JobPoller.__module__), logging.getLogger("hf_connector.zeebe.gateway")]
    saved = [logger.filters[:] for logger in loggers]
    yield loggers
    for logger, filters in zip(loggers, saved, strict=True):
        logger.filters[:] = filters


def test_pyzeebe_poller_and_stream_warnings_are_limited(
    caplog: pytest.LogCaptureFixture, gateway_loggers: list[logging.Logger]
) -> None:
    limit_repeated_gateway_warnings()
    limit_repeated_gateway_warnings()  # idempotent: run() may be called more than once in a process
    caplog.set_level(logging.WARNING)
    for logger in gateway_loggers:
        for _ in range(3):
            logger.warning("Failed to reach the gateway %s", "UNAVAILABLE")
    assert [r.name for r in caplog.records] == [JobPoller.__module__, "hf_connector.zeebe.gateway"]
