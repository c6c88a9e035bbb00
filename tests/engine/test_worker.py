"""The worker loop with in-test executors, against the real databases."""

from __future__ import annotations

import asyncio
import random
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from wo_fixtures import Clock, add_fleet

from smmc.domain.calendar import WorkingDayCalendar
from smmc.domain.work_orders import ActivityType, Outcome, State, load_policies
from smmc.engine.executors import ExecutorRegistry, NoExecutor
from smmc.engine.worker import Worker, WorkerConfig
from smmc.store import tables as t
from smmc.store.db import create_engine
from smmc.store.work_orders import LeasedOrder, TargetRef, WorkOrderFilter, WorkOrderQueue


class Recording:
    """Records every attempt; fails the first `fail_first` attempts of each order."""

    def __init__(self, fail_first: int = 0, retryable: bool = True) -> None:
        self.calls: list[tuple[int, int, str]] = []
        self.fail_first = fail_first
        self.retryable = retryable

    async def execute(self, order: LeasedOrder, engine: Engine) -> Outcome:
        self.calls.append((order.id, order.attempt, order.worker))
        await asyncio.sleep(0)
        if order.attempt <= self.fail_first:
            return Outcome.failure(
                "[READ_METER_MACADDRESS] [TB_ACK_40] REPEATER 1 FAILURE", retryable=self.retryable
            )
        return Outcome.success({"meter": order.meter_serial, "attempt": order.attempt})


