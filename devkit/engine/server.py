"""One engine: its state, its gRPC gateway and its REST side, started and stopped together."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
from aiohttp import web
from pyzeebe.proto.gateway_pb2_grpc import add_GatewayServicer_to_server

from devkit.engine.dispatch import Dispatcher
from devkit.engine.documents import DEFAULT_MAX_BYTES, DocumentStore
from devkit.engine.engine import Engine
from devkit.engine.gateway import VERSION, Gateway
from devkit.engine.records import RecordLog
from devkit.engine.rest import create_app
from devkit.engine.store import Store

DEFAULT_MAX_IN_FLIGHT = 1000
# Jobs a stream's worker may hold at once before further jobs go elsewhere (pyzeebe's default job bound).
DEFAULT_STREAM_WINDOW = 32


class EngineServer:
    def __init__(
        self,
        data_dir: Path | None,
        *,
        memory: bool = False,
        host: str = "127.0.0.1",
        port: int = 0,
        rest_port: int | None = 0,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        stream_window: int = DEFAULT_STREAM_WINDOW,
        document_max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        """`memory` keeps the state in memory; records still go to `data_dir/records.jsonl` when a data
        directory is given, and to `engine.records.kept` otherwise. `rest_port` None serves no REST.
        Documents go to `data_dir/documents` (in memory without a data directory)."""
        self.data_dir = data_dir
        self.memory = memory
        self.host = host
        self.port = port
        self.rest_port = rest_port
        self.max_in_flight = max_in_flight
        self.stream_window = stream_window
        self.document_max_bytes = document_max_bytes
        self._grpc: grpc.aio.Server | None = None
        self._rest: web.AppRunner | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def records_path(self) -> Path | None:
        return None if self.data_dir is None else self.data_dir / "records.jsonl"

    async def start(self) -> EngineServer:
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        store_path = None if self.memory or self.data_dir is None else self.data_dir / "engine.sqlite"
        self.store = Store(store_path)
        self.engine = Engine(self.store, RecordLog(self.records_path))
        self.engine.load()
        dispatcher = Dispatcher(self.engine, self.stream_window)
        self._grpc = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        self.port = self._grpc.add_insecure_port(f"{self.host}:{self.port}")
        if self.port == 0:
            raise OSError(f"cannot listen for gRPC on {self.address}")
        self.gateway = Gateway(self.engine, dispatcher, self.host, self.port, self.max_in_flight)
        add_GatewayServicer_to_server(self.gateway, self._grpc)
        await self._grpc.start()
        if self.rest_port is not None:
            documents_dir = None if self.data_dir is None else self.data_dir / "documents"
            self.documents = DocumentStore(documents_dir, self.document_max_bytes)
            app = create_app(self.engine, self.topology, self.documents)
            self._rest = web.AppRunner(app, access_log=None)
            await self._rest.setup()
            site = web.TCPSite(self._rest, self.host, self.rest_port)
            await site.start()
            self.rest_port = self._rest.addresses[0][1]
        return self

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.rest_port}"

    def topology(self) -> dict[str, Any]:
        return {
            "brokers": [
                {
                    "nodeId": 0,
                    "host": self.host,
                    "port": self.port,
                    "partitions": [{"partitionId": 1, "role": "leader", "health": "healthy"}],
                    "version": VERSION,
                }
            ],
            "clusterSize": 1,
            "partitionsCount": 1,
            "replicationFactor": 1,
            "gatewayVersion": VERSION,
        }

    async def stop(self) -> None:
        if self._rest is not None:
            await self._rest.cleanup()
        if self._grpc is not None:
            await self._grpc.stop(grace=1)
        await self.store.durable()
        self.store.close()
        self.engine.records.close()
