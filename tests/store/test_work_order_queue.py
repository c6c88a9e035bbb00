"""The work-order queue against the real databases (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from query_plans import QueryPlans
from sqlalchemy.engine import Engine

from smmc.domain.calendar import WorkingDayCalendar
from smmc.domain.work_orders import (
    LEASABLE_STATES,
    ActivityType,
    InvalidTransition,
    InvalidWorkOrder,
    Origin,
    Outcome,
    State,
    View,
    load_policies,
)
from smmc.store import tables as t
from smmc.store.work_orders import (
    CSV_COLUMNS,
    LeaseLost,
    TargetRef,
    WorkOrderFilter,
    WorkOrderNotFound,
    WorkOrderQueue,
    write_csv,
)

# Monday 3 March 2025, 12:00 UTC (09:00 in Santiago, summer time UTC-3).
MONDAY = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)


@dataclass
class Clock:
    now: datetime = MONDAY

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def add_fleet(engine: Engine, concentrators: dict[str, int], p2p: int = 0) -> None:
    """Concentrators named DC-i with `n` meters M-<dc>-<k> each, linked to POD-<dc>-<k>;
    plus `p2p` point-to-point meters P-k."""
    with engine.begin() as conn:
        for name, count in concentrators.items():
            dc_id = conn.execute(
                t.concentrators.insert()
                .values(name=name, time_zone="America/Santiago")
                .returning(t.concentrators.c.id)
            ).scalar_one()
            for k in range(count):
                meter_id = conn.execute(
                    t.meters.insert()
                    .values(serial_number=f"M-{name}-{k}", concentrator_id=dc_id, node_address=k)
                    .returning(t.meters.c.id)
                ).scalar_one()
                sp_id = conn.execute(
                    t.service_points.insert()
                    .values(name=f"POD-{name}-{k}")
                    .returning(t.service_points.c.id)
                ).scalar_one()
                conn.execute(
                    t.meter_links.insert().values(
                        meter_id=meter_id, service_point_id=sp_id, valid_from=MONDAY
                    )
                )
        for k in range(p2p):
            conn.execute(
                t.meters.insert().values(serial_number=f"P-{k}", host="10.0.0.1", port=4059)
            )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(db: Engine, clock: Clock) -> WorkOrderQueue:
    return WorkOrderQueue(db, clock=clock, rng=random.Random(7), calendar=WorkingDayCalendar())


def meters(dc: str, count: int) -> list[TargetRef]:
    return [TargetRef(meter=f"M-{dc}-{k}") for k in range(count)]


def test_submit_bulk_shares_one_batch_and_reports_bad_rows(
    db: Engine, queue: WorkOrderQueue
) -> None:
    add_fleet(db, {"DC-1": 3})
    targets = [
        TargetRef(meter="M-DC-1-0"),
        TargetRef(pod="POD-DC-1-1"),
        TargetRef(meter="M-DC-1-2", pod="POD-DC-1-2"),
        TargetRef(meter="NOPE"),
        TargetRef(meter="M-DC-1-0", pod="POD-DC-1-1"),
        TargetRef(),
    ]
    result = queue.submit(ActivityType.READING, targets, external_id="EXT-1")
    assert result.accepted == 3
    assert [(r.index, r.reason.split(":")[0]) for r in result.rejected] == [
        (3, "meter"),
        (4, "pod"),
        (5, "meter"),
    ]
    assert "NOPE" in result.rejected[0].reason
    rows, total = queue.list_orders(WorkOrderFilter(batch_id=result.batch_id))
    assert total == 3
    assert {row["meter_serial"] for row in rows} == {"M-DC-1-0", "M-DC-1-1", "M-DC-1-2"}
    assert {row["service_point_name"] for row in rows} == {"POD-DC-1-0", "POD-DC-1-1", "POD-DC-1-2"}
    assert all(row["state"] == "PENDING" and row["concentrator_name"] == "DC-1" for row in rows)
    policy = load_policies()[ActivityType.READING]
    assert all(row["priority"] == policy.priority for row in rows)
    assert all(row["deadline"] == MONDAY + policy.duration for row in rows)


def test_submit_all_rejected_creates_no_batch(db: Engine, queue: WorkOrderQueue) -> None:
    result = queue.submit(ActivityType.READING, [TargetRef(meter="X")])
    assert result.batch_id is None
    assert result.accepted == 0
    with db.connect() as conn:
        assert (
            conn.execute(sa.select(sa.func.count()).select_from(t.work_order_batches)).scalar() == 0
        )


def test_submit_validates_request(db: Engine, queue: WorkOrderQueue) -> None:
    add_fleet(db, {"DC-1": 1})
    with pytest.raises(InvalidWorkOrder, match="priority"):
        queue.submit(ActivityType.READING, meters("DC-1", 1), priority=10)
    with pytest.raises(InvalidWorkOrder, match="reason"):
        queue.submit(ActivityType.DISCONNECT, meters("DC-1", 1))
    result = queue.submit(
        ActivityType.MASTER_SYNC, [TargetRef(concentrator="DC-1"), TargetRef(concentrator="DC-9")]
    )
    assert result.accepted == 1
    assert "DC-9" in result.rejected[0].reason


def test_disconnect_on_saturday_waits_for_monday_unless_special(
    db: Engine, queue: WorkOrderQueue, clock: Clock
) -> None:
    add_fleet(db, {"DC-1": 2})
    clock.now = datetime(2025, 3, 8, 15, 0, tzinfo=UTC)  # Saturday 12:00 local
    normal = queue.submit(ActivityType.DISCONNECT, meters("DC-1", 1), reason="non_payment")
    special = queue.submit(
        ActivityType.DISCONNECT, [TargetRef(meter="M-DC-1-1")], reason="losses", special=True
    )
    (normal_row,), _ = queue.list_orders(WorkOrderFilter(batch_id=normal.batch_id))
    (special_row,), _ = queue.list_orders(WorkOrderFilter(batch_id=special.batch_id))
    assert normal_row["scheduled_at"] == datetime(2025, 3, 10, 11, 0, tzinfo=UTC)  # Mon 08:00
    assert special_row["scheduled_at"] == clock.now
    assert [o.meter_serial for o in queue.lease("w", 10, LEASE)] == ["M-DC-1-1"]


def test_lease_honours_priority_schedule_and_one_session_per_concentrator(
    db: Engine, queue: WorkOrderQueue, clock: Clock
) -> None:
    add_fleet(db, {"DC-1": 3, "DC-2": 3})
    queue.submit(ActivityType.READING, meters("DC-1", 3), priority=2)
    queue.submit(ActivityType.READING, meters("DC-2", 2), priority=7)
    queue.submit(
        ActivityType.READING,
        [TargetRef(meter="M-DC-2-2")],
        priority=9,
        scheduled_at=MONDAY + timedelta(minutes=30),
    )
    first = queue.lease("w1", 10, LEASE)
    # One per concentrator (default permit 1); DC-2's best due order has priority 7.
    assert sorted((o.concentrator_name, o.priority) for o in first) == [("DC-1", 2), ("DC-2", 7)]
    assert all(o.attempt == 1 and o.worker == "w1" for o in first)
    assert queue.lease("w2", 10, LEASE) == []
    for order in first:
        assert queue.record(order, Outcome.success({"kwh": 1})) is State.COMPLETED
    clock.advance(minutes=30)
    second = queue.lease("w2", 10, LEASE)
    assert sorted((o.meter_serial, o.priority) for o in second) == [
        ("M-DC-1-1", 2),
        ("M-DC-2-2", 9),
    ]


def test_permits_per_concentrator_and_meter_exclusivity(db: Engine, queue: WorkOrderQueue) -> None:
    add_fleet(db, {"DC-1": 3}, p2p=1)
    queue.set_permits("DC-1", 2)
    queue.submit(ActivityType.READING, meters("DC-1", 3))
    queue.submit(ActivityType.METER_SYNC, [TargetRef(meter="M-DC-1-0")])
    queue.submit(ActivityType.READING, [TargetRef(meter="P-0"), TargetRef(meter="P-0")])
    leased = queue.lease("w", 10, LEASE)
    on_dc = [o for o in leased if o.concentrator_name == "DC-1"]
    assert len(on_dc) == 2
    assert len({o.meter_id for o in on_dc}) == 2
    assert [o.meter_serial for o in leased if o.concentrator_id is None] == ["P-0"]
    with db.connect() as conn:
        running = (
            conn.execute(
                sa.select(t.work_orders.c.meter_id).where(t.work_orders.c.state == "RUNNING")
            )
            .scalars()
            .all()
        )
    assert len(running) == len(set(running)) == 3


def test_lease_takes_the_best_orders_across_queues_within_each_ones_permits(
    db: Engine, clock: Clock
) -> None:
    """Each queue gives at most its free permits (a point-to-point meter one, whatever the
    default), and the lease takes the best of those first, whichever queue they are in."""
    queue = WorkOrderQueue(db, default_permits=2, clock=clock, calendar=WorkingDayCalendar())
    add_fleet(db, {"DC-1": 4, "DC-2": 4, "DC-3": 2}, p2p=1)
    queue.set_permits("DC-1", 3)
    queue.set_permits("DC-3", 1)
    queue.submit(ActivityType.READING, meters("DC-1", 4), priority=2)
    queue.submit(ActivityType.READING, meters("DC-2", 4), priority=8)
    queue.submit(ActivityType.READING, meters("DC-3", 2), priority=5)
    queue.submit(ActivityType.READING, [TargetRef(meter="P-0")] * 2, priority=6)
    first = queue.lease("w", 3, LEASE)
    assert [(o.meter_serial, o.priority) for o in first] == [
        ("M-DC-2-0", 8),
        ("M-DC-2-1", 8),
        ("P-0", 6),
    ]
    rest = queue.lease("w", 10, LEASE)
    assert [(o.meter_serial, o.priority) for o in rest] == [
        ("M-DC-3-0", 5),
        ("M-DC-1-0", 2),
        ("M-DC-1-1", 2),
        ("M-DC-1-2", 2),
    ]
    assert queue.lease("w", 10, LEASE) == []


def test_lease_walks_past_orders_that_cannot_start_now(db: Engine, queue: WorkOrderQueue) -> None:
    """A concentrator's best queued orders may be on a busy meter, not due yet or of another
    activity: the lease takes the next ones instead, as many as the free permits."""
    add_fleet(db, {"DC-1": 5})
    queue.set_permits("DC-1", 3)
    queue.submit(ActivityType.READING, meters("DC-1", 1), priority=9)
    (running,) = queue.lease("w", 1, LEASE)
    queue.submit(ActivityType.READING, meters("DC-1", 1), priority=9)  # its meter is busy
    queue.submit(
        ActivityType.READING,
        [TargetRef(meter="M-DC-1-1")],
        priority=8,
        scheduled_at=MONDAY + timedelta(minutes=30),
    )
    queue.submit(ActivityType.METER_SYNC, [TargetRef(meter="M-DC-1-2")], priority=7)
    queue.submit(ActivityType.READING, [TargetRef(meter="M-DC-1-3")], priority=2)
    queue.submit(ActivityType.READING, [TargetRef(meter="M-DC-1-4")], priority=1)
    leased = queue.lease("w", 10, LEASE, activities=[ActivityType.READING])
    assert [o.meter_serial for o in leased] == ["M-DC-1-3", "M-DC-1-4"]
    assert queue.record(running, Outcome.success()) is State.COMPLETED
    # One permit free again; its meter no longer busy, the priority-9 order goes first.
    assert [o.meter_serial for o in queue.lease("w", 10, LEASE)] == ["M-DC-1-0"]


def test_the_leasable_index_condition_names_the_leasable_states() -> None:
    """The partial index's condition is text; the queries write the same term from the
    domain's states (SQLite uses the index only if both read alike)."""
    states = ", ".join(f"'{state.value}'" for state in sorted(LEASABLE_STATES))
    assert f"state IN ({states})" == t.LEASABLE_CONDITION


