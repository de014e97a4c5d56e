"""``make example`` and ``make incidents``: start an example process and see its outcome, list and retry incidents.

``python -m devkit.examples run NAME [--vars JSON]`` starts ``hf-example-NAME`` with the example's documented
variables (``--vars`` or the ``VARS`` environment variable replaces or adds to them), waits for it, and prints
its result variables or the incident that stopped it. ``python -m devkit.examples incidents [--retry]`` lists
the open incidents and, with ``--retry`` (or ``RETRY=1``), gives each job one retry and resolves the incident.

gRPC (``ZEEBE_ADDRESS`` and the OAuth settings, as the worker reads them) starts instances; the REST API at
``CAMUNDA_REST_ADDRESS`` (default http://127.0.0.1:8080) reports state, variables and incidents.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from pyzeebe import ZeebeClient

from devkit.engines import rest_url
from devkit.rest import ApiError, OrchestrationApi
from hf_connector.config import ConfigurationError, load_settings
from hf_connector.zeebe import create_channel

EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "bpmn-examples"
IMAGE = Path(__file__).resolve().parent / "example-image.png"

SUMMARIZATION_TEXT = (
    "Java is a high-level, class-based, object-oriented programming language that is designed to have as few "
    "implementation dependencies as possible. It is a general-purpose programming language intended to let "
    "programmers write once, run anywhere (WORA), meaning that compiled Java code can run on all platforms "
    "that support Java without the need to recompile. Java applications are typically compiled to bytecode "
    "that can run on any Java virtual machine (JVM) regardless of the underlying computer architecture. The "
    "syntax of Java is similar to C and C++, but has fewer low-level facilities than either of them. The Java "
    "runtime provides dynamic capabilities (such as reflection and runtime code modification) that are "
    "typically not available in traditional compiled languages."
)


@dataclass(frozen=True)
class Upload:
    """A start variable that is a file: uploaded to the document store first, passed as its reference."""

    path: Path
    content_type: str


def default_variables(name: str) -> dict[str, Any]:
    """The documented start variables of each example in bpmn-examples/ (docs/development.md lists them)."""
    defaults: dict[str, dict[str, Any]] = {
        "summarization": {"text": SUMMARIZATION_TEXT},
        "chat": {"question": "What is BPMN, in two sentences?"},
        "embeddings": {"text": "Camunda runs BPMN processes; a job worker calls Hugging Face models for them."},
        "error-handling": {
            "modelId": "distilbert/distilbert-base-uncased-finetuned-sst-2-english",
            "text": "I love how simple this process is.",
        },
        "image-captioning": {"image": Upload(IMAGE, "image/png")},
        "text-to-image": {"imagePrompt": "a lighthouse at dusk, watercolour"},
        "structured-extraction": {
            "text": "Hi, this is Ada Lovelace (ada@example.com). Please book the 120.50 EUR invoice to my account.",
        },
        "tool-loop": {"question": "Summarize this for me: " + SUMMARIZATION_TEXT},
    }
    return dict(defaults.get(name, {}))


def example_names() -> list[str]:
    return sorted(path.stem for path in EXAMPLES_DIR.glob("*.bpmn"))


@dataclass
class Outcome:
    name: str
    process_instance_key: int
    state: str
    """COMPLETED, TERMINATED, INCIDENT, or ACTIVE when the wait ran out."""
    variables: dict[str, Any] = field(default_factory=dict)
    incidents: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.state == "COMPLETED"


async def run_example(
    zeebe: ZeebeClient, api: OrchestrationApi, name: str, variables: dict[str, Any], timeout: float = 60.0
) -> Outcome:
    """Uploads the files among the variables, starts ``hf-example-NAME`` and polls the REST API until it
    completes, ends or has an incident."""
    variables = {
        key: await api.upload_document(value.path.read_bytes(), value.content_type, value.path.name)
        if isinstance(value, Upload)
        else value
        for key, value in variables.items()
    }
    created = await zeebe.run_process(f"hf-example-{name}", variables=variables)
    key = created.process_instance_key
    deadline = time.monotonic() + timeout
    state = "ACTIVE"
    while time.monotonic() < deadline:
        instance = await api.process_instance(key)
        if instance is not None:
            state = str(instance.get("state", "ACTIVE"))
            if state != "ACTIVE":
                break
            if instance.get("hasIncident"):
                incidents = await api.active_incidents(key)
                if incidents:
                    return Outcome(name, key, "INCIDENT", incidents=incidents)
        await asyncio.sleep(0.2)
    results = {k: v for k, v in (await api.variables(key)).items() if k not in variables}
    return Outcome(name, key, state, variables=results)


def describe(outcome: Outcome, timeout: float) -> list[str]:
    """What a person reads: the result variables (long strings shortened), or why there are none."""
    head = f"{outcome.name} (process instance {outcome.process_instance_key}):"
    if outcome.state == "INCIDENT":
        lines = [f"{head} stopped by an incident"]
        for incident in outcome.incidents:
            lines.append(
                f"  {incident.get('errorType')} at {incident.get('elementId')}: {incident.get('errorMessage')}"
            )
        lines.append("  Fix the cause, then retry: make incidents RETRY=1")
        return lines
    if outcome.state == "ACTIVE":
        return [f"{head} still running after {timeout:g} s (is the worker running? `make run` starts one)"]
    lines = [f"{head} {outcome.state}"]
    for name, value in sorted(outcome.variables.items()):
        if _is_raw_response(value):
            lines.append(f"  {name} = the raw HTTP {value['status']} response (status, headers, body)")
        else:
            lines.append(f"  {name} = {json.dumps(_shorten(value), ensure_ascii=False)}")
    return lines


def _is_raw_response(value: Any) -> bool:
    """The task's result variable ({status, headers, body}, and for chat its answer), already read by the
    result expression into the variables printed beside it."""
    return isinstance(value, dict) and {"status", "headers", "body"} <= value.keys()


def _shorten(value: Any, chars: int = 300, items: int = 5) -> Any:
    """Long strings (an image's base64) and long lists (an embedding) cut to what a terminal shows."""
    if isinstance(value, str) and len(value) > chars:
        return f"{value[:chars]}... ({len(value)} characters)"
    if isinstance(value, dict):
        return {k: _shorten(v, chars, items) for k, v in value.items()}
    if isinstance(value, list):
        shown = [_shorten(v, chars, items) for v in value[:items]]
        return [*shown, f"... {len(value) - items} more"] if len(value) > items else shown
    return value


def describe_incident(incident: dict[str, Any]) -> str:
    return (
        f"{incident.get('incidentKey')}  {incident.get('processDefinitionId')}  {incident.get('elementId')}  "
        f"{incident.get('errorType')}: {incident.get('errorMessage')}"
    )


def _zeebe_channel() -> Any:
    try:
        return create_channel(load_settings())
    except ConfigurationError as error:
        raise click.ClickException(str(error)) from None


@click.group()
def main() -> None:
    """Start the example processes in bpmn-examples/ and look after their incidents."""


@main.command("run")
@click.argument("name", required=False, default="")
@click.option("--vars", "extra", envvar="VARS", default="", help="JSON object of start variables (env VARS).")
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for the outcome.")
def run_command(name: str, extra: str, timeout: float) -> None:
    """Start example NAME with its default variables, wait, and print its result or incident."""
    names = example_names()
    if name not in names:
        raise click.UsageError(f"NAME must be one of: {', '.join(names)} (e.g. make example NAME=summarization)")
    variables = default_variables(name) | _parse_vars(extra)
    outcome = asyncio.run(_run_one(name, variables, timeout))
    for line in describe(outcome, timeout):
        click.echo(line)
    sys.exit(0 if outcome.ok else 1)


def _parse_vars(text: str) -> dict[str, Any]:
    if not text.strip():
        return {}
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as error:
        raise click.BadParameter(f"VARS is not valid JSON ({error})", param_hint="VARS") from None
    if not isinstance(parsed, dict):
        raise click.BadParameter('VARS must be a JSON object such as {"text": "..."}', param_hint="VARS")
    return parsed


async def _run_one(name: str, variables: dict[str, Any], timeout: float) -> Outcome:
    channel = _zeebe_channel()
    try:
        async with OrchestrationApi(rest_url()) as api:
            return await run_example(ZeebeClient(channel), api, name, variables, timeout)
    except ApiError as error:
        raise click.ClickException(str(error)) from None
    finally:
        await channel.close()


@main.command("incidents")
@click.option("--retry", is_flag=True, envvar="RETRY", help="Retry each incident once (env RETRY=1).")
def incidents_command(retry: bool) -> None:
    """List the open incidents; with --retry, give each job a retry and resolve the incident."""
    try:
        lines = asyncio.run(_incidents(retry))
    except ApiError as error:
        raise click.ClickException(str(error)) from None
    for line in lines:
        click.echo(line)


async def _incidents(retry: bool) -> list[str]:
    async with OrchestrationApi(rest_url()) as api:
        open_incidents = await api.active_incidents()
        if not open_incidents:
            return ["No open incidents."]
        lines = [describe_incident(incident) for incident in open_incidents]
        if not retry:
            return [*lines, "Fix the cause, then: make incidents RETRY=1"]
        for incident in open_incidents:
            await api.retry_incident(incident)
        return [*lines, f"Retried {len(open_incidents)} incident(s)."]


if __name__ == "__main__":
    main()
