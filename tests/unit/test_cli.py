"""`hf-connector`, as an operator uses it at a terminal: check, call, template, run, --help."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from devkit.hf_standin import HfStandin, Reply
from hf_connector.cli import main
from tests.support.connector import REPO, free_port

TOKEN = "hf_cliTestToken_4c2e91aa"
CLIENT_SECRET = "cliClientSecret_0b3f77d2"


def _env(**overrides: str) -> dict[str, str | None]:
    """Nothing inherited that configures the worker (None removes a variable), plus `overrides`."""
    inherited = {k: None for k in os.environ if k.startswith(("HF_", "CAMUNDA_", "ZEEBE_", "SECRET_"))}
    return {**inherited, "HF_CONNECTOR_SECRETS_DIR": "", **overrides}


def _invoke(args: list[str], **env: str) -> Result:
    return CliRunner().invoke(main, args, env=_env(**env), catch_exceptions=False)


def _subprocess(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in {**os.environ, **_env(**env)}.items() if v is not None}
    return subprocess.run(
        [sys.executable, "-m", "hf_connector", *args],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _closed_address() -> str:
    return f"127.0.0.1:{free_port()}"


# --- check --------------------------------------------------------------------------------------


def test_check_fails_with_a_reason_for_each_unreachable_service() -> None:
    zeebe, hugging_face = _closed_address(), _closed_address()
    result = _invoke(
        ["check", "--timeout", "5"],
        ZEEBE_ADDRESS=zeebe,
        HF_INFERENCE_ENDPOINT=f"http://{hugging_face}",
        HF_TOKEN=TOKEN,
        HF_CONNECTOR_JOB_TYPE="hugging-face-ops",
    )
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert "ok      configuration is valid" in lines
    assert any(line.startswith("ok      job type 'hugging-face-ops' (worker name 'hf-connector'") for line in lines)
    assert f"ok      Zeebe connection: {zeebe} (plaintext, no authentication)" in lines
    assert "ok      HF_TOKEN is set: the default API key for tasks that give no authentication.token" in lines
    failed = [line for line in lines if line.startswith("FAILED")]
    assert len(failed) == 2, result.output
    assert failed[0].startswith(f"FAILED  Zeebe at {zeebe} is not reachable: UNAVAILABLE")
    assert failed[1].startswith(f"FAILED  Hugging Face endpoint http://{hugging_face} is not reachable: ConnectError")
    assert TOKEN not in result.output


def test_check_names_the_oauth_client_but_never_its_secret() -> None:
    zeebe = _closed_address()
    result = _invoke(
        ["check", "--timeout", "5"],
        ZEEBE_ADDRESS=zeebe,
        HF_INFERENCE_ENDPOINT=f"http://{_closed_address()}",
        CAMUNDA_CLIENT_ID="ops-client",
        CAMUNDA_CLIENT_SECRET=CLIENT_SECRET,
        CAMUNDA_OAUTH_URL=f"http://{_closed_address()}/token",
    )
    assert result.exit_code == 1
    assert f"ok      Zeebe connection: {zeebe} (TLS, OAuth client id ops-client, token URL http" in result.output
    assert "ok      HF_TOKEN is not set: every task must give authentication.token" in result.output
    assert "FAILED  Zeebe at" in result.output
    assert CLIENT_SECRET not in result.output


@pytest.mark.e2e
def test_check_passes_when_zeebe_and_hugging_face_answer(zeebe_address: str, hf: HfStandin) -> None:
    result = _invoke(["check"], ZEEBE_ADDRESS=zeebe_address, HF_INFERENCE_ENDPOINT=hf.url, HF_TOKEN=TOKEN)
    assert result.exit_code == 0, result.output
    assert f"ok      Zeebe at {zeebe_address}: 1 broker(s), version " in result.output
    assert f"ok      Hugging Face endpoint {hf.url} answers (HTTP " in result.output
    assert "FAILED" not in result.output
    assert TOKEN not in result.output


def test_check_with_an_invalid_configuration_names_the_variable() -> None:
    result = _invoke(["check"], HF_CONNECTOR_MAX_JOBS="0")
    assert result.exit_code == 1
    assert "HF_CONNECTOR_MAX_JOBS" in result.output


# --- call ---------------------------------------------------------------------------------------


@pytest.fixture
def model() -> str:
    return f"acme/cli-model-{uuid.uuid4().hex[:8]}"


def test_call_prints_status_headers_and_body(hf: HfStandin, model: str) -> None:
    answer = [{"label": "POSITIVE", "score": 0.98}]
    hf.script(model, Reply(json=answer, headers={"x-inference-provider": "hf-inference"}))
    result = _invoke(
        ["call", "--model", model, "--input", '{"inputs": "I love this"}'],
        HF_INFERENCE_ENDPOINT=hf.url,
        HF_TOKEN=TOKEN,
    )
    assert result.exit_code == 0, result.output
    output = json.loads(result.stdout)
    assert set(output) == {"status", "headers", "body"}
    assert output["status"] == 200
    assert output["headers"]["x-inference-provider"] == "hf-inference"
    assert output["body"] == answer
    [request] = hf.requests_for(model)
    assert request.path == f"/hf-inference/models/{model}"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.json == {"inputs": "I love this"}


def test_call_exits_1_with_the_error_on_a_404(hf: HfStandin, model: str) -> None:
    hf.script(model, Reply.error(404, f"Model {model} does not exist"))
    result = _invoke(
        ["call", "--model", model, "--input", '{"inputs": "hello"}'], HF_INFERENCE_ENDPOINT=hf.url, HF_TOKEN=TOKEN
    )
    assert result.exit_code == 1
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "404"
    assert f"Model {model} does not exist" in error["message"]
    assert TOKEN not in result.output


def test_call_rejects_broken_json_input() -> None:
    result = _invoke(["call", "--model", "m/x", "--input", "{not json"])
    assert result.exit_code == 2
    assert "--input is not valid JSON" in result.output


# --- template -----------------------------------------------------------------------------------


def test_template_writes_the_committed_template(tmp_path: Path) -> None:
    result = _invoke(["template", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    written = tmp_path / "out" / "hugging-face-connector.json"
    assert result.output.strip() == str(written)
    committed = REPO / "element-templates" / "hugging-face-connector.json"
    assert written.read_bytes() == committed.read_bytes()


# --- run ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"HF_CONNECTOR_MAX_JOBS": "0"}, "HF_CONNECTOR_MAX_JOBS"),
        ({"HF_INFERENCE_ENDPOINT": "ftp://x"}, "HF_INFERENCE_ENDPOINT"),
        ({"CAMUNDA_CLIENT_ID": "ops-client"}, "CAMUNDA_CLIENT_SECRET"),
        ({"ZEEBE_CLIENT_ID": "ops-client"}, "CAMUNDA_CLIENT_SECRET"),
        ({"HF_CONNECTOR_LIVENESS_GRACE_SECONDS": "0"}, "HF_CONNECTOR_LIVENESS_GRACE_SECONDS"),
    ],
    ids=["max-jobs-0", "endpoint-ftp", "client-id-without-secret", "legacy-client-id-without-secret", "grace-0"],
)
def test_run_with_an_invalid_configuration_names_the_variable(env: dict[str, str], variable: str) -> None:
    result = _invoke(["run"], **env)
    assert result.exit_code == 1
    assert result.output.splitlines()[0] == "Error: Invalid configuration:"
    [problem] = result.output.splitlines()[1:]
    assert problem.startswith("- ") and variable in problem, problem


def test_run_with_several_problems_prints_one_line_each_and_no_traceback() -> None:
    variables = ["HF_CONNECTOR_MAX_JOBS", "HF_CONNECTOR_LOG_FORMAT", "HF_CONNECTOR_HTTP_PORT"]
    result = _subprocess(
        ["run"], HF_CONNECTOR_MAX_JOBS="many", HF_CONNECTOR_LOG_FORMAT="xml", HF_CONNECTOR_HTTP_PORT="99999"
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    problems = result.stderr.splitlines()[1:]
    assert len(problems) == len(variables), result.stderr
    for variable in variables:
        assert len([line for line in problems if line.startswith("- ") and variable in line]) == 1, variable


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_run_exits_1_with_one_line_when_the_ops_port_is_taken(busy_port: int) -> None:
    result = _subprocess(
        ["run"],
        ZEEBE_ADDRESS=_closed_address(),
        HF_CONNECTOR_HTTP_HOST="127.0.0.1",
        HF_CONNECTOR_HTTP_PORT=str(busy_port),
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert f"cannot listen on 127.0.0.1:{busy_port}" in line
    assert "HF_CONNECTOR_HTTP_PORT" in line


def test_run_exits_1_with_one_line_when_the_ca_certificate_is_missing(tmp_path: Path) -> None:
    missing = tmp_path / "ca.pem"
    result = _subprocess(["run"], ZEEBE_ADDRESS=_closed_address(), ZEEBE_CA_CERTIFICATE_PATH=str(missing))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()
    assert "ZEEBE_CA_CERTIFICATE_PATH cannot be read" in line
    assert str(missing) in line


def test_python_m_worker_help_lists_the_commands() -> None:
    result = _subprocess(["--help"])
    assert result.returncode == 0, result.stderr
    assert "Hugging Face connector for Camunda 8" in result.stdout
    for command in ("run", "check", "call", "template"):
        assert f"  {command} " in result.stdout, command
    assert "  dev " not in result.stdout, "development tooling belongs to devkit/, not to the product CLI"
