"""The README's first run, as a newcomer meets it: `make demo`; `make run`, then `make example` and
`make incidents` from a second terminal. Each command runs as the Makefile runs it (`python -m devkit...`),
as its own process; `make run` gets free ports instead of 26500/8080 so it cannot collide with anything on
the machine, and its worker calls the test's Hugging Face stand-in."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devkit.examples import example_names
from devkit.hf_standin import HfStandin, Reply
from tests.support.connector import REPO, free_port
from tests.support.waiting import wait_until

pytestmark = pytest.mark.e2e

CHAT_MODEL = "meta-llama/Llama-3.1-8B-Instruct:fastest"


def _clean_env(**extra: str) -> dict[str, str]:
    """The machine's environment without any Camunda, Zeebe or Hugging Face setting of the test session."""
    prefixes = ("SECRET_", "HF_", "CAMUNDA_", "ZEEBE_", "ENGINE")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)} | extra


@dataclass
class DevRun:
    process: subprocess.Popen[bytes]
    log: Path
    grpc_port: int
    rest_port: int

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    def devkit(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        """A second terminal: `python -m devkit.<args>` pointed at this `make run`."""
        return subprocess.run(
            [sys.executable, "-m", *args],
            cwd=REPO,
            env=_clean_env(ZEEBE_ADDRESS=f"127.0.0.1:{self.grpc_port}", CAMUNDA_REST_ADDRESS=self.rest_url, **env),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def dev_run(hf: HfStandin, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevRun]:
    tmp = tmp_path_factory.mktemp("first-run")
    grpc_port, rest_port = free_port(), free_port()
    log = tmp / "make-run.log"
    ports = ["--port", str(grpc_port), "--rest-port", str(rest_port)]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "devkit.run", "--data", str(tmp / "engine"), *ports],
            cwd=REPO,
            env=_clean_env(
                SECRET_HUGGING_FACE_TOKEN="hf_firstRunToken_0b1c",
                HF_INFERENCE_ENDPOINT=hf.url,
                HF_CONNECTOR_HTTP_HOST="127.0.0.1",
                HF_CONNECTOR_HTTP_PORT=str(free_port()),
                HF_CONNECTOR_SECRETS_DIR="",
            ),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    run = DevRun(process, log, grpc_port, rest_port)
    try:
        wait_until(
            lambda: "make example NAME=summarization" in run.output() or process.poll() is not None,
            60,
            "make run to deploy the examples and say how to start one",
        )
        assert process.poll() is None, f"make run exited with {process.returncode}:\n{run.output()}"
        yield run
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(40)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


def test_make_run_deploys_the_examples_and_says_how_to_start_one(dev_run: DevRun) -> None:
    output = dev_run.output()
    assert "Engine: development engine at 127.0.0.1:" in output
    assert f"Deployed {len(example_names())} example process(es)" in output
    assert "make example NAME=summarization" in output and "make incidents" in output


def test_make_example_prints_the_result(dev_run: DevRun, hf: HfStandin) -> None:
    done = dev_run.devkit("devkit.examples", "run", "summarization")
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"summarization \(process instance \d+\): COMPLETED", done.stdout), done.stdout
    assert "  summary = " in done.stdout
    assert "  myHuggingFaceResponse = the raw HTTP 200 response" in done.stdout
    assert hf.requests_for("facebook/bart-large-cnn")[-1].json["inputs"].startswith("Java is a high-level")


def test_make_example_takes_vars(dev_run: DevRun, hf: HfStandin) -> None:
    done = dev_run.devkit("devkit.examples", "run", "chat", VARS='{"question": "Which port does Zeebe use?"}')
    assert done.returncode == 0, done.stdout + done.stderr
    assert '  answer = "' in done.stdout
    messages = hf.requests_for(CHAT_MODEL)[-1].json["messages"]
    assert "Which port does Zeebe use?" in str(messages)


def test_an_incident_is_shown_listed_and_retried_once_the_cause_is_gone(dev_run: DevRun, hf: HfStandin) -> None:
    hf.script(CHAT_MODEL, Reply.error(401, "Invalid credentials in Authorization header"))
    stopped = dev_run.devkit("devkit.examples", "run", "chat")
    assert stopped.returncode == 1, stopped.stdout + stopped.stderr
    assert "stopped by an incident" in stopped.stdout
    assert "The API key was refused" in stopped.stdout
    assert "make incidents RETRY=1" in stopped.stdout
    key = re.search(r"chat \(process instance (\d+)\)", stopped.stdout)
    assert key is not None, stopped.stdout

    listed = dev_run.devkit("devkit.examples", "incidents")
    assert listed.returncode == 0, listed.stderr
    assert "hf-example-chat" in listed.stdout and "The API key was refused" in listed.stdout

    retried = dev_run.devkit("devkit.examples", "incidents", RETRY="1")  # the scripted 401 was the only one
    assert retried.returncode == 0, retried.stderr
    assert "Retried 1 incident(s)." in retried.stdout

    def state() -> str:
        return str(httpx.get(f"{dev_run.rest_url}/v2/process-instances/{key[1]}").json()["state"])

    wait_until(lambda: state() == "COMPLETED", 30, "the retried chat instance to complete")
    assert "No open incidents." in dev_run.devkit("devkit.examples", "incidents").stdout


def test_make_run_stops_its_engine_on_sigterm(dev_run: DevRun) -> None:
    dev_run.process.send_signal(signal.SIGTERM)
    assert dev_run.process.wait(40) == 0, dev_run.output()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{dev_run.rest_url}/v2/topology")


def test_make_demo_completes_every_example_and_says_the_answers_are_the_stand_ins() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "devkit.demo"],
        cwd=REPO,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "STAND-IN" in done.stdout.splitlines()[0]
    names = example_names()
    for name in names:
        assert re.search(rf"^{name} \(process instance \d+\): COMPLETED$", done.stdout, re.MULTILINE), name
    assert f"{len(names)} of {len(names)} example(s) completed (answers from the Hugging Face stand-in)." in done.stdout
