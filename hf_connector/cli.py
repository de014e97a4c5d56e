"""`hf-connector`: run the worker, check a deployment, make one call without Zeebe, write the template.

Development tooling (a local engine, the examples) lives in devkit/, outside the product: nothing here imports it."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from hf_connector.config import ConfigurationError, Settings, load_settings


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(invoke_without_command=True)
@click.pass_context
def main(context: click.Context) -> None:
    """Hugging Face connector for Camunda 8."""
    if context.invoked_subcommand is None:
        context.invoke(run)


@main.command()
def run() -> None:
    """Run the worker until SIGTERM or Ctrl-C."""
    from hf_connector.app import run as run_worker

    settings = _settings()
    try:
        code = asyncio.run(run_worker(settings))
    except KeyboardInterrupt:  # Ctrl-C before the worker installed its signal handlers
        code = 130
    except Exception:
        # A bug of ours: one log record (masked, one JSON line in JSON mode), then exit 1 for a restart.
        logging.getLogger("hf_connector").critical("hf-connector crashed; exiting with code 1", exc_info=True)
        code = 1
    sys.exit(code)


@main.command()
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for each check.")
def check(timeout: float) -> None:
    """Validate the configuration, reach Zeebe and the Hugging Face endpoint; exit 1 with reasons."""
    from hf_connector.checks import run_checks

    settings = _settings()
    problems = asyncio.run(run_checks(settings, timeout))
    for line in problems.report_lines():
        click.echo(line)
    sys.exit(1 if problems.failed else 0)


@main.command()
@click.option("--model", required=True, help="Model id (org/name) or endpoint URL.")
@click.option("--input", "input_json", default=None, help="The request body as JSON (inference, embeddings).")
@click.option("--operation", default="inference", type=click.Choice(["inference", "chat", "embeddings"]))
@click.option("--prompt", default=None, help="Chat: a single user message.")
@click.option("--variable", "-v", "extra", multiple=True, help="Another input variable as NAME=JSON.")
def call(model: str, input_json: str | None, operation: str, prompt: str | None, extra: tuple[str, ...]) -> None:
    """One inference without Zeebe; prints {status, headers, body} (or the failure) as JSON."""
    from hf_connector.checks import call_once

    variables: dict[str, Any] = {"model": model, "operation": operation}
    if input_json is not None:
        variables["input"] = _json_arg(input_json, "--input")
    if prompt is not None:
        variables["prompt"] = prompt
    for item in extra:
        name, _, value = item.partition("=")
        variables[name] = _json_arg(value, f"--variable {name}")
    ok, output = asyncio.run(call_once(_settings(), variables))
    click.echo(json.dumps(output, indent=2, ensure_ascii=False))
    sys.exit(0 if ok else 1)


def _json_arg(text: str, option: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        if text.lstrip()[:1] in ("{", "["):
            raise click.BadParameter(f"{option} is not valid JSON") from None
        return text


@main.command()
@click.argument("directory", default="element-templates", type=click.Path(file_okay=False, path_type=Path))
def template(directory: Path) -> None:
    """Write the element template (generated from the job contract) into DIRECTORY."""
    from hf_connector.template import write_template

    click.echo(str(write_template(directory)))
