"""`make run`: one command from a fresh clone to a worker serving the example processes.

Uses the broker at ZEEBE_ADDRESS, or starts a local one (stopped again on exit), deploys the
example processes, then runs the worker in the foreground until Ctrl-C or SIGTERM.
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

from pyzeebe import ZeebeClient, create_insecure_channel

from worker.broker import BrokerError, zeebe_broker
from worker.config import ConfigurationError, load_settings

logger = logging.getLogger(__name__)


def run_dev(examples: Path) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        with _terminate_as_interrupt(), zeebe_broker(fixed_ports=True) as broker:
            os.environ["ZEEBE_ADDRESS"] = broker.address
            origin = "started here" if broker.started_here else "from ZEEBE_ADDRESS"
            print(f"Zeebe at {broker.address} ({origin})", file=sys.stderr, flush=True)
            asyncio.run(_deploy_examples(broker.address, sorted(examples.glob("*.bpmn"))))
            from worker.app import run

            return asyncio.run(run(load_settings()))
    except (BrokerError, ConfigurationError) as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


async def _deploy_examples(address: str, files: list[Path]) -> None:
    if not files:
        return
    channel = create_insecure_channel(grpc_address=address)
    try:
        await ZeebeClient(channel).deploy_resource(*files)
        print(f"Deployed {len(files)} example process(es): {', '.join(f.name for f in files)}", file=sys.stderr)
    finally:
        await channel.close()


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Until the worker installs its own handlers, SIGTERM unwinds like Ctrl-C so the broker is stopped."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
