"""`python -m devkit.engine --port P --data DIR`: serves until SIGTERM or Ctrl-C, printing one ready line."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
from pathlib import Path

from devkit.engine.documents import DEFAULT_MAX_BYTES
from devkit.engine.server import DEFAULT_MAX_IN_FLIGHT, DEFAULT_STREAM_WINDOW, EngineServer

DEFAULT_DATA = Path(".cache/engine")
# Young collections often and small, the oldest generation almost never: a thousand instances in flight
# keep about 110,000 objects alive, and a full collection over them stalls every request for about
# 100 ms (every 20 s at 200 instances per second with Python's defaults), which then shows as time
# added by whichever worker's job was waiting. What dies young (gRPC's per-call cycles) is collected young.
_GC_THRESHOLDS = (700, 2, 1000)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devkit.engine",
        description="The project's development engine: runs this project's BPMN processes behind the gateway "
        "gRPC protocol Camunda 8 clients speak (not a replacement for Camunda).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=26500, help="gRPC port (0 picks a free one)")
    parser.add_argument("--rest-port", type=int, default=8080, help="REST port (0 picks a free one)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="state and records.jsonl go here")
    parser.add_argument("--memory", action="store_true", help="keep state in memory only (records still go to --data)")
    parser.add_argument(
        "--max-in-flight",
        type=int,
        default=DEFAULT_MAX_IN_FLIGHT,
        help="requests handled at once before answering RESOURCE_EXHAUSTED",
    )
    parser.add_argument(
        "--stream-window",
        type=int,
        default=DEFAULT_STREAM_WINDOW,
        help="jobs a job stream's worker may hold before further jobs go to other streams and polls",
    )
    parser.add_argument(
        "--document-max-bytes",
        type=int,
        default=DEFAULT_MAX_BYTES,
        help="largest document the REST API's /v2/documents accepts (larger uploads answer 413)",
    )
    return parser.parse_args(argv)


async def serve(arguments: argparse.Namespace) -> None:
    server = EngineServer(
        arguments.data,
        memory=arguments.memory,
        host=arguments.host,
        port=arguments.port,
        rest_port=arguments.rest_port,
        max_in_flight=arguments.max_in_flight,
        stream_window=arguments.stream_window,
        document_max_bytes=arguments.document_max_bytes,
    )
    await server.start()
    gc.collect()
    gc.freeze()  # what start-up built lives as long as the engine
    gc.set_threshold(*_GC_THRESHOLDS)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopped.set)
    print(f"engine ready grpc={server.address} rest={server.rest_url} data={arguments.data}", flush=True)
    await stopped.wait()
    await server.stop()


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(_arguments(argv)))


if __name__ == "__main__":
    main()