class Blocking:
    """Holds every attempt until released, like a worker stalled mid-order."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.cancelled: list[int] = []
        self.release = asyncio.Event()

    async def execute(self, order: LeasedOrder, engine: Engine) -> Outcome:
        self.started.append(order.id)
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.append(order.id)
            raise
        return Outcome.success({"stale": True})


class Exploding:
    async def execute(self, order: LeasedOrder, engine: Engine) -> Outcome:
        raise RuntimeError("bug")


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


def states(queue: WorkOrderQueue) -> Counter[str]:
    rows, _ = queue.list_orders(WorkOrderFilter(), limit=1000)
    return Counter(row["state"] for row in rows)


def config(name: str, **kwargs: Any) -> WorkerConfig:
    return WorkerConfig(name=name, poll_interval=0.01, **kwargs)


async def test_worker_completes_a_batch(db: Engine, queue: WorkOrderQueue) -> None:
    add_fleet(db, {"DC-1": 3, "DC-2": 2})
    queue.submit(ActivityType.READING, [TargetRef(meter=f"M-DC-1-{k}") for k in range(3)])
    queue.submit(ActivityType.READING, [TargetRef(meter=f"M-DC-2-{k}") for k in range(2)])
    executor = Recording()
    worker = Worker(queue, ExecutorRegistry({ActivityType.READING: executor}), config("w"))
    await worker.run_until_idle()
    assert states(queue) == {"COMPLETED": 5}
    assert sorted(call[1] for call in executor.calls) == [1] * 5
    row = queue.get(executor.calls[0][0])
    assert '"attempt": 1' in row["result"]
    assert worker.finished == {State.COMPLETED: 5}


async def test_worker_retries_with_backoff_then_succeeds(
    db: Engine, queue: WorkOrderQueue, clock: Clock
) -> None:
    add_fleet(db, {"DC-1": 1})
    queue.submit(ActivityType.READING, [TargetRef(meter="M-DC-1-0")])
    executor = Recording(fail_first=1)
    worker = Worker(queue, ExecutorRegistry({ActivityType.READING: executor}), config("w"))
    await worker.run_until_idle()
    assert states(queue) == {"RETRY": 1}
    await worker.run_until_idle()  # not due yet: nothing runs
    assert len(executor.calls) == 1
    clock.advance(seconds=load_policies()[ActivityType.READING].backoff_base.total_seconds())
    await worker.run_until_idle()
    assert states(queue) == {"COMPLETED": 1}
    assert [call[1] for call in executor.calls] == [1, 2]


async def test_worker_final_failure_opens_field_work_order(
    db: Engine, queue: WorkOrderQueue
) -> None:
    add_fleet(db, {"DC-1": 1})
    queue.submit(ActivityType.READING, [TargetRef(meter="M-DC-1-0")])
    executor = Recording(fail_first=99, retryable=False)
    worker = Worker(queue, ExecutorRegistry({ActivityType.READING: executor}), config("w"))
    await worker.run_until_idle()
    assert states(queue) == {"FAILED": 1}
    (field_order,) = queue.field_work_orders()
    assert field_order["reason"] == "[READ_METER_MACADDRESS] [TB_ACK_40] REPEATER 1 FAILURE"


async def test_executor_exception_is_a_retryable_failure(db: Engine, queue: WorkOrderQueue) -> None:
    add_fleet(db, {"DC-1": 1})
    queue.submit(ActivityType.READING, [TargetRef(meter="M-DC-1-0")])
    worker = Worker(queue, ExecutorRegistry({ActivityType.READING: Exploding()}), config("w"))
    await worker.run_until_idle()
    (row,), _ = queue.list_orders(WorkOrderFilter())
    assert row["state"] == "RETRY"
    assert row["error_text"] == "internal error in the Reading executor: RuntimeError"


async def test_worker_leases_only_registered_activities(db: Engine, queue: WorkOrderQueue) -> None:
    add_fleet(db, {"DC-1": 1, "DC-2": 1})
    queue.submit(ActivityType.READING, [TargetRef(meter="M-DC-1-0")])
    queue.submit(ActivityType.DISCONNECT, [TargetRef(meter="M-DC-2-0")], reason="losses")
    registry = ExecutorRegistry({ActivityType.READING: Recording()})
    with pytest.raises(NoExecutor):
        registry.get(ActivityType.DISCONNECT)
    with pytest.raises(ValueError, match="already registered"):
        registry.register(ActivityType.READING, Recording())
    await Worker(queue, registry, config("w")).run_until_idle()
    assert states(queue) == {"COMPLETED": 1, "PENDING": 1}


async def test_activity_running_past_its_deadline_expires(
    db: Engine, clock: Clock, tmp_path: Path
) -> None:
    override = tmp_path / "policies.yaml"
    override.write_text("Reading:\n  duration: 0.2\n  backoff_base: 1\n")
    queue = WorkOrderQueue(db, load_policies(override), clock=clock, calendar=WorkingDayCalendar())
    add_fleet(db, {"DC-1": 1})
    queue.submit(ActivityType.READING, [TargetRef(meter="M-DC-1-0")])
    executor = Blocking()
    await Worker(
        queue, ExecutorRegistry({ActivityType.READING: executor}), config("w")
    ).run_until_idle()
    assert executor.cancelled == executor.started
    (row,), _ = queue.list_orders(WorkOrderFilter())
    assert row["state"] == "EXPIRED"
    assert row["error_text"] == "deadline passed while the activity ran"


async def test_stalled_worker_loses_its_orders_and_none_completes_twice(
    db: Engine, queue: WorkOrderQueue, clock: Clock
) -> None:
    add_fleet(db, {f"DC-{n}": 2 for n in range(4)})
    queue.submit(
        ActivityType.READING, [TargetRef(meter=f"M-DC-{n}-{k}") for n in range(4) for k in range(2)]
    )
    stalled_executor = Blocking()
    stalled = Worker(
        queue,
        ExecutorRegistry({ActivityType.READING: stalled_executor}),
        config("stalled", renew_leases=False, lease_for=timedelta(minutes=1)),
    )
    assert await stalled.lease_once() == 4  # one per concentrator
    await until(lambda: len(stalled_executor.started) == 4)
    clock.advance(minutes=2)  # its leases run out: it never renewed them
    healthy_executor = Recording()
    healthy = Worker(
        queue, ExecutorRegistry({ActivityType.READING: healthy_executor}), config("ok")
    )
    await healthy.run_until_idle()
    assert states(queue) == {"COMPLETED": 8}
    stalled_executor.release.set()
    await stalled.run_until_idle()  # its late outcomes are refused
    assert stalled.finished == {}
    assert states(queue) == {"COMPLETED": 8}
    executed = Counter(call[0] for call in healthy_executor.calls)
    assert set(executed.values()) == {1}
    assert len(executed) == 8
    with db.connect() as conn:
        outcomes = conn.execute(
            sa.select(t.work_order_attempts.c.worker, t.work_order_attempts.c.outcome)
        ).all()
    assert Counter(outcomes) == {("stalled", "LEASE_LOST"): 4, ("ok", "COMPLETED"): 8}
    for row in queue.list_orders(WorkOrderFilter())[0]:
        assert '"stale"' not in (row["result"] or "")


async def test_lost_lease_cancels_the_running_attempt(
    db: Engine, queue: WorkOrderQueue, clock: Clock
) -> None:
    add_fleet(db, {"DC-1": 1})
    queue.submit(ActivityType.READING, [TargetRef(meter="M-DC-1-0")])
    slow = Blocking()
    first = Worker(
        queue,
        ExecutorRegistry({ActivityType.READING: slow}),
        config("first", lease_for=timedelta(seconds=0.3)),
    )
    assert await first.lease_once() == 1
    await until(lambda: bool(slow.started))
    clock.advance(seconds=1)
    (taken,) = queue.lease("second", 1, timedelta(minutes=5))
    assert taken.attempt == 2
    await first.run_until_idle()  # its keeper finds the lease gone and cancels the attempt
    assert slow.cancelled == [taken.id]
    assert queue.record(taken, Outcome.success()) is State.COMPLETED


async def test_graceful_stop_finishes_orders_in_flight(db: Engine, queue: WorkOrderQueue) -> None:
    add_fleet(db, {"DC-1": 1})
    queue.submit(ActivityType.READING, [TargetRef(meter="M-DC-1-0")])
    gate = Blocking()
    worker = Worker(queue, ExecutorRegistry({ActivityType.READING: gate}), config("w"))
    running = asyncio.create_task(worker.run())
    await until(lambda: bool(gate.started))
    worker.stop()
    await asyncio.sleep(0.05)
    assert not running.done()  # waits for the order in flight
    gate.release.set()
    await asyncio.wait_for(running, 5)
    assert states(queue) == {"COMPLETED": 1}


class FieldRecorder:
    """Counts concurrent attempts per concentrator and every execution across workers.

    No attempt ends before ``workers`` workers have each started one: the workers provably
    lease side by side. (On SQLite one worker could otherwise run the whole queue while the
    other's first lease still waits in SQLite's busy handler, and the test would prove
    nothing about sharing.)"""

    def __init__(self, workers: int) -> None:
        self.executions: Counter[int] = Counter()
        self.active: defaultdict[int, int] = defaultdict(int)
        self.peak: defaultdict[int, int] = defaultdict(int)
        self.rng = random.Random(11)
        self.workers = workers
        self.started_by: set[str] = set()
        self.all_started = asyncio.Event()

    async def execute(self, order: LeasedOrder, engine: Engine) -> Outcome:
        assert order.concentrator_id is not None
        self.started_by.add(order.worker)
        if len(self.started_by) >= self.workers:
            self.all_started.set()
        await self.all_started.wait()
        self.executions[order.id] += 1
        self.active[order.concentrator_id] += 1
        self.peak[order.concentrator_id] = max(
            self.peak[order.concentrator_id], self.active[order.concentrator_id]
        )
        try:
            await asyncio.sleep(self.rng.uniform(0, 0.004))
        finally:
            self.active[order.concentrator_id] -= 1
        return Outcome.success()


async def test_two_engines_share_the_queue_without_running_an_order_twice(
    db: Engine,
) -> None:
    """Two workers, each with its own engine (own connections), lease concurrently from one
    queue: on PostgreSQL through SKIP LOCKED and the per-concentrator advisory locks."""
    add_fleet(db, {f"DC-{n}": 15 for n in range(20)})
    engines = [create_engine(db.url.render_as_string(hide_password=False)) for _ in range(2)]
    try:
        queues = [WorkOrderQueue(engine, calendar=WorkingDayCalendar()) for engine in engines]
        result = queues[0].submit(
            ActivityType.READING,
            [TargetRef(meter=f"M-DC-{n}-{k}") for n in range(20) for k in range(15)],
        )
        assert result.accepted == 300
        recorder = FieldRecorder(workers=2)
        registry = ExecutorRegistry({ActivityType.READING: recorder})
        workers = [
            Worker(queue, registry, config(f"w{i}", max_in_flight=12))
            for i, queue in enumerate(queues)
        ]
        await asyncio.wait_for(asyncio.gather(*(w.run_until_idle() for w in workers)), 120)
        # One may go idle while the other still holds the last orders: finish the tail.
        await workers[0].run_until_idle()
        assert states(queues[0]) == {"COMPLETED": 300}
        assert len(recorder.executions) == 300
        assert set(recorder.executions.values()) == {1}
        assert max(recorder.peak.values()) == 1  # default permit: one session per DC
        assert all(w.finished.get(State.COMPLETED, 0) > 0 for w in workers), [
            w.finished for w in workers
        ]
    finally:
        for engine in engines:
            engine.dispose()


class FlakyQueue(WorkOrderQueue):
    """Loses its database for the first lease and the first outcome batch."""

    lease_failures = 1
    record_failures = 1

    def _lease(self, *args: Any, **kwargs: Any) -> list[LeasedOrder]:
        if self.lease_failures:
            self.lease_failures -= 1
            raise OperationalError("SELECT 1", {}, Exception("connection refused"))
        return super()._lease(*args, **kwargs)

    def _record(self, *args: Any, **kwargs: Any) -> list[State | None]:
        if self.record_failures:
            self.record_failures -= 1
            raise OperationalError("UPDATE", {}, Exception("connection reset"))
        return super()._record(*args, **kwargs)


async def test_worker_survives_a_database_outage(db: Engine, clock: Clock) -> None:
    queue = FlakyQueue(db, clock=clock, calendar=WorkingDayCalendar())
    add_fleet(db, {"DC-1": 1})
    queue.submit(ActivityType.READING, [TargetRef(meter="M-DC-1-0")])
    executor = Recording()
    worker = Worker(
        queue,
        ExecutorRegistry({ActivityType.READING: executor}),
        config("w", lease_for=timedelta(seconds=30)),
    )
    running = asyncio.create_task(worker.run())
    await until(lambda: len(executor.calls) == 1)
    await until(lambda: not worker._in_flight)
    assert states(queue) == {"RUNNING": 1}  # the outcome was lost with the connection
    clock.advance(seconds=31)  # its lease runs out: the order runs again
    await until(lambda: states(queue) == {"COMPLETED": 1})
    worker.stop()
    await asyncio.wait_for(running, 5)
    assert [call[1] for call in executor.calls] == [1, 2]


async def test_worker_survives_an_outcome_writer_fault(db: Engine, clock: Clock) -> None:
    """A fault that is not the database's, raised while the outcomes are stored, loses
    that batch's outcomes (their orders run again when their leases expire) and never
    ends the worker."""
    queue = WorkOrderQueue(db, clock=clock, calendar=WorkingDayCalendar())
    add_fleet(db, {"DC-1": 1})
    queue.submit(ActivityType.READING, [TargetRef(meter="M-DC-1-0")])
    executor = Recording()
    registry = ExecutorRegistry({ActivityType.READING: executor})
    faults = iter([True])

    def faulty(_conn: Any, _recorded: Any) -> None:
        if next(faults, False):
            raise RuntimeError("an outcome writer's bug")

    registry.add_outcome_writer(faulty)
    worker = Worker(queue, registry, config("w", lease_for=timedelta(seconds=30)))
    running = asyncio.create_task(worker.run())
    await until(lambda: len(executor.calls) == 1)
    await until(lambda: not worker._in_flight)
    assert not running.done()
    assert states(queue) == {"RUNNING": 1}  # rolled back with the writer's fault
    clock.advance(seconds=31)
    await until(lambda: states(queue) == {"COMPLETED": 1})
    worker.stop()
    await asyncio.wait_for(running, 5)
    assert [call[1] for call in executor.calls] == [1, 2]
