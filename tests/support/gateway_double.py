"""An in-process Zeebe gateway for unit tests of the worker's gRPC side: scripted answers, recorded calls.

It speaks real gRPC on loopback through pyzeebe's generated servicer, so the worker's channel, pyzeebe's
adapter and its error mapping are exercised as they are against an engine; only the engine's state is
scripted. `fail_next(method, code, times)` makes the next calls of a method fail with a gRPC status.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import grpc
from pyzeebe.proto import gateway_pb2
from pyzeebe.proto.gateway_pb2_grpc import GatewayServicer, add_GatewayServicer_to_server


@dataclass
class GatewayDouble(GatewayServicer):  # type: ignore[misc]
    calls: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    failures: dict[str, list[grpc.StatusCode]] = field(default_factory=lambda: defaultdict(list))
    jobs: asyncio.Queue[gateway_pb2.ActivatedJob] = field(default_factory=asyncio.Queue)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    server: grpc.aio.Server | None = None
    port: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> GatewayDouble:
        self.server = grpc.aio.server()
        add_GatewayServicer_to_server(self, self.server)
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        await self.server.start()
        return self

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop(grace=None)
            self.server = None

    def fail_next(self, method: str, code: grpc.StatusCode, times: int = 1) -> None:
        self.failures[method].extend([code] * times)

    def offer(self, key: int, job_type: str = "hugging-face", variables: dict[str, Any] | None = None) -> None:
        self.jobs.put_nowait(
            gateway_pb2.ActivatedJob(
                key=key,
                type=job_type,
                processInstanceKey=key,
                bpmnProcessId="p",
                elementId="task",
                customHeaders="{}",
                worker="unit",
                retries=3,
                deadline=0,
                variables=json.dumps(variables or {}),
            )
        )

    async def until(self, method: str, count: int = 1, timeout: float = 10.0) -> list[Any]:
        """The calls of `method` once there are at least `count` of them."""
        async with asyncio.timeout(timeout):
            while len(self.calls[method]) < count:
                self.changed.clear()
                await self.changed.wait()
        return self.calls[method]

    async def _answer(self, method: str, request: Any, context: grpc.aio.ServicerContext, reply: Any) -> Any:
        self.calls[method].append(request)
        self.changed.set()
        if self.failures[method]:
            await context.abort(self.failures[method].pop(0), f"{method} scripted to fail")
        return reply

    async def ActivateJobs(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        self.calls["ActivateJobs"].append(request)
        jobs: list[gateway_pb2.ActivatedJob] = []
        try:
            async with asyncio.timeout(min(request.requestTimeout / 1000 or 1.0, 1.0)):
                jobs.append(await self.jobs.get())
        except TimeoutError:
            pass
        while not self.jobs.empty() and len(jobs) < request.maxJobsToActivate:
            jobs.append(self.jobs.get_nowait())
        yield gateway_pb2.ActivateJobsResponse(jobs=jobs)

    async def CompleteJob(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._answer("CompleteJob", request, context, gateway_pb2.CompleteJobResponse())

    async def FailJob(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._answer("FailJob", request, context, gateway_pb2.FailJobResponse())

    async def ThrowError(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._answer("ThrowError", request, context, gateway_pb2.ThrowErrorResponse())

    async def UpdateJobTimeout(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return await self._answer("UpdateJobTimeout", request, context, gateway_pb2.UpdateJobTimeoutResponse())
