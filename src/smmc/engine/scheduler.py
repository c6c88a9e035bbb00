"""Persisted recurring activities: cron expressions in the local time of a zone, turned into
work orders when due.

Cron is evaluated on local wall-clock times, then each fire time is converted to UTC, so a
job keeps its local hour across DST changes. A wall time skipped by a spring-forward gap
fires once at the end of the gap; a wall time repeated when clocks go back fires once, at
its first occurrence. Missed runs (the scheduler was down) are not replayed one by one: the
schedule fires once and moves to its next time after now.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from croniter import croniter
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from smmc.domain.time import (
    DEFAULT_TIME_ZONE,
    NonexistentLocalTime,
    dst_transitions,
    to_local,
    to_utc,
    zone,
)
from smmc.domain.work_orders import (
    MAX_PRIORITY,
    MIN_PRIORITY,
    ActivityType,
    InvalidWorkOrder,
    Origin,
    Target,
)
from smmc.store import tables as t
from smmc.store.work_orders import TargetRef, WorkOrderQueue

__all__ = [
    "DAILY_CLOSURE_CRON",
    "LOAD_PROFILE_CRON",
    "MEASURANDS_CRON",
    "Schedule",
    "ScheduleScope",
    "Scheduler",
    "add_collection_schedules",
    "next_fire_time",
]

logger = logging.getLogger(__name__)

_MAX_STEPS = 10_000


class ScheduleScope(StrEnum):
    """Which targets one run creates orders for."""

    METER = "meter"  # target: a meter serial
    CONCENTRATOR = "concentrator"  # target: a concentrator name (concentrator activities)
    CONCENTRATOR_METERS = "concentrator_meters"  # every meter behind the target concentrator
    ALL_METERS = "all_meters"  # every meter with a communication path
    ALL_CONCENTRATORS = "all_concentrators"  # every concentrator (concentrator activities)
    POINT_TO_POINT_METERS = "point_to_point_meters"  # every meter with its own address


def _gap_end(wall: datetime, tz: str) -> datetime:
    """The UTC instant a spring-forward gap containing ``wall`` ends (the transition)."""
    readings = sorted(to_utc(wall, tz, fold=fold, strict=False) for fold in (0, 1))
    for transition in dst_transitions(tz, wall.year - 1, wall.year + 1):
        if readings[0] <= transition.at_utc <= readings[1]:
            return transition.at_utc
    return readings[1]


def next_fire_time(cron: str, tz: str, after: datetime) -> datetime:
    """First UTC instant strictly after ``after`` at which ``cron`` (local time in ``tz``)
    fires."""
    if after.tzinfo is None:
        raise ValueError("after must be timezone-aware")
    if not croniter.is_valid(cron):
        raise InvalidWorkOrder(f"cron: {cron!r} is not a valid cron expression")
    zone(tz)
    # Start one hour early in wall time so a repeated hour's first occurrence is not missed.
    start = to_local(after, tz).replace(tzinfo=None) - timedelta(hours=1)
    walls = croniter(cron, start)
    for _ in range(_MAX_STEPS):
        wall: datetime = walls.get_next(datetime)
        try:
            instant = to_utc(wall, tz, fold=0)
        except NonexistentLocalTime:
            instant = _gap_end(wall, tz)
        if instant > after:
            return instant
    raise InvalidWorkOrder(f"cron: {cron!r} does not fire within {_MAX_STEPS} steps")


@dataclass(frozen=True, slots=True)
class Schedule:
    id: int
    name: str
    activity: ActivityType
    cron: str
    time_zone: str
    scope: ScheduleScope
    target: str | None
    priority: int | None
    payload: Mapping[str, Any]
    enabled: bool
    next_run_at: datetime
    last_run_at: datetime | None


def _load(conn: Connection, ids: list[int] | None = None) -> list[Schedule]:
    s = t.work_order_schedules
    query = sa.select(s).order_by(s.c.id)
    if ids is not None:
        query = query.where(s.c.id.in_(ids))
    return [
        Schedule(
            id=row["id"],
            name=row["name"],
            activity=ActivityType(row["activity"]),
            cron=row["cron"],
            time_zone=row["time_zone"],
            scope=ScheduleScope(row["scope"]),
            target=row["target"],
            priority=row["priority"],
            payload=json.loads(row["payload"]) if row["payload"] else {},
            enabled=row["enabled"],
            next_run_at=row["next_run_at"],
            last_run_at=row["last_run_at"],
        )
        for row in conn.execute(query).mappings()
    ]


class Scheduler:
    """Schedules in the store; `run_due` creates the orders of every due schedule once, even
    with several schedulers running (rows are claimed with SKIP LOCKED on PostgreSQL)."""

    def __init__(self, queue: WorkOrderQueue) -> None:
        self.queue = queue

    def add(
        self,
        name: str,
        activity: ActivityType,
        cron: str,
        scope: ScheduleScope,
        target: str | None = None,
        *,
        time_zone: str = DEFAULT_TIME_ZONE,
        priority: int | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> int:
        if priority is not None and not MIN_PRIORITY <= priority <= MAX_PRIORITY:
            raise InvalidWorkOrder(
                f"priority: {priority} is outside {MIN_PRIORITY}..{MAX_PRIORITY}"
            )
        needs_target = scope in (
            ScheduleScope.METER,
            ScheduleScope.CONCENTRATOR,
            ScheduleScope.CONCENTRATOR_METERS,
        )
        if needs_target and not target:
            raise InvalidWorkOrder(f"target: scope {scope.value} needs a target")
        wants_dc = self.queue.policies[activity].target is Target.CONCENTRATOR
        if wants_dc != (scope in (ScheduleScope.CONCENTRATOR, ScheduleScope.ALL_CONCENTRATORS)):
            raise InvalidWorkOrder(
                f"scope: {activity.value} targets a {self.queue.policies[activity].target.value},"
                f" scope {scope.value} does not"
            )
        next_run = next_fire_time(cron, time_zone, self.queue.clock())
        with self.queue.transaction() as conn:
            return int(
                conn.execute(
                    t.work_order_schedules.insert()
                    .values(
                        name=name,
                        activity=activity.value,
                        cron=cron,
                        time_zone=time_zone,
                        scope=scope.value,
                        target=target,
                        priority=priority,
                        payload=json.dumps(dict(payload)) if payload else None,
                        enabled=True,
                        next_run_at=next_run,
                        created_at=self.queue.clock(),
                        updated_at=self.queue.clock(),
                    )
                    .returning(t.work_order_schedules.c.id)
                ).scalar_one()
            )

    def schedules(self) -> list[Schedule]:
        with self.queue.engine.connect() as conn:
            return _load(conn)

    def run_due(self) -> list[int]:
        """Create the orders of every due schedule; returns the batch ids created.

        The schedule row moves to its next fire time in the same transaction that claims it,
        then the orders are submitted: a crash in between skips that one run rather than
        running it twice."""
        s = t.work_order_schedules.c
        now = self.queue.clock()
        claimed: list[tuple[Schedule, datetime]] = []
        with self.queue.transaction() as conn:
            query = sa.select(s.id).where(s.enabled.is_(True), s.next_run_at <= now)
            if self.queue.is_postgresql:
                query = query.with_for_update(skip_locked=True)
            due = list(conn.execute(query).scalars())
            for schedule in _load(conn, due) if due else []:
                following = next_fire_time(schedule.cron, schedule.time_zone, now)
                conn.execute(
                    t.work_order_schedules.update()
                    .where(s.id == schedule.id)
                    .values(last_run_at=schedule.next_run_at, next_run_at=following, updated_at=now)
                )
                claimed.append((schedule, schedule.next_run_at))
        batches = []
        for schedule, fire_time in claimed:
            batch = self._submit(schedule, fire_time)
            if batch is not None:
                batches.append(batch)
        return batches

    def _targets(self, schedule: Schedule) -> list[TargetRef]:
        if schedule.scope is ScheduleScope.METER:
            return [TargetRef(meter=schedule.target)]
        if schedule.scope is ScheduleScope.CONCENTRATOR:
            return [TargetRef(concentrator=schedule.target)]
        if schedule.scope is ScheduleScope.CONCENTRATOR_METERS:
            return self.queue.meters_of_concentrator(schedule.target or "")
        m, c = t.meters.c, t.concentrators.c
        with self.queue.engine.connect() as conn:
            if schedule.scope is ScheduleScope.ALL_CONCENTRATORS:
                names = conn.execute(sa.select(c.name).order_by(c.name)).scalars()
                return [TargetRef(concentrator=name) for name in names]
            reachable = (
                sa.and_(m.concentrator_id.is_(None), m.host.is_not(None))
                if schedule.scope is ScheduleScope.POINT_TO_POINT_METERS
                else sa.or_(m.concentrator_id.is_not(None), m.host.is_not(None))
            )
            serials = conn.execute(
                sa.select(m.serial_number).where(reachable).order_by(m.serial_number)
            ).scalars()
            return [TargetRef(meter=serial) for serial in serials]

    def _submit(self, schedule: Schedule, fire_time: datetime) -> int | None:
        try:
            targets = self._targets(schedule)
            result = self.queue.submit(
                schedule.activity,
                targets,
                origin=Origin.SCHEDULER,
                external_id=f"schedule:{schedule.name}",
                priority=schedule.priority,
                payload={**schedule.payload, "fire_time": fire_time.isoformat()},
                schedule_id=schedule.id,
            )
        except InvalidWorkOrder:
            logger.exception("schedule %s could not create its orders", schedule.name)
            return None
        for rejected in result.rejected:
            logger.warning(
                "schedule %s: %s: %s", schedule.name, rejected.target.label(), rejected.reason
            )
        return result.batch_id

    async def run(self, stop: asyncio.Event, interval: float = 30.0) -> None:
        """Check for due schedules every ``interval`` seconds until ``stop`` is set."""
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.run_due)
            except SQLAlchemyError:
                logger.exception("scheduler: checking due schedules failed")
            try:
                await asyncio.wait_for(stop.wait(), timeout=interval)
            except TimeoutError:
                continue


DAILY_CLOSURE_CRON = "15 1 * * *"
"""Local 01:15: the closures of the day that just ended are captured (at midnight) and the
DC has had an hour to collect them."""
LOAD_PROFILE_CRON = "45 1 * * *"
MEASURANDS_CRON = LOAD_PROFILE_CRON
"""The concentrators' measurand read: by default with their load profile, as its own order."""


