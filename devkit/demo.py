"""``make demo``: every example process, start to end, with no Hugging Face token and no network.

Starts its own engine (never a shared cluster: its worker would take real jobs and answer them with
stand-in data), the bundled Hugging Face stand-in on loopback, and one worker pointed at that stand-in; runs
each example in bpmn-examples/ with its documented variables and prints the outcome. The answers are the
stand-in's canned imitations, and the output says so.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import click
from pyzeebe import ZeebeClient, create_insecure_channel

from devkit.engines import Engine, EngineUnavailableError, start_engine
from devkit.examples import EXAMPLES_DIR, default_variables, describe, example_names, run_example
from devkit.hf_standin import HfStandin
from devkit.processes import die_with_parent
from devkit.rest import ApiError, OrchestrationApi

REPO = Path(__file__).resolve().parents[1]
DEMO_TOKEN = "hf_demo_token_for_the_stand_in"
TIMEOUT_S = 60.0
BANNER = (
    "make demo: the answers below come from the bundled Hugging Face STAND-IN (a loopback imitation of\n"
    "router.huggingface.co with canned outputs), not from real models. No token or network is used.\n"
    "For real answers: SECRET_HUGGING_FACE_TOKEN=hf_... make run, then make example NAME=summarization."
)


@click.command()
def main() -> None:
    """Run every example process against the Hugging Face stand-in, with its own engine and worker."""
    sys.exit(run_demo())


def run_demo() -> int:
    click.echo(BANNER)
    os.environ.pop("ZEEBE_ADDRESS", None)
    with tempfile.TemporaryDirectory(prefix="hf-demo-") as tmp, HfStandin() as standin:
        try:
            engine = start_engine(Path(tmp) / "engine", fixed_ports=False)
        except EngineUnavailableError as error:
            click.echo(f"make demo: {error}", err=True)
            return 1
        try:
            click.echo(f"Engine: {engine.description}")
            worker = _start_worker(engine.address, engine.rest_url or "", standin.url, Path(tmp) / "worker.log")
            try:
                failed = asyncio.run(_run_all(engine))
            except ApiError as error:
                click.echo(f"make demo: {error}", err=True)
                failed = ["(all)"]
            finally:
                worker.terminate()
                worker.wait(timeout=40)
            if failed:
                log = (Path(tmp) / "worker.log").read_text(errors="replace").splitlines()
                click.echo("The worker's last log lines:\n" + "\n".join(log[-30:]), err=True)
        finally:
            engine.stop()
    click.echo(
        f"\n{len(example_names()) - len(failed)} of {len(example_names())} example(s) completed "
        "(answers from the Hugging Face stand-in)." + (f" Failed: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


def _start_worker(address: str, rest_url: str, hf_url: str, log_path: Path) -> subprocess.Popen[bytes]:
    """The worker as a child process, with none of the caller's Hugging Face or Camunda settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SECRET_", "HF_", "CAMUNDA_", "ZEEBE_"))}
    env |= {
        "ZEEBE_ADDRESS": address,
        "HF_INFERENCE_ENDPOINT": hf_url,
        "SECRET_HUGGING_FACE_TOKEN": DEMO_TOKEN,
        "HF_CONNECTOR_SECRETS_DIR": "",
        "HF_CONNECTOR_HTTP_HOST": "127.0.0.1",
        "HF_CONNECTOR_HTTP_PORT": "0",
        "CAMUNDA_REST_ADDRESS": rest_url,
    }
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "hf_connector", "run"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent if threading.current_thread() is threading.main_thread() else None,
        )


async def _run_all(engine: Engine) -> list[str]:
    """Deploys and runs every example one after the other; returns the names of those that did not complete."""
    assert engine.rest_url is not None, "an engine started here always has its REST address"
    channel = create_insecure_channel(grpc_address=engine.address)
    failed: list[str] = []
    try:
        zeebe = ZeebeClient(channel)
        await zeebe.deploy_resource(*sorted(EXAMPLES_DIR.glob("*.bpmn")))
        async with OrchestrationApi(engine.rest_url) as api:
            for name in example_names():
                outcome = await run_example(zeebe, api, name, default_variables(name), TIMEOUT_S)
                click.echo("\n" + "\n".join(describe(outcome, TIMEOUT_S)))
                if not outcome.ok:
                    failed.append(name)
    finally:
        await channel.close()
    return failed


if __name__ == "__main__":
    main()