def test_lease_reads_the_head_of_each_queue_on_sqlite(
    db: Engine, queue: WorkOrderQueue, sqlite_plans: QueryPlans
) -> None:
    """The candidate query seeks each queue in the leasable index and reads its head; it
    never reads the queued states' entries of another index (the whole queue)."""
    add_fleet(db, {"DC-1": 3, "DC-2": 3}, p2p=1)
    queue.submit(ActivityType.READING, [*meters("DC-1", 3), *meters("DC-2", 3)])
    queue.submit(ActivityType.READING, [TargetRef(meter="P-0")])
    with sqlite_plans("WITH RECURSIVE groups") as plans:
        assert len(queue.lease("w", 10, LEASE, activities=[ActivityType.READING])) == 3
    (plan,) = plans
    assert "SEARCH work_orders USING INDEX ix_work_orders_leasable (<expr>>?)" in plan
    assert "SEARCH queued USING INDEX ix_work_orders_leasable (<expr>=?)" in plan
    assert "SEARCH busy_orders USING INDEX uq_work_orders_running_meter (meter_id=?)" in plan
    steps = plan.split(" | ")
    # Only the RUNNING orders are read through the state index (their count per queue).
    assert [s for s in steps if "ix_work_orders_queue" in s] == [
        "SEARCH running_orders USING INDEX ix_work_orders_queue (state=?)"
    ]
    assert not [s for s in steps if s.startswith("SCAN") and "work_orders" in s]
    assert not [s for s in steps if s.startswith("SCAN queued")]


