"""Automatic MeterSync on ORD: the switch works both ways, duplicates do not multiply syncs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from smmc.events.auto_sync import AutoSync
from smmc.store import tables as t
from smmc.store.events import Applied, Observation, apply_events
from smmc.store.work_orders import WorkOrderQueue

T0 = datetime(2026, 4, 10, 12, 0, tzinfo=UTC)
METERS = ["M-ORD-1", "M-ORD-2"]


def _fleet(db: Engine) -> None:
    with db.begin() as conn:
        dc = conn.execute(
            t.concentrators.insert().values(name="TD-1").returning(t.concentrators.c.id)
        ).scalar_one()
        conn.execute(
            t.meters.insert(), [{"serial_number": s, "concentrator_id": dc} for s in METERS]
        )


def _ord(db: Engine, words: int, at: datetime, *serials: str) -> Applied:
    with db.begin() as conn:
        return apply_events(
            conn, [Observation("meter", s, {"normal1": words}, at, "push") for s in serials]
        )


def _syncs(db: Engine) -> list[tuple[str, str]]:
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(t.meters.c.serial_number, t.work_orders.c.state)
            .join(t.meters, t.meters.c.id == t.work_orders.c.meter_id)
            .where(t.work_orders.c.activity == "MeterSync")
            .order_by(t.meters.c.serial_number)
        )
        return [(serial, state) for serial, state in rows]


def test_ord_queues_one_sync_per_meter_and_duplicates_add_none(db: Engine) -> None:
    _fleet(db)
    sync = AutoSync(WorkOrderQueue(db))
    applied = _ord(db, 2, T0, *METERS)
    assert sorted(sync.handle(applied)) == METERS
    # the same alarm again (a second batch repeating ORD) opens no event, queues nothing
    assert sync.handle(_ord(db, 2, T0 + timedelta(minutes=1), *METERS)) == []
    # ORD clears and rises again while the first sync is still pending: still one
    _ord(db, 0, T0 + timedelta(minutes=2), METERS[0])
    again = _ord(db, 2, T0 + timedelta(minutes=3), METERS[0])
    assert [row["acronym"] for row in again.opened] == ["ORD"]
    assert sync.handle(again) == []
    assert _syncs(db) == [(METERS[0], "PENDING"), (METERS[1], "PENDING")]


def test_switched_off_queues_nothing_and_on_again_queues(db: Engine) -> None:
    _fleet(db)
    queue = WorkOrderQueue(db)
    off = AutoSync(queue, enabled=False)
    applied = _ord(db, 2, T0, METERS[0])
    assert off.handle(applied) == []
    assert _syncs(db) == []
    on = AutoSync(queue, enabled=True)
    assert on.handle(applied) == [METERS[0]]
    assert _syncs(db) == [(METERS[0], "PENDING")]


def test_a_completed_sync_does_not_block_the_next_one(db: Engine) -> None:
    _fleet(db)
    sync = AutoSync(WorkOrderQueue(db))
    sync.handle(_ord(db, 2, T0, METERS[0]))
    with db.begin() as conn:
        conn.execute(t.work_orders.update().values(state="COMPLETED"))
    _ord(db, 0, T0 + timedelta(hours=1), METERS[0])
    assert sync.handle(_ord(db, 2, T0 + timedelta(hours=2), METERS[0])) == [METERS[0]]
