"""Outcomes of Legacy's work orders on both databases: the executor's final result writes the
outcome row in the transaction of its ``work_order_events`` row (engine.activities.base),
orders that end in the queue (expired) are swept in by the publisher, and every outcome
renders to a schema-valid ``created EndDeviceEvents`` with the request's CorrelationID, the
seeds' codes, and — when remote execution finally failed — a request for field work."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from test_outbox import EVENTS_XSD, outbox_rows, schema_check

from smmc.domain.calendar import WorkingDayCalendar
from smmc.domain.work_orders import ActivityType, Origin, Outcome
from smmc.engine.activities.base import PendingEvent, event_row, store_events
from smmc.integration.codes import CodeBook
from smmc.integration.messages import Message
from smmc.integration.outbound import Renderer
from smmc.integration.outbox import EmbeddedBackend, OutboxPublisher, PublisherTiming
from smmc.integration.payloads import EndDeviceEvent, EndDeviceEvents
from smmc.store import tables as t
from smmc.store.outbox import outcome_message_id, sweep_outcomes
from smmc.store.work_orders import LeasedOrder, TargetRef, WorkOrderQueue

MONDAY = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
CORRELATION = "6f1c2b1e-2d43-4d0a-9a55-2f3b7d9e0a01"
REQUEST = {
    "cim_message_id": "msg-1",
    "control_type": "3.31.0.23",
    "control_mrid": "EDC-2025-000123",
    "issuer_tracking_id": "OT-2025-000123",
    "reply_address": "http://legacy.example/cim/callback",
}


class Clock:
    def __init__(self) -> None:
        self.now = MONDAY

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(db: Engine, clock: Clock) -> WorkOrderQueue:
    with db.begin() as conn:
        dc = conn.execute(
            t.concentrators.insert().values(name="DC-1").returning(t.concentrators.c.id)
        ).scalar_one()
        meters = conn.execute(
            t.meters.insert().returning(t.meters.c.id),
            [{"serial_number": s, "concentrator_id": dc} for s in ("M1", "M2")],
        ).all()
        point = conn.execute(
            t.service_points.insert().values(name="POD-1").returning(t.service_points.c.id)
        ).scalar_one()
        conn.execute(
            t.meter_links.insert().values(
                meter_id=meters[0][0], service_point_id=point, valid_from=MONDAY - timedelta(days=9)
            )
        )
    return WorkOrderQueue(db, clock=clock, rng=random.Random(3), calendar=WorkingDayCalendar())


def record_events(engine: Engine, events: list[PendingEvent]) -> None:
    """`store_events` in a transaction of its own, as the worker stores outcomes."""
    with engine.begin() as conn:
        store_events(conn, events)


@pytest.fixture(scope="module")
def validate(shared_dir: Path) -> Callable[[bytes], Message]:
    return schema_check(shared_dir, EVENTS_XSD)


def lease_one(
    queue: WorkOrderQueue,
    activity: ActivityType,
    *,
    origin: Origin = Origin.LEGACY,
    reason: str | None = None,
    meter: str = "M1",
) -> LeasedOrder:
    result = queue.submit(
        activity,
        [TargetRef(meter=meter)],
        origin=origin,
        external_id=CORRELATION if origin is Origin.LEGACY else None,
        reason=reason,
        payload=REQUEST if origin is Origin.LEGACY else None,
    )
    assert result.accepted == 1
    (order,) = queue.lease("worker-1", 10, timedelta(minutes=5))
    return order


def only_event(message: Message) -> EndDeviceEvent:
    assert isinstance(message.payload, EndDeviceEvents)
    (event,) = message.payload.events
    return event


def test_disconnect_outcome_carries_the_correlation_id_and_the_seed_code(
    db: Engine, queue: WorkOrderQueue, clock: Clock, validate: Callable[[bytes], Message]
) -> None:
    order = lease_one(queue, ActivityType.DISCONNECT, reason="non_payment")
    record_events(db, [event_row(order, Outcome.success({"breaker": 0}), 0, clock())])
    queue.record(order, Outcome.success({"breaker": 0}))
    (row,) = outbox_rows(db, "outcome")
    assert row["priority"] == "high"
    assert row["message_id"] == outcome_message_id(order.id)
    with db.connect() as conn:
        routed = conn.execute(sa.select(t.work_order_events.c.routed_at)).scalars().all()
    assert len(routed) == 1
    assert routed[0] is not None
    item = Renderer().render(row)
    assert item.reply_address == REQUEST["reply_address"]
    assert item.correlation_id == CORRELATION
    assert item.meter == "M1"
    message = validate(item.xml)
    assert message.header.correlation_id == CORRELATION
    assert message.header.message_id == row["message_id"]
    event = only_event(message)
    assert event.event_type == "3.31.17.68"
    assert event.issuer_tracking_id == "OT-2025-000123"
    assert event.asset is not None
    assert event.asset.serial == "M1"
    details = dict(event.details)
    assert details["Outcome"] == "disconnected"
    assert details["BreakerStatus"] == "Open"
    assert details["EndDeviceControl.mRID"] == "EDC-2025-000123"
    assert details["UsagePoint"] == "POD-1"
    assert "FieldWorkRequired" not in details


def test_a_rerun_after_a_crash_is_not_a_second_outcome(
    db: Engine, queue: WorkOrderQueue, clock: Clock
) -> None:
    """A worker killed between storing the final event and the order's state: the lease
    expires, the order runs again (next attempt) and finishes — one event, one outcome."""
    with db.begin() as conn:  # point to point: its lease does not wait for DC-1's permit
        conn.execute(t.meters.insert().values(serial_number="P1", host="127.0.0.1", port=4059))
    order = lease_one(queue, ActivityType.DISCONNECT, reason="non_payment")
    other = lease_one(queue, ActivityType.DISCONNECT, reason="non_payment", meter="P1")
    record_events(db, [event_row(order, Outcome.success({"breaker": 0}), 0, clock())])
    clock.now += timedelta(minutes=10)
    rerun = [o for o in queue.lease("worker-2", 10, timedelta(minutes=5)) if o.id == order.id]
    assert [o.attempt for o in rerun] == [order.attempt + 1]
    record_events(
        db,
        [
            event_row(rerun[0], Outcome.success({"breaker": 0}), 0, clock()),
            event_row(other, Outcome.success({"breaker": 0}), 0, clock()),
        ],
    )
    with db.connect() as conn:
        events = conn.execute(
            sa.select(t.work_order_events.c.work_order_id, t.work_order_events.c.attempt)
        ).all()
    assert sorted(events) == sorted([(order.id, order.attempt), (other.id, other.attempt)])
    assert sorted(r["message_id"] for r in outbox_rows(db, "outcome")) == sorted(
        [outcome_message_id(order.id), outcome_message_id(other.id)]
    )


def test_failed_connect_says_so_and_asks_for_field_work(
    db: Engine, queue: WorkOrderQueue, clock: Clock, validate: Callable[[bytes], Message]
) -> None:
    order = lease_one(queue, ActivityType.CONNECT, reason="after_payment")
    failure = Outcome.failure("meter did not answer (relay stuck)", retryable=False)
    record_events(db, [event_row(order, failure, None, clock())])
    queue.record(order, failure)
    (row,) = outbox_rows(db, "outcome")
    event = only_event(validate(Renderer().render(row).xml))
    assert event.event_type == "3.31.0.67"
    assert event.reason == "meter did not answer (relay stuck)"
    assert event.severity == "alarm"
    details = dict(event.details)
    assert details["Outcome"] == "failed"
    assert details["FieldWorkRequired"] == "true"
    with db.connect() as conn:
        field_order = conn.execute(sa.select(t.field_work_orders.c.work_order_id)).scalar_one()
    assert details["FieldWorkOrder"] == str(field_order) == str(order.id)


def test_orders_of_other_origins_send_no_outcome(
    db: Engine, queue: WorkOrderQueue, clock: Clock
) -> None:
    order = lease_one(queue, ActivityType.METER_SYNC, origin=Origin.OPERATOR)
    record_events(db, [event_row(order, Outcome.success(), None, clock())])
    assert outbox_rows(db, "outcome") == []
    with db.connect() as conn:
        assert conn.execute(sa.select(t.work_order_events.c.routed_at)).scalar_one() is None


def test_code_table_override_changes_the_outcome_code(
    db: Engine, queue: WorkOrderQueue, clock: Clock, tmp_path: Path
) -> None:
    order = lease_one(queue, ActivityType.DISCONNECT, reason="losses")
    record_events(db, [event_row(order, Outcome.success(), 0, clock())])
    path = tmp_path / "codes.yaml"
    path.write_text('event_codes:\n  disconnected: "3.31.0.68"\n', encoding="utf-8")
    (row,) = outbox_rows(db, "outcome")
    rendered = Renderer(CodeBook.load(path)).render(row)
    assert b'EndDeviceEventType ref="3.31.0.68"' in rendered.xml


def test_expired_order_is_swept_once_and_published(
    db: Engine, queue: WorkOrderQueue, clock: Clock, validate: Callable[[bytes], Message]
) -> None:
    result = queue.submit(
        ActivityType.METER_SYNC,
        [TargetRef(meter="M2")],
        origin=Origin.LEGACY,
        external_id=CORRELATION,
        payload=REQUEST,
    )
    assert result.accepted == 1
    clock.now += timedelta(days=30)
    assert queue.lease("worker-1", 10, timedelta(minutes=5)) == []  # expires it
    codes = CodeBook()
    types = {n: codes.event_code(n) for n in ("expired", "cancelled", "work_order_failed")}
    publisher = OutboxPublisher(
        db,
        backend=EmbeddedBackend(db),
        timing=PublisherTiming(sweep_every=0, sweep_grace=timedelta(0)),
        clock=clock,
    )

    async def drain() -> None:
        await publisher.backend.open()
        await publisher.drain_once()
        await publisher.backend.close()

    asyncio.run(drain())
    (row,) = outbox_rows(db, "outcome")
    assert row["delivered_at"] is not None
    with db.begin() as conn:
        assert (
            sweep_outcomes(
                conn,
                since=clock.now - timedelta(days=1),
                until=clock.now,
                event_types=types,
                now=clock.now,
            )
            == 0
        )
        event_type = conn.execute(sa.select(t.work_order_events.c.event_type)).scalar_one()
        stored = conn.execute(sa.select(t.legacy_inbox.c.xml)).scalar_one()
    assert event_type == "3.31.0.64"
    message = validate(stored.encode())
    assert message.header.correlation_id == CORRELATION
    event = only_event(message)
    assert event.event_type == "3.31.0.64"
    details = dict(event.details)
    assert details["Outcome"] == "expired"
    assert details["FieldWorkRequired"] == "true"
    body = json.loads(str(row["payload"]))
    assert body["status"] == "expired"