def test_lease_filters_by_activity(db: Engine, queue: WorkOrderQueue) -> None:
    add_fleet(db, {"DC-1": 1, "DC-2": 1})
    queue.submit(ActivityType.READING, meters("DC-1", 1))
    queue.submit(ActivityType.METER_SYNC, meters("DC-2", 1))
    leased = queue.lease("w", 10, LEASE, activities=[ActivityType.METER_SYNC])
    assert [o.activity for o in leased] == [ActivityType.METER_SYNC]


def test_record_and_lease_stores_outcomes_and_starts_orders_in_one_transaction(
    db: Engine, queue: WorkOrderQueue
) -> None:
    add_fleet(db, {"DC-1": 3})
    queue.submit(ActivityType.READING, meters("DC-1", 3))
    (first,) = queue.lease("w", 1, LEASE)
    states, leased = queue.record_and_lease(
        [(first, Outcome.success())], None, "w", 5, LEASE
    )  # the permit the outcome frees goes to the next order, in the same transaction
    assert states == [State.COMPLETED]
    assert [order.attempt for order in leased] == [1]
    assert leased[0].id != first.id

    def broken(conn: Any, recorded: Any) -> None:
        raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError):
        queue.record_and_lease([(leased[0], Outcome.success())], broken, "w", 5, LEASE)
    rows, _ = queue.list_orders(WorkOrderFilter())
    # Neither the outcome nor the lease of the third order it would have made room for.
    assert sorted(row["state"] for row in rows) == ["COMPLETED", "PENDING", "RUNNING"]
    assert queue.record(leased[0], Outcome.success()) is State.COMPLETED


