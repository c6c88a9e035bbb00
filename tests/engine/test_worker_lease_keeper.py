"""The worker's one lease keeper: it renews every order executing and cancels only the
attempts whose lease was lost (against the real databases, the queue on a test clock)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from wo_fixtures import Clock, add_fleet

from smmc.domain.work_orders import ActivityType, Outcome, State
from smmc.engine.executors import ExecutorRegistry
from smmc.engine.worker import Worker, WorkerConfig
from smmc.store import tables as t
from smmc.store.work_orders import LeasedOrder, TargetRef, WorkOrderFilter, WorkOrderQueue

LEASE = timedelta(seconds=0.3)


class Held:
    """Holds every attempt until released; remembers the orders and the cancelled ones."""

    def __init__(self) -> None:
        self.orders: dict[int, LeasedOrder] = {}
        self.cancelled: list[int] = []
        self.release = asyncio.Event()

    async def execute(self, order: LeasedOrder, engine: Engine) -> Outcome:
        self.orders[order.id] = order
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.append(order.id)
            raise
        return Outcome.success({"meter": order.meter_serial})


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


def expiries(db: Engine) -> list[datetime | None]:
    with db.connect() as conn:
        return list(
            conn.execute(
                sa.select(t.work_orders.c.lease_expires_at).order_by(t.work_orders.c.id)
            ).scalars()
        )


def expire_at(db: Engine, at: datetime, count: int) -> Callable[[], bool]:
    """True once the first ``count`` orders' leases all expire at ``at`` (renewed then)."""
    return lambda: expiries(db) == [at] * count


def states(queue: WorkOrderQueue) -> Counter[str]:
    rows, _ = queue.list_orders(WorkOrderFilter(), limit=100)
    return Counter(row["state"] for row in rows)


def keepers() -> list[asyncio.Task[object]]:
    return [task for task in asyncio.all_tasks() if task.get_name() == "lease-keeper"]


async def test_one_keeper_renews_every_order_in_flight(
    db: Engine, queue: WorkOrderQueue, clock: Clock
) -> None:
    add_fleet(db, {"DC-1": 1, "DC-2": 1, "DC-3": 1})
    queue.submit(ActivityType.READING, [TargetRef(meter=f"M-DC-{n}-0") for n in (1, 2, 3)])
    held = Held()
    worker = Worker(
        queue,
        ExecutorRegistry({ActivityType.READING: held}),
        WorkerConfig(name="w", poll_interval=0.01, lease_for=LEASE),
    )
    assert await worker.lease_once() == 3
    await until(lambda: len(held.orders) == 3)
    assert len(keepers()) == 1  # one for the three orders, not one each
    for _ in range(5):  # 1 s of queue time: five lease lengths, each bridged by a renewal
        clock.advance(seconds=0.2)
        await until(expire_at(db, clock.now + LEASE, 3))
    assert queue.lease("other", 10, timedelta(minutes=5)) == []  # nothing expired
    held.release.set()
    await worker.run_until_idle()
    assert worker.finished == {State.COMPLETED: 3}
    assert states(queue) == {"COMPLETED": 3}
    assert held.cancelled == []
    await until(lambda: not keepers())  # nothing executing: no keeper left behind


async def test_a_lost_lease_cancels_only_its_own_attempt(
    db: Engine, queue: WorkOrderQueue, clock: Clock
) -> None:
    add_fleet(db, {"DC-1": 1, "DC-2": 1})
    queue.submit(ActivityType.READING, [TargetRef(meter=f"M-DC-{n}-0") for n in (1, 2)])
    held = Held()
    first = Worker(
        queue,
        ExecutorRegistry({ActivityType.READING: held}),
        WorkerConfig(name="first", poll_interval=0.01, lease_for=LEASE),
    )
    assert await first.lease_once() == 2
    await until(lambda: len(held.orders) == 2)
    lost_id, kept_id = sorted(held.orders)
    clock.advance(seconds=1)  # both leases ran out; the second is renewed before anyone looks
    assert queue.renew(held.orders[kept_id], timedelta(minutes=5)) is not None
    (taken,) = queue.lease("second", 5, timedelta(minutes=5))
    assert (taken.id, taken.attempt) == (lost_id, 2)
    await until(lambda: held.cancelled == [lost_id])
    held.release.set()
    await first.run_until_idle()
    assert first.finished == {State.COMPLETED: 1}  # the lost attempt is not recorded
    assert queue.record(taken, Outcome.success()) is State.COMPLETED
    assert states(queue) == {"COMPLETED": 2}
    with db.connect() as conn:
        attempts = Counter(
            conn.execute(
                sa.select(t.work_order_attempts.c.worker, t.work_order_attempts.c.outcome)
            ).all()
        )
    assert attempts == {
        ("first", "LEASE_LOST"): 1,
        ("first", "COMPLETED"): 1,
        ("second", "COMPLETED"): 1,
    }


async def test_the_keeper_outlives_a_failed_renewal(
    db: Engine, queue: WorkOrderQueue, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_fleet(db, {"DC-1": 1})
    queue.submit(ActivityType.READING, [TargetRef(meter="M-DC-1-0")])
    held = Held()
    worker = Worker(
        queue,
        ExecutorRegistry({ActivityType.READING: held}),
        WorkerConfig(name="w", poll_interval=0.01, lease_for=LEASE),
    )
    renew = queue.renew
    failures: list[int] = []

    def fail_once(order: LeasedOrder, lease_for: timedelta) -> LeasedOrder | None:
        if not failures:
            failures.append(order.id)
            raise OSError("disk gone for a moment")
        return renew(order, lease_for)

    monkeypatch.setattr(queue, "renew", fail_once)
    assert await worker.lease_once() == 1
    await until(lambda: len(held.orders) == 1)
    clock.advance(seconds=0.2)
    await until(lambda: bool(failures))
    await until(expire_at(db, clock.now + LEASE, 1))  # renewed by a later pass
    assert len(keepers()) == 1
    held.release.set()
    await worker.run_until_idle()
    assert worker.finished == {State.COMPLETED: 1}
    assert held.cancelled == []
