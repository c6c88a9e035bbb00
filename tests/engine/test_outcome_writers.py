"""Rows stored with the outcomes: the registry's outcome writers run in the transaction that
stores a batch of outcomes, and the field executors' events go that way (both or neither)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from wo_fixtures import Clock, add_fleet

from smmc.domain.work_orders import ActivityType, Outcome, State
from smmc.engine.activities.base import FieldContext, event_row
from smmc.engine.executors import ExecutorRegistry, OutcomeWriter
from smmc.engine.worker import Worker, WorkerConfig
from smmc.field.drivers import FieldDrivers
from smmc.store import tables as t
from smmc.store.secrets import SecretBox
from smmc.store.work_orders import LeasedOrder, TargetRef, WorkOrderQueue

Seen = list[tuple[int, State | None, str]]


def _state_writer(seen: Seen) -> OutcomeWriter:
    def writer(conn: Connection, recorded: Sequence[tuple[LeasedOrder, State | None]]) -> None:
        for order, state in recorded:
            stored = conn.execute(
                sa.select(t.work_orders.c.state).where(t.work_orders.c.id == order.id)
            ).scalar_one()
            seen.append((order.id, state, stored))

    return writer


class Held:
    """Holds its attempt until released (a worker that stalled past its lease)."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def execute(self, order: LeasedOrder, engine: Engine) -> Outcome:
        self.started.set()
        await self.release.wait()
        return Outcome.success()


async def test_a_writer_sees_the_outcome_in_its_transaction_and_none_for_a_lost_lease(
    db: Engine, queue: WorkOrderQueue, clock: Clock
) -> None:
    add_fleet(db, {"DC-1": 1})
    queue.submit(ActivityType.READING, [TargetRef(meter="M-DC-1-0")])
    seen: Seen = []
    held = Held()
    registry = ExecutorRegistry({ActivityType.READING: held})
    registry.add_outcome_writer(_state_writer(seen))
    stalled = Worker(
        queue,
        registry,
        WorkerConfig("stalled", renew_leases=False, lease_for=timedelta(minutes=1)),
    )
    assert await stalled.lease_once() == 1
    await held.started.wait()
    clock.advance(minutes=2)  # its lease ran out: another worker takes the order
    (taken,) = queue.lease("other", 1, timedelta(minutes=5))
    held.release.set()
    await stalled.run_until_idle()
    assert seen == [(taken.id, None, "RUNNING")]  # refused: the writer is told so
    seen.clear()
    states = queue.record_many([(taken, Outcome.success())], _state_writer(seen))
    assert states == [State.COMPLETED]
    assert seen == [(taken.id, State.COMPLETED, "COMPLETED")]  # the same transaction


async def test_field_events_are_stored_with_their_outcome_only(
    db: Engine, queue: WorkOrderQueue, secret_box: SecretBox
) -> None:
    add_fleet(db, {"DC-1": 1, "DC-2": 1})
    queue.submit(ActivityType.READING, [TargetRef(meter=f"M-DC-{n}-0") for n in (1, 2)])
    kept, lost = queue.lease("w", 2, timedelta(minutes=5))
    context = FieldContext(FieldDrivers(db, secret_box))
    at = datetime(2026, 4, 10, 15, 0, tzinfo=UTC)
    for order in (kept, lost):
        context.pending[(order.id, order.attempt)] = event_row(order, Outcome.success(), None, at)
    stale = dataclasses.replace(lost, worker="someone else")  # its lease is not ours
    states = queue.record_many(
        [(kept, Outcome.success()), (stale, Outcome.success())], context.write_events
    )
    assert states == [State.COMPLETED, None]
    with db.connect() as conn:
        stored = list(conn.execute(sa.select(t.work_order_events.c.work_order_id)).scalars())
    assert stored == [kept.id]  # the refused outcome's event is dropped with it
    assert context.pending == {}
