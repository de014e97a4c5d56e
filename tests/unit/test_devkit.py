"""devkit/ without an engine: what a newcomer's first commands print and refuse, and that the product
stays apart from the development tools."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from devkit import engines, examples
from devkit.examples import Outcome, default_variables, describe, example_names
from devkit.hf_standin import PNG_SIGNATURE
from tests.support.connector import free_port

ROOT = Path(__file__).resolve().parents[2]
FEEL_WORDS = {"true", "false", "null", "and", "or", "not", "if", "then", "else", "for", "in", "return"}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_product_never_imports_devkit() -> None:
    offenders = [
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "hf_connector").rglob("*.py")
        if any(name == "devkit" or name.startswith("devkit.") for name in _imports(path))
    ]
    assert offenders == []


def test_the_wheel_holds_the_product_only(tmp_path: Path) -> None:
    """No devkit, tests or tooling in what `pip install` brings: only hf_connector/ and the metadata. The
    wheel is built from a copy of the tree as git has it, so no stale build/ folder can hide a file."""
    source, wheels = tmp_path / "source", tmp_path / "wheels"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels)]
    subprocess.run([*pip_wheel, str(source)], check=True, capture_output=True)
    (wheel,) = wheels.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "hf_connector/zeebe.py" in names
    outside = [n for n in names if not n.startswith("hf_connector/") and ".dist-info/" not in n]
    assert outside == []


def _variables_read(bpmn: Path) -> set[str]:
    """Names of process variables the example's input mappings read and no mapping of its own writes
    (strings, context keys, path steps and FEEL's own words left out): what a start must bring."""
    text = bpmn.read_text(encoding="utf-8")
    written = set(re.findall(r'<zeebe:output source="[^"]*" target="([^".]*)', text))
    names: set[str] = set()
    for source in re.findall(r'<zeebe:input source="=([^"]*)"', text):
        expression = re.sub(r"&#34;.*?&#34;|\"[^\"]*\"", "", source)  # string literals
        expression = re.sub(r"[A-Za-z_][\w]*\s*:", "", expression)  # context keys
        expression = re.sub(r"\.\s*[A-Za-z_]\w*", "", expression)  # path steps
        expression = re.sub(r"(?:is defined|[A-Za-z_]\w*)\s*\(", "(", expression)  # function names
        names |= {n for n in re.findall(r"[A-Za-z_]\w*", expression) if n not in FEEL_WORDS}
    return names - written


@pytest.mark.parametrize("name", example_names())
def test_each_example_has_defaults_for_every_variable_it_reads(name: str) -> None:
    defaults = default_variables(name)
    assert defaults, f"{name} has no documented default variables"
    missing = _variables_read(ROOT / "bpmn-examples" / f"{name}.bpmn") - defaults.keys()
    assert not missing, f"make example NAME={name} would start without {sorted(missing)}"


def test_the_captioning_default_is_the_bundled_png() -> None:
    assert default_variables("image-captioning")["image"] == examples.Upload(examples.IMAGE, "image/png"), (
        "make example uploads the bundled PNG and passes its document reference"
    )
    assert examples.IMAGE.read_bytes().startswith(PNG_SIGNATURE)


def test_unknown_example_names_the_ones_there_are() -> None:
    result = CliRunner().invoke(examples.main, ["run", "no-such-example"])
    assert result.exit_code == 2
    for name in example_names():
        assert name in result.output


@pytest.mark.parametrize(
    ("vars_text", "message"),
    [("{not json", "VARS is not valid JSON"), ('["a list"]', "VARS must be a JSON object")],
)
def test_bad_vars_get_a_clear_message(vars_text: str, message: str) -> None:
    result = CliRunner().invoke(examples.main, ["run", "chat"], env={"VARS": vars_text})
    assert result.exit_code == 2
    assert message in result.output


def test_results_shorten_long_values_and_incidents_say_how_to_retry() -> None:
    variables = {
        "image": {"data": "A" * 5000},
        "embedding": [0.5] * 384,
        "imageResponse": {"status": 200, "headers": {}, "body": {"data": "A" * 5000}},
    }
    done = describe(Outcome("text-to-image", 7, "COMPLETED", variables=variables), 60)
    assert done[0] == "text-to-image (process instance 7): COMPLETED"
    assert '  embedding = [0.5, 0.5, 0.5, 0.5, 0.5, "... 379 more"]' in done
    assert "  imageResponse = the raw HTTP 200 response (status, headers, body)" in done
    assert "... (5000 characters)" in "\n".join(done)
    assert len("\n".join(done)) < 1000

    incident = {"errorType": "JOB_NO_RETRIES", "elementId": "task", "errorMessage": "401 from Hugging Face"}
    stopped = describe(Outcome("chat", 8, "INCIDENT", incidents=[incident]), 60)
    assert "JOB_NO_RETRIES at task: 401 from Hugging Face" in "\n".join(stopped)
    assert "make incidents RETRY=1" in stopped[-1]


def test_an_unknown_engine_choice_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ZEEBE_ADDRESS", raising=False)
    monkeypatch.setenv("ENGINE", "zeebe")
    with pytest.raises(engines.EngineUnavailableError, match="ENGINE='zeebe': use devkit"):
        engines.start_engine(tmp_path, fixed_ports=False)


def test_zeebe_address_starts_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ZEEBE_ADDRESS", "camunda.example:26500")
    monkeypatch.setenv("CAMUNDA_REST_ADDRESS", "https://camunda.example")
    monkeypatch.setenv("ENGINE", "camunda")  # an address given wins: nothing is started at all
    engine = engines.start_engine(tmp_path, fixed_ports=True)
    assert (engine.address, engine.rest_url, engine.records_path) == (
        "camunda.example:26500",
        "https://camunda.example",
        None,
    )
    engine.stop()
    assert list(tmp_path.iterdir()) == []


def test_engine_camunda_without_docker_says_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("ZEEBE_ADDRESS", raising=False)
    monkeypatch.setenv("ENGINE", "camunda")
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{free_port()}")  # nothing listens there
    with pytest.raises(engines.EngineUnavailableError, match="is a Docker engine running"):
        engines.start_engine(tmp_path, fixed_ports=False)
