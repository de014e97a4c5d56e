"""The worker's bounds on jobs held and handled at once: pyzeebe 4.7's streaming has none, its poller sleeps
when full and polls for single jobs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from typing import Any

from pyzeebe import Job
from pyzeebe.task.task import Task
from pyzeebe.task.task_config import TaskConfig

from hf_connector.zeebe import JobLimits, _BoundedPoller, _BoundedStreamer, _Slots


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
        task=task(slots.limits.held),
        queue=queue,
        worker_name="w",
        stream_request_timeout=3600,
        task_state=slots,
        tenant_ids=None,
    )


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def held(count: int) -> _Slots:
    return _Slots(JobLimits(handled=1, held=count))


async def test_slots_count_jobs_until_they_are_handled() -> None:
    slots = held(2)
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


async def test_outcomes_stuck_in_an_outage_stop_new_activations_beyond_twice_the_jobs_held() -> None:
    slots = held(2)
    stuck = [job(key) for key in range(1, 5)]
    for each in stuck:  # handled, but Zeebe is away: their outcomes are still being sent
        slots.add(each)
        slots.handled(each)
    assert slots.room() == 0, "four outcomes pending with two jobs held: no more jobs until they drain"
    slots.remove(stuck[0])
    assert slots.room() == 1
    for each in stuck[1:]:
        slots.remove(each)
    assert slots.room() == 2


async def test_the_stream_is_read_only_while_there_is_room() -> None:
    adapter, slots, queue = FakeAdapter(10), held(3), asyncio.Queue[Job]()
    reading = asyncio.create_task(streamer(adapter, slots, queue).activate_stream())
    await settle()
    assert adapter.read == 3 and queue.qsize() == 3

    slots.handled(await queue.get())
    await settle()
    assert adapter.read == 4 and slots.room() == 0

    reading.cancel()


async def test_waiting_for_room_wakes_up_when_a_job_is_handled() -> None:
    slots = held(1)
    slots.add(job(1))
    waiter = asyncio.create_task(slots.wait_for_room())
    await settle()
    assert not waiter.done()
    slots.handled(job(1))
    await asyncio.wait_for(waiter, 1)


def poller_for(adapter: FakeAdapter, slots: _Slots, queue: asyncio.Queue[Job]) -> _BoundedPoller:
    return _BoundedPoller(
        zeebe_adapter=adapter,  # type: ignore[arg-type]
        task=task(slots.limits.held),
        queue=queue,
        worker_name="w",
        request_timeout=0,
        task_state=slots,
        poll_retry_delay=5,
        tenant_ids=None,
    )


async def test_the_poller_asks_for_as_many_jobs_as_there_is_room_for_and_never_sleeps_when_full() -> None:
    adapter, slots, queue = FakeAdapter(10), held(4), asyncio.Queue[Job]()
    slots.add(job(100))
    poller = poller_for(adapter, slots, queue)
    await poller.activate_max_jobs()
    assert adapter.poll_sizes == [3] and slots.room() == 0

    polling = asyncio.create_task(poller.activate_max_jobs())
    await settle()
    assert adapter.poll_sizes == [3]  # full: it waits, without polling (and without pyzeebe's 5 s sleep)
    slots.handled(job(100))
    await asyncio.wait_for(polling, 1)
    assert adapter.poll_sizes == [3, 1]


def test_a_poll_waits_for_about_a_third_of_the_handled_jobs_worth_of_room() -> None:
    assert JobLimits(handled=32, held=64).poll_batch == 10
    assert JobLimits(handled=1, held=1).poll_batch == 1
    assert JobLimits(handled=4, held=4).poll_batch == 1


async def test_the_poller_waits_for_room_for_a_batch_instead_of_polling_for_each_freed_slot() -> None:
    adapter, slots, queue = FakeAdapter(100), _Slots(JobLimits(handled=10, held=20)), asyncio.Queue[Job]()
    for key in range(1000, 1020):
        slots.add(job(key))
    polling = asyncio.create_task(poller_for(adapter, slots, queue).activate_max_jobs())
    for key in (1000, 1001):
        slots.handled(job(key))
        await settle()
    assert adapter.poll_sizes == []  # 2 free slots: less than the batch of 3
    slots.handled(job(1002))
    await asyncio.wait_for(polling, 1)
    assert adapter.poll_sizes == [3]


async def test_jobs_beyond_the_handled_limit_wait_for_a_slot_and_are_all_let_through_on_release() -> None:
    slots = _Slots(JobLimits(handled=1, held=3))
    started: list[int] = []

    async def handle(key: int) -> None:
        async with slots.handling:
            started.append(key)
            await asyncio.Event().wait()

    tasks = [asyncio.create_task(handle(key)) for key in (1, 2, 3)]
    await settle()
    assert started == [1]
    slots.release_waiting()  # intake closed: the waiting jobs go through, to be handed back
    await settle()
    assert started == [1, 2, 3]
    for running in tasks:
        running.cancel()