def test_expired_lease_returns_the_order_and_old_holder_cannot_record(
    db: Engine, queue: WorkOrderQueue, clock: Clock
) -> None:
    add_fleet(db, {"DC-1": 1})
    queue.submit(ActivityType.READING, meters("DC-1", 1))
    (lost,) = queue.lease("dead-worker", 1, LEASE)
    clock.advance(minutes=4)
    assert queue.renew(lost, LEASE) == clock.now + LEASE
    clock.advance(minutes=6)
    (again,) = queue.lease("live-worker", 1, LEASE)
    assert again.id == lost.id
    assert again.attempt == 2
    assert queue.renew(lost, LEASE) is None
    with pytest.raises(LeaseLost):
        queue.record(lost, Outcome.success())
    assert queue.record(again, Outcome.success()) is State.COMPLETED
    history = queue.attempts(lost.id)
    assert [(a["attempt"], a["worker"], a["outcome"]) for a in history] == [
        (1, "dead-worker", "LEASE_LOST"),
        (2, "live-worker", "COMPLETED"),
    ]
    with pytest.raises(LeaseLost):
        queue.record(again, Outcome.success())


def test_retry_with_backoff_then_final_failure_opens_field_work_order(
    db: Engine, queue: WorkOrderQueue, clock: Clock
) -> None:
    add_fleet(db, {"DC-1": 1})
    queue.submit(ActivityType.READING, meters("DC-1", 1), priority=6)
    policy = load_policies()[ActivityType.READING]
    error = "[READ_METER_MACADDRESS] [TB_ACK_40] REPEATER 1 FAILURE"
    for attempt in range(1, policy.max_attempts + 1):
        (order,) = queue.lease("w", 1, LEASE)
        assert order.attempt == attempt
        assert order.priority == max(0, 6 - policy.priority_decay * (attempt - 1))
        state = queue.record(order, Outcome.failure(error, retryable=True))
        if attempt < policy.max_attempts:
            assert state is State.RETRY
            row = queue.get(order.id)
            low = policy.backoff_base * 2 ** (attempt - 1) * (1 - policy.backoff_jitter)
            assert (
                clock.now + low
                <= row["scheduled_at"]
                <= clock.now + policy.backoff_base * 2 ** (attempt - 1)
            )
            assert queue.lease("w", 1, LEASE) == []  # not due yet
            clock.now = row["scheduled_at"]
        else:
            assert state is State.FAILED
    row = queue.get(order.id)
    assert row["is_error"]
    assert row["error_text"] == error
    (field_order,) = queue.field_work_orders()
    assert field_order["work_order_id"] == order.id
    assert field_order["reason"] == error


