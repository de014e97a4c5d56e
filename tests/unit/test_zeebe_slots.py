"""The worker's bound on jobs held at once: pyzeebe 4.7's streaming has none, its poller sleeps when full."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from pyzeebe import Job
from pyzeebe.task.task import Task
from pyzeebe.task.task_config import TaskConfig

from worker.zeebe import _BoundedPoller, _BoundedStreamer, _Slots


def job(key: int, job_type: str = "hugging-face") -> Job:
    return Job(
        key=key,
        type=job_type,
        process_instance_key=key,
        bpmn_process_id="p",
        process_definition_version=1,
        process_definition_key=1,
        element_id="task",
        element_instance_key=key,
        custom_headers={},
        worker="w",
        retries=3,
        deadline=0,
        variables={},
    )


def task(limit: int) -> Task:
    async def handler(job: Job, controller: Any) -> Job:
        return job

    config = TaskConfig("hugging-face", None, 300_000, limit, limit, [], False, "", [], [])
    return Task(lambda: None, handler, config)  # type: ignore[arg-type]


class FakeAdapter:
    """Pushes `count` jobs on the stream, as fast as they are read; answers polls with what is left."""

    connected = True
    retrying_connection = False

    def __init__(self, count: int) -> None:
        self.pending = [job(key) for key in range(1, count + 1)]
        self.read = 0
        self.poll_sizes: list[int] = []

    async def stream_activate_jobs(self, **_: Any) -> AsyncGenerator[Job]:
        while self.pending:
            self.read += 1
            yield self.pending.pop(0)
        await asyncio.Event().wait()  # an open stream with nothing more to push

    async def activate_jobs(self, *, max_jobs_to_activate: int, **_: Any) -> AsyncGenerator[Job]:
        self.poll_sizes.append(max_jobs_to_activate)
        batch, self.pending = self.pending[:max_jobs_to_activate], self.pending[max_jobs_to_activate:]
        for item in batch:
            yield item


def streamer(adapter: FakeAdapter, slots: _Slots, queue: asyncio.Queue[Job]) -> _BoundedStreamer:
    return _BoundedStreamer(
        zeebe_adapter=adapter,  # type: ignore[arg-type]
        task=task(slots.limit),
        queue=queue,
        worker_name="w",
        stream_request_timeout=3600,
        task_state=slots,
        tenant_ids=None,
    )


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_slots_count_jobs_until_they_are_handled() -> None:
    slots = _Slots(2)
    first, second = job(1), job(2)
    slots.add(first)
    slots.add(second)
    assert slots.room() == 0
    slots.handled(first)  # its outcome is on its way to Zeebe: the slot is free already
    assert slots.room() == 1
    slots.remove(first)  # pyzeebe's own bookkeeping once the outcome is sent
    assert slots.room() == 1
    slots.remove(second)
    assert slots.room() == 2


async def test_the_stream_is_read_only_while_there_is_room() -> None:
    adapter, slots, queue = FakeAdapter(10), _Slots(3), asyncio.Queue[Job]()
    reading = asyncio.create_task(streamer(adapter, slots, queue).activate_stream())
    await settle()
    assert adapter.read == 3 and queue.qsize() == 3

    slots.handled(await queue.get())
    await settle()
    assert adapter.read == 4 and slots.room() == 0

    reading.cancel()


async def test_waiting_for_room_wakes_up_when_a_job_is_handled() -> None:
    slots = _Slots(1)
    slots.add(job(1))
    waiter = asyncio.create_task(slots.wait_for_room())
    await settle()
    assert not waiter.done()
    slots.handled(job(1))
    await asyncio.wait_for(waiter, 1)


async def test_the_poller_asks_for_as_many_jobs_as_there_is_room_for_and_never_sleeps_when_full() -> None:
    adapter, slots, queue = FakeAdapter(10), _Slots(4), asyncio.Queue[Job]()
    slots.add(job(100))
    poller = _BoundedPoller(
        zeebe_adapter=adapter,  # type: ignore[arg-type]
        task=task(4),
        queue=queue,
        worker_name="w",
        request_timeout=0,
        task_state=slots,
        poll_retry_delay=5,
        tenant_ids=None,
    )
    await poller.activate_max_jobs()
    assert adapter.poll_sizes == [3] and slots.room() == 0

    polling = asyncio.create_task(poller.activate_max_jobs())
    await settle()
    assert adapter.poll_sizes == [3]  # full: it waits, without polling (and without pyzeebe's 5 s sleep)
    slots.handled(job(100))
    await asyncio.wait_for(polling, 1)
    assert adapter.poll_sizes == [3, 1]
