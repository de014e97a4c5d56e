"""``make run``: from a fresh clone to a worker serving the example processes, in one command.

Uses the Camunda at ``ZEEBE_ADDRESS`` when it is set; otherwise starts an engine (the development engine on
127.0.0.1:26500, REST on 8080, data in ``.cache/engine``; ``ENGINE=camunda`` for Camunda in Docker) and stops
it on exit. Deploys bpmn-examples/*.bpmn, says how to start an example, then runs the worker in the
foreground until Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import click
from pyzeebe import ZeebeClient

from devkit.engines import REST_ADDRESS_ENV, EngineUnavailableError, start_engine
from devkit.examples import EXAMPLES_DIR, example_names
from hf_connector.config import ConfigurationError, Settings, load_settings
from hf_connector.zeebe import create_channel

REPO = Path(__file__).resolve().parents[1]


@click.command()
@click.option("--examples", default=EXAMPLES_DIR, type=click.Path(file_okay=False, path_type=Path))
@click.option("--data", default=REPO / ".cache" / "engine", type=click.Path(file_okay=False, path_type=Path))
@click.option("--port", default=26500, show_default=True, help="gRPC port of an engine started here.")
@click.option("--rest-port", default=8080, show_default=True, help="REST port of an engine started here.")
def main(examples: Path, data: Path, port: int, rest_port: int) -> None:
    """Start an engine unless ZEEBE_ADDRESS is set, deploy the examples, run the worker."""
    sys.exit(run_dev(examples, data, port, rest_port))


def run_dev(examples: Path, data: Path, port: int, rest_port: int) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        with _terminate_as_interrupt():
            data.mkdir(parents=True, exist_ok=True)
            engine = start_engine(data, fixed_ports=True, grpc_port=port, rest_port=rest_port)
            try:
                os.environ["ZEEBE_ADDRESS"] = engine.address
                if engine.rest_url:
                    os.environ[REST_ADDRESS_ENV] = engine.rest_url
                _say(f"Engine: {engine.description}")
                settings = load_settings()
                asyncio.run(_deploy(settings, sorted(examples.glob("*.bpmn"))))
                _say(_how_to_start())
                from hf_connector.app import run

                return asyncio.run(run(settings))
            finally:
                engine.stop()
    except (EngineUnavailableError, ConfigurationError) as error:
        print(f"make run: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


async def _deploy(settings: Settings, files: list[Path]) -> None:
    if not files:
        return
    channel = create_channel(settings)
    try:
        await ZeebeClient(channel).deploy_resource(*files)
        _say(f"Deployed {len(files)} example process(es): {', '.join(f.name for f in files)}")
    finally:
        await channel.close()


def _how_to_start() -> str:
    token = (
        ""
        if os.environ.get("SECRET_HUGGING_FACE_TOKEN")
        else (
            "\nNo SECRET_HUGGING_FACE_TOKEN is set: Hugging Face will refuse the calls. Set it to your token"
            " (https://huggingface.co/settings/tokens) and restart, or try `make demo`, which needs none."
        )
    )
    return (
        "\nThe worker starts now. In another terminal, start an example and see its result:\n"
        "  make example NAME=summarization\n"
        '  make example NAME=chat VARS=\'{"question": "What is a job worker?"}\'\n'
        f"Examples: {', '.join(example_names())}. Open incidents: make incidents (RETRY=1 retries them).{token}\n"
    )


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Until the worker installs its own handlers, SIGTERM unwinds like Ctrl-C so the engine is stopped."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    main()