def test_non_retryable_failure_fails_at_once(db: Engine, queue: WorkOrderQueue) -> None:
    add_fleet(db, {"DC-1": 1})
    queue.submit(ActivityType.READING, meters("DC-1", 1))
    (order,) = queue.lease("w", 1, LEASE)
    assert queue.record(order, Outcome.failure("Wrong Key", retryable=False)) is State.FAILED
    assert len(queue.field_work_orders()) == 1


def test_deadline_expires_queued_orders(db: Engine, queue: WorkOrderQueue, clock: Clock) -> None:
    add_fleet(db, {"DC-1": 2})
    queue.submit(ActivityType.READING, meters("DC-1", 2))
    (running,) = queue.lease("w", 10, timedelta(hours=2))
    clock.advance(seconds=load_policies()[ActivityType.READING].duration.total_seconds() + 1)
    assert queue.lease("w", 10, LEASE) == []
    rows, _ = queue.list_orders(WorkOrderFilter(state=State.EXPIRED))
    assert [row["meter_serial"] for row in rows] == ["M-DC-1-1"]
    assert rows[0]["error_text"].startswith("deadline passed")
    # The running one finishes late with a retryable failure: no time left, EXPIRED.
    assert queue.record(running, Outcome.failure("NODE NOT REACHABLE", retryable=True)) is (
        State.EXPIRED
    )
    assert len(queue.field_work_orders()) == 2


