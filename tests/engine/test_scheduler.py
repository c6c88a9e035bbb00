"""Cron in local time across the 2025 DST changes of America/Santiago.

Fall back: Sunday 6 April 2025 00:00 (UTC-3) → Saturday 5 April 23:00 (UTC-4): Saturday
23:00–23:59 happens twice. Spring forward: Sunday 7 September 2025 00:00 (UTC-4) → 01:00
(UTC-3): 00:00–00:59 never happens.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from wo_fixtures import Clock, add_fleet

from smmc.domain.time import to_local
from smmc.domain.work_orders import ActivityType, InvalidWorkOrder, Origin
from smmc.engine.scheduler import Scheduler, ScheduleScope, next_fire_time
from smmc.store.work_orders import WorkOrderFilter, WorkOrderQueue

SANTIAGO = "America/Santiago"


def fires(cron: str, start: datetime, end: datetime, tz: str = SANTIAGO) -> list[datetime]:
    times = []
    instant = next_fire_time(cron, tz, start)
    while instant < end:
        times.append(instant)
        instant = next_fire_time(cron, tz, instant)
    return times


def local(instant: datetime) -> str:
    return to_local(instant, SANTIAGO).strftime("%m-%d %H:%M %z")


def test_daily_0230_runs_once_per_day_across_both_changes() -> None:
    april = fires("30 2 * * *", datetime(2025, 4, 4, tzinfo=UTC), datetime(2025, 4, 8, tzinfo=UTC))
    assert [local(x) for x in april] == [
        "04-04 02:30 -0300",
        "04-05 02:30 -0300",
        "04-06 02:30 -0400",
        "04-07 02:30 -0400",
    ]
    september = fires(
        "30 2 * * *", datetime(2025, 9, 5, tzinfo=UTC), datetime(2025, 9, 9, tzinfo=UTC)
    )
    assert [local(x) for x in september] == [
        "09-05 02:30 -0400",
        "09-06 02:30 -0400",
        "09-07 02:30 -0300",
        "09-08 02:30 -0300",
    ]


def test_job_in_the_repeated_hour_runs_once_at_its_first_occurrence() -> None:
    times = fires(
        "30 23 * * *", datetime(2025, 4, 4, 12, tzinfo=UTC), datetime(2025, 4, 8, 12, tzinfo=UTC)
    )
    assert [local(x) for x in times] == [
        "04-04 23:30 -0300",
        "04-05 23:30 -0300",  # first occurrence; the second (-0400) does not fire
        "04-06 23:30 -0400",
        "04-07 23:30 -0400",
    ]
    assert times[1] == datetime(2025, 4, 6, 2, 30, tzinfo=UTC)


def test_job_in_the_skipped_hour_runs_once_when_the_gap_ends() -> None:
    times = fires("30 0 * * *", datetime(2025, 9, 5, tzinfo=UTC), datetime(2025, 9, 9, tzinfo=UTC))
    assert [local(x) for x in times] == [
        "09-05 00:30 -0400",
        "09-06 00:30 -0400",
        "09-07 01:00 -0300",  # 00:30 does not exist: at the end of the gap
        "09-08 00:30 -0300",
    ]


def test_quarter_hour_job_through_the_gap_fires_once_at_its_end() -> None:
    times = fires(
        "*/15 * * * *",
        datetime(2025, 9, 7, 3, 30, tzinfo=UTC),
        datetime(2025, 9, 7, 4, 31, tzinfo=UTC),
    )
    assert [local(x) for x in times] == [
        "09-06 23:45 -0400",
        "09-07 01:00 -0300",
        "09-07 01:15 -0300",
        "09-07 01:30 -0300",
    ]


def test_hourly_job_on_fall_back_day_runs_the_repeated_hour_once() -> None:
    times = fires(
        "0 * * * *",
        datetime(2025, 4, 6, 0, 30, tzinfo=UTC),
        datetime(2025, 4, 6, 5, 30, tzinfo=UTC),
    )
    assert [local(x) for x in times] == [
        "04-05 22:00 -0300",
        "04-05 23:00 -0300",
        "04-06 00:00 -0400",
        "04-06 01:00 -0400",
    ]


@settings(max_examples=50, deadline=None)
@given(
    st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2026, 12, 31)),
    st.sampled_from(["30 2 * * *", "0 * * * *", "*/15 * * * *", "30 0 * * 0", "30 23 * * 6"]),
)
def test_next_fire_is_strictly_later_and_monotonic(naive: datetime, cron: str) -> None:
    after = naive.replace(tzinfo=UTC)
    first = next_fire_time(cron, SANTIAGO, after)
    second = next_fire_time(cron, SANTIAGO, first)
    assert after < first < second
    assert first - after <= timedelta(days=8)


def test_bad_cron_and_naive_times_are_refused() -> None:
    with pytest.raises(InvalidWorkOrder, match="cron"):
        next_fire_time("61 * * * *", SANTIAGO, datetime(2025, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="aware"):
        next_fire_time("0 * * * *", SANTIAGO, datetime(2025, 1, 1))


def test_scheduler_creates_orders_once_per_fire_time(
    db: Engine, queue: WorkOrderQueue, clock: Clock
) -> None:
    add_fleet(db, {"DC-1": 3})
    clock.now = datetime(2025, 4, 5, 12, 0, tzinfo=UTC)
    scheduler = Scheduler(queue)
    scheduler.add(
        "late-outage-check",
        ActivityType.OUTAGE_CHECK,
        "30 23 * * *",
        ScheduleScope.CONCENTRATOR_METERS,
        "DC-1",
        priority=2,
    )
    scheduler.add(
        "dc-sync", ActivityType.MASTER_SYNC, "0 3 * * *", ScheduleScope.CONCENTRATOR, "DC-1"
    )
    (late, _) = scheduler.schedules()
    assert late.next_run_at == datetime(2025, 4, 6, 2, 30, tzinfo=UTC)
    assert scheduler.run_due() == []
    created = []
    # Walk through the fall-back night in 10-minute steps.
    while clock.now < datetime(2025, 4, 6, 8, 0, tzinfo=UTC):
        clock.advance(minutes=10)
        created += scheduler.run_due()
    assert len(created) == 2
    rows, total = queue.list_orders(WorkOrderFilter(activity=ActivityType.OUTAGE_CHECK))
    assert total == 3
    assert {row["origin"] for row in rows} == {Origin.SCHEDULER.value}
    assert {row["priority"] for row in rows} == {2}
    _, syncs = queue.list_orders(WorkOrderFilter(activity=ActivityType.MASTER_SYNC))
    assert syncs == 1
    late, _ = scheduler.schedules()
    assert late.last_run_at == datetime(2025, 4, 6, 2, 30, tzinfo=UTC)
    assert late.next_run_at == datetime(2025, 4, 7, 3, 30, tzinfo=UTC)


def test_scheduler_refuses_mismatched_scope(queue: WorkOrderQueue) -> None:
    scheduler = Scheduler(queue)
    with pytest.raises(InvalidWorkOrder, match="scope"):
        scheduler.add("x", ActivityType.READING, "0 * * * *", ScheduleScope.CONCENTRATOR, "DC")
    with pytest.raises(InvalidWorkOrder, match="target"):
        scheduler.add("y", ActivityType.READING, "0 * * * *", ScheduleScope.METER)
