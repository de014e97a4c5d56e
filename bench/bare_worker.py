"""Baseline 1: a bare pyzeebe worker that completes the same kind of job without any HTTP call.

It asks for the same variables as the connector, with the same job timeout, max jobs and streaming
setting, and completes each job with a canned result of the connector's shape and size, so that what it costs
is what the broker and the client cost: the floor under any pyzeebe-based connector.

Configured by environment: ``ZEEBE_ADDRESS``, ``BARE_JOB_TYPE``, ``BARE_MAX_JOBS`` (32),
``BARE_STREAM_ENABLED`` (true), ``BARE_FETCH_VARIABLES`` (a JSON list), ``BARE_JOB_TIMEOUT_MS`` (300000),
``BARE_HOLD_S`` (0: seconds each job is held before it completes, the model's latency in the LLM scenario, so
that the engine carries as many jobs in flight as for the connector and its own share of "added" shows).
"""

# No `from __future__ import annotations`: pyzeebe finds the job parameter by comparing its annotation
# with the `Job` class itself, which a string annotation never equals.

import asyncio
import json
import os
import signal
from typing import Any

from pyzeebe import Job, ZeebeWorker, create_insecure_channel

# What our worker writes for the benchmark's job against the stand-in, to the byte count (416 bytes of
# JSON): the broker then carries the same variable payload for both.
CANNED_RESULT: dict[str, Any] = {
    "result": {
        "status": 200,
        "headers": {
            "content-type": "application/json",
            "x-request-id": "Root=1-00000000-000000000000000000000000",
            "x-inference-provider": "hf-inference",
            "x-compute-type": "cpu",
            "x-compute-time": "0.100",
            "content-length": "152",
        },
        "body": [
            {
                "summary_text": "Java is a high-level, class-based, object-oriented programming language that is "
                "designed to have as few implementation dependencies"
            }
        ],
    }
}


async def serve() -> None:
    channel = create_insecure_channel(grpc_address=os.environ["ZEEBE_ADDRESS"])
    max_jobs = int(os.environ.get("BARE_MAX_JOBS", "32"))
    hold_s = float(os.environ.get("BARE_HOLD_S", "0"))
    worker = ZeebeWorker(
        channel,
        name="bare-pyzeebe",
        max_connection_retries=-1,
        poll_retry_delay=1,
        stream_enabled=os.environ.get("BARE_STREAM_ENABLED", "true").lower() == "true",
    )

    @worker.task(  # type: ignore[arg-type]
        os.environ["BARE_JOB_TYPE"],
        variables_to_fetch=json.loads(os.environ.get("BARE_FETCH_VARIABLES", "[]")),
        timeout_ms=int(os.environ.get("BARE_JOB_TIMEOUT_MS", "300000")),
        max_jobs_to_activate=max_jobs,
        # Holding its jobs, it would often be full, and pyzeebe's poller then sleeps a whole second; room
        # it never fills (the load keeps max jobs instances in flight) leaves the engine's time alone.
        max_running_jobs=2 * max_jobs if hold_s else max_jobs,
    )
    async def complete(job: Job, **_fetched: Any) -> dict[str, Any]:
        if hold_s:
            await asyncio.sleep(hold_s)
        return CANNED_RESULT

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    work = asyncio.create_task(worker.work())
    print("ready", flush=True)
    await stop.wait()
    await worker.stop()
    work.cancel()
    await channel.close()


if __name__ == "__main__":
    asyncio.run(serve())