def test_sweeps_run_once_per_sweep_every_and_overdue_orders_wait_for_them(
    db: Engine, queue: WorkOrderQueue, clock: Clock
) -> None:
    add_fleet(db, {"DC-1": 1})
    queue.submit(ActivityType.READING, meters("DC-1", 1))
    duration = load_policies()[ActivityType.READING].duration.total_seconds()
    clock.advance(seconds=duration - 0.5)
    # Sweeps (nothing overdue yet); the filter leaves the order queued.
    assert queue.lease("w", 1, LEASE, activities=[ActivityType.METER_SYNC]) == []
    clock.advance(seconds=0.6)  # overdue, within a second of the last sweep
    assert queue.lease("w", 1, LEASE) == []  # not leased, not expired yet
    (row,) = queue.list_orders(WorkOrderFilter())[0]
    assert row["state"] == State.PENDING.value
    clock.advance(seconds=queue.sweep_every.total_seconds())
    assert queue.lease("w", 1, LEASE) == []
    (row,) = queue.list_orders(WorkOrderFilter())[0]
    assert row["state"] == State.EXPIRED.value
    assert len(queue.field_work_orders()) == 1


def test_cancel(db: Engine, queue: WorkOrderQueue) -> None:
    add_fleet(db, {"DC-1": 2})
    result = queue.submit(ActivityType.READING, meters("DC-1", 2))
    rows, _ = queue.list_orders(WorkOrderFilter(batch_id=result.batch_id))
    pending_id = max(row["id"] for row in rows)
    (running,) = queue.lease("w", 1, LEASE)
    assert running.id != pending_id
    assert queue.cancel(pending_id) is State.CANCELLED
    with pytest.raises(InvalidTransition):
        queue.cancel(pending_id)
    with pytest.raises(InvalidTransition):
        queue.cancel(running.id)
    with pytest.raises(WorkOrderNotFound):
        queue.cancel(999_999)
    assert queue.lease("w", 5, LEASE) == []
    assert result.batch_id is not None
    progress = queue.batch_progress(result.batch_id)
    assert progress.total == 2
    assert dict(progress.by_state) == {"CANCELLED": 1, "RUNNING": 1}
    assert progress.finished == 1


def test_filters_and_views(db: Engine, queue: WorkOrderQueue, clock: Clock) -> None:
    add_fleet(db, {"DC-1": 2, "DC-2": 1})
    reading = queue.submit(ActivityType.READING, meters("DC-1", 2), origin=Origin.LEGACY)
    queue.submit(ActivityType.METER_SYNC, meters("DC-2", 1), origin=Origin.SCHEDULER)
    queue.submit(ActivityType.COMMISSIONING, [TargetRef(meter="M-DC-2-0")])
    for order in queue.lease("w", 10, LEASE, activities=[ActivityType.READING]):
        queue.record(order, Outcome.success())
        clock.advance(hours=1)

    def serials(**kwargs: Any) -> list[tuple[str, str]]:
        rows, total = queue.list_orders(WorkOrderFilter(**kwargs))
        assert total == len(rows)
        return sorted((row["activity"], row["meter_serial"]) for row in rows)

    assert serials(batch_id=reading.batch_id) == [("Reading", "M-DC-1-0"), ("Reading", "M-DC-1-1")]
    assert serials(activity=ActivityType.METER_SYNC) == [("MeterSync", "M-DC-2-0")]
    assert serials(concentrator="DC-2") == [
        ("Commissioning", "M-DC-2-0"),
        ("MeterSync", "M-DC-2-0"),
    ]
    assert serials(meter="M-DC-1-1") == [("Reading", "M-DC-1-1")]
    assert serials(pod="POD-DC-1-0") == [("Reading", "M-DC-1-0")]
    assert serials(view=View.COMMERCIAL_COMPLETED) == [("Reading", "M-DC-1-0")]
    assert serials(view=View.COMMERCIAL_PENDING) == [("Reading", "M-DC-1-1")]
    assert serials(view=View.TECHNICAL_PENDING) == [
        ("Commissioning", "M-DC-2-0"),
        ("MeterSync", "M-DC-2-0"),
    ]
    assert serials(view=View.SCHEDULED_PENDING) == [("MeterSync", "M-DC-2-0")]
    assert serials(view=View.PROVISIONING) == [("Commissioning", "M-DC-2-0")]
    # One reading ended at MONDAY (leased and recorded before the clock moved).
    assert serials(ended_from=MONDAY, ended_to=MONDAY + timedelta(minutes=1)) == [
        ("Reading", "M-DC-1-0")
    ]
    assert serials(ended_from=MONDAY + timedelta(minutes=1)) == []
    rows, total = queue.list_orders(WorkOrderFilter(), limit=2, offset=1)
    assert total == 4
    assert len(rows) == 2