def add_collection_schedules(
    scheduler: Scheduler,
    *,
    daily_closure_cron: str = DAILY_CLOSURE_CRON,
    load_profile_cron: str = LOAD_PROFILE_CRON,
    measurands_cron: str | None = MEASURANDS_CRON,
    time_zone: str = DEFAULT_TIME_ZONE,
    lookback_days: int | None = None,
) -> list[int]:
    """The recurring collection entries (issue 7), as schedule ids: for every concentrator,
    in bulk from its collected data, the daily closure, the load profile ("n2pload") and
    the measurands, each its own entry (the DC's measurand read is a second bulk read over
    the PLC, which a utility schedules on its own; ``measurands_cron=None`` leaves it out);
    for every point-to-point meter the daily closure and the load profile with the
    measurands, in one association."""
    extra = {} if lookback_days is None else {"lookback_days": lookback_days}
    dcs = (ActivityType.COLLECTION, ScheduleScope.ALL_CONCENTRATORS, "concentrators")
    p2p = (ActivityType.METER_COLLECTION, ScheduleScope.POINT_TO_POINT_METERS, "meters")
    entries = [
        ("collection: daily closure", daily_closure_cron, ["daily_closure"], dcs),
        ("collection: daily closure", daily_closure_cron, ["daily_closure"], p2p),
        ("collection: load profile", load_profile_cron, ["load_profile"], dcs),
        ("collection: load profile", load_profile_cron, ["load_profile", "measurands"], p2p),
    ]
    if measurands_cron is not None:
        entries.append(("collection: measurands", measurands_cron, ["measurands"], dcs))
    return [
        scheduler.add(
            f"{name} ({who})",
            activity,
            cron,
            scope,
            time_zone=time_zone,
            payload={"collect": kinds, **extra},
        )
        for name, cron, kinds, (activity, scope, who) in entries
    ]