def test_csv_report_has_exactly_the_seed_columns_and_local_times(
    db: Engine, queue: WorkOrderQueue, clock: Clock
) -> None:
    add_fleet(db, {"DC-1": 1})
    with db.begin() as conn:
        conn.execute(t.concentrators.update().values(time_zone="America/Punta_Arenas"))
    clock.now = datetime(2021, 10, 7, 1, 14, 12, tzinfo=UTC)
    result = queue.submit(
        ActivityType.DECOMMISSIONING,
        meters("DC-1", 1),
        origin=Origin.LEGACY,
        external_id="140962_7101936-CORTE_20210721100728",
    )
    (order,) = queue.lease("w", 1, LEASE)
    clock.advance(seconds=175)
    queue.record(
        order,
        Outcome.failure("Concentrator is unreachable [Open socket is failed]", retryable=False),
    )
    stream = io.StringIO()
    assert write_csv(queue.iter_rows(WorkOrderFilter()), stream) == 1
    lines = list(csv.reader(io.StringIO(stream.getvalue())))
    assert tuple(lines[0]) == CSV_COLUMNS
    assert lines[0] == [
        "idwork",
        "concentrator",
        "pod",
        "meter",
        "activity type",
        "startdate utc",
        "enddate utc",
        "startdate local",
        "enddate local",
        "external sys",
        "outer id",
        "payload",
        "is error",
        "error description",
    ]
    assert lines[1] == [
        str(result.batch_id),
        "DC-1",
        "POD-DC-1-0",
        "M-DC-1-0",
        "Decommissioning",
        "2021-10-07 01:14:12",
        "2021-10-07 01:17:07",
        "2021-10-06 22:14:12",  # Punta Arenas: UTC-3 all year
        "2021-10-06 22:17:07",
        "TRUE",
        "140962_7101936-CORTE_20210721100728",
        "",
        "TRUE",
        "Concentrator is unreachable [Open socket is failed]",
    ]


def test_record_many_settles_each_attempt_once(db: Engine, queue: WorkOrderQueue) -> None:
    add_fleet(db, {"DC-1": 1, "DC-2": 1, "DC-3": 1})
    queue.submit(ActivityType.READING, [*meters("DC-1", 1), *meters("DC-2", 1), *meters("DC-3", 1)])
    first, second, third = queue.lease("w", 3, LEASE)
    states = queue.record_many(
        [
            (first, Outcome.success({"v": 1})),
            (second, Outcome.failure("NODE NOT REACHABLE", retryable=True)),
            (first, Outcome.success({"v": 2})),  # duplicate: already settled above
            (third, Outcome.failure("Wrong Key", retryable=False)),
        ]
    )
    assert states == [State.COMPLETED, State.RETRY, None, State.FAILED]
    assert queue.get(first.id)["result"] == '{"v": 1}'
    retry = queue.get(second.id)
    assert retry["ended_at"] is None
    assert retry["scheduled_at"] > MONDAY
    assert retry["priority"] == second.priority - 1
    assert queue.get(third.id)["ended_at"] == MONDAY
    assert [f["work_order_id"] for f in queue.field_work_orders()] == [third.id]
    assert queue.record_many([]) == []
