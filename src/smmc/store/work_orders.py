"""The work-order queue in the central database: submission, leasing, outcomes, queries and
the seed's CSV report.

Leasing is one short transaction. On PostgreSQL several worker processes share the queue:
candidate rows are locked with ``FOR UPDATE SKIP LOCKED`` and each concentrator (or
point-to-point meter) is claimed with a transaction-scoped advisory lock before its RUNNING
orders are counted, so two workers never overshoot a concentrator's permits. On SQLite the
transaction starts with ``BEGIN IMMEDIATE``: one writer at a time, the claim is atomic.

A lease expires: a worker that dies leaves RUNNING rows whose lease runs out, and the next
lease call puts them back in the queue (the lost attempt counts). Outcomes are accepted only
from the lease holder of the current attempt, so no order is completed twice.
"""

from __future__ import annotations

import csv
import functools
import json
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping
from sqlalchemy.sql.util import find_tables

from smmc.domain.calendar import WorkingDayCalendar
from smmc.domain.time import DEFAULT_TIME_ZONE, to_local
from smmc.domain.work_orders import (
    FINAL_STATES,
    LEASABLE_STATES,
    MAX_PRIORITY,
    MIN_PRIORITY,
    VIEWS,
    ActivityType,
    InvalidWorkOrder,
    Origin,
    Outcome,
    PolicyBook,
    State,
    Target,
    View,
    check_transition,
    decide,
    earliest_start,
    load_policies,
    validate_reason,
)
from smmc.store import tables as t
from smmc.store.tables import UtcDateTime

__all__ = [
    "CSV_COLUMNS",
    "BatchProgress",
    "LeaseLost",
    "LeasedOrder",
    "OutcomeWriter",
    "Rejected",
    "SubmitResult",
    "TargetRef",
    "WorkOrderFilter",
    "WorkOrderNotFound",
    "WorkOrderQueue",
    "csv_record",
    "write_csv",
]

CSV_COLUMNS = (
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
)
_CHUNK = 500
_LEASE_LOST_TEXT = "lease expired: the worker stopped answering during the attempt"
_OVERDUE_TEXT = "deadline passed before the order could complete"
# Advisory lock namespaces (first key of pg_try_advisory_xact_lock(int, int)).
_LOCK_CONCENTRATOR = 1
_LOCK_METER = 2

wo = t.work_orders


class LeaseLost(Exception):
    """The caller no longer holds the lease of this attempt: its outcome is not recorded."""


class WorkOrderNotFound(LookupError):
    def __init__(self, order_id: int) -> None:
        super().__init__(f"work order {order_id} not found")
        self.order_id = order_id


@dataclass(frozen=True, slots=True)
class TargetRef:
    """One row of a submission: a meter (by serial and/or POD) or a concentrator by name."""

    meter: str | None = None
    pod: str | None = None
    concentrator: str | None = None

    def label(self) -> str:
        parts = [
            f"{k}={v}"
            for k, v in (
                ("meter", self.meter),
                ("pod", self.pod),
                ("concentrator", self.concentrator),
            )
            if v
        ]
        return ", ".join(parts) or "empty target"


@dataclass(frozen=True, slots=True)
class Rejected:
    index: int
    target: TargetRef
    reason: str


@dataclass(frozen=True, slots=True)
class SubmitResult:
    batch_id: int | None
    accepted: int
    rejected: tuple[Rejected, ...]


@dataclass(frozen=True, slots=True)
class LeasedOrder:
    """What an executor gets: the order, its targets and the lease of this attempt.
    ``origin`` and ``external_id`` say who asked and under which correlation id (Legacy's
    CorrelationID), so executors and events can answer in the caller's terms."""

    id: int
    batch_id: int
    activity: ActivityType
    origin: Origin
    external_id: str | None
    attempt: int
    max_attempts: int
    priority: int
    base_priority: int
    meter_id: int | None
    meter_serial: str | None
    concentrator_id: int | None
    concentrator_name: str | None
    service_point: str | None
    reason: str | None
    special: bool
    payload: Mapping[str, Any]
    scheduled_at: datetime
    deadline: datetime
    worker: str
    lease_expires_at: datetime


# Called in the transaction that stores a batch of outcomes, with each order of the batch
# and its new state (None: not stored, the lease was lost) — `record_many`'s ``also``.
OutcomeWriter = Callable[[Connection, Sequence[tuple[LeasedOrder, State | None]]], None]


@dataclass(frozen=True, slots=True)
class WorkOrderFilter:
    """The seed's filters: idwork (batch), activity type, concentrator, meter serial, POD,
    end-date range; plus a monitoring view and a state."""

    batch_id: int | None = None
    activity: ActivityType | None = None
    concentrator: str | None = None
    meter: str | None = None
    pod: str | None = None
    ended_from: datetime | None = None
    ended_to: datetime | None = None
    view: View | None = None
    state: State | None = None


@dataclass(frozen=True, slots=True)
class BatchProgress:
    batch_id: int
    activity: str
    origin: str
    external_id: str | None
    total: int
    by_state: Mapping[str, int] = field(default_factory=dict)

    @property
    def finished(self) -> int:
        return sum(n for state, n in self.by_state.items() if State(state) in FINAL_STATES)


@dataclass(frozen=True, slots=True)
class _Resolved:
    meter_id: int | None
    concentrator_id: int | None
    service_point_id: int | None
    time_zone: str


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _dumps(value: Mapping[str, Any] | None) -> str | None:
    return None if not value else json.dumps(value, sort_keys=True, default=str)


def _loads(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    loaded = json.loads(text)
    return loaded if isinstance(loaded, dict) else {"value": loaded}


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class WorkOrderQueue:
    """Repository of work orders over one engine. ``clock`` and ``rng`` are injectable so
    tests drive lease expiry and backoff without sleeping."""

    def __init__(
        self,
        engine: Engine,
        policies: PolicyBook | None = None,
        *,
        default_permits: int = 1,
        clock: Callable[[], datetime] = _utc_now,
        rng: random.Random | None = None,
        calendar: WorkingDayCalendar | None = None,
        sweep_every: timedelta = timedelta(seconds=1),
    ) -> None:
        if default_permits < 1:
            raise ValueError(f"default_permits must be at least 1, got {default_permits}")
        self.engine = engine
        self.policies = policies or load_policies()
        self.default_permits = default_permits
        self.clock = clock
        self.rng = rng or random.Random()
        self._calendar = calendar
        self.is_postgresql = engine.dialect.name == "postgresql"
        # Expired leases and overdue orders are settled by a lease at most once per
        # ``sweep_every`` of the queue's clock: the overdue scan reads the whole queue, and a
        # worker leases many times a second (`_sweep_due`).
        self.sweep_every = sweep_every
        self._swept_at: datetime | None = None

    # -- transactions ---------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction; on SQLite it takes the write lock up front (BEGIN IMMEDIATE)
        so a read-then-update claim cannot interleave with another writer."""
        if self.is_postgresql:
            with self.engine.begin() as conn:
                yield conn
            return
        with self.engine.connect() as conn:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    def calendar(self) -> WorkingDayCalendar:
        if self._calendar is None:
            from smmc.store.time_tables import working_day_calendar

            self._calendar = working_day_calendar(self.engine)
        return self._calendar

    # -- submission -----------------------------------------------------------------------

    def submit(
        self,
        activity: ActivityType,
        targets: Sequence[TargetRef],
        *,
        origin: Origin = Origin.OPERATOR,
        external_id: str | None = None,
        priority: int | None = None,
        scheduled_at: datetime | None = None,
        special: bool = False,
        reason: str | None = None,
        payload: Mapping[str, Any] | None = None,
        schedule_id: int | None = None,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> SubmitResult:
        """One batch (the seed's idwork) with one order per accepted target. Targets that
        cannot be resolved are returned as rejected, naming the row and why; the others are
        queued. ``on_progress(done, total)`` follows the inserts of a large batch."""
        if priority is not None and not MIN_PRIORITY <= priority <= MAX_PRIORITY:
            raise InvalidWorkOrder(
                f"priority: {priority} is outside {MIN_PRIORITY}..{MAX_PRIORITY}"
            )
        if scheduled_at is not None and scheduled_at.tzinfo is None:
            raise InvalidWorkOrder("scheduled_at: give a time zone (UTC is stored)")
        if external_id is not None and len(external_id) > 100:
            raise InvalidWorkOrder("external_id: longer than 100 characters")
        checked_reason = validate_reason(activity, reason)
        policy = self.policies[activity]
        now = self.clock()
        requested = max(now, scheduled_at) if scheduled_at else now
        rejected: list[Rejected] = []
        rows: list[dict[str, Any]] = []
        calendar = self.calendar() if policy.working_days_only and not special else None
        with self.transaction() as conn:
            resolved = self._resolve(conn, policy.target, targets, rejected)
            for target in resolved:
                start = requested
                if calendar is not None:
                    start = earliest_start(
                        requested, policy, calendar, target.time_zone, special=special
                    )
                base = policy.priority if priority is None else priority
                rows.append(
                    {
                        "activity": activity.value,
                        "state": State.PENDING.value,
                        "priority": base,
                        "base_priority": base,
                        "origin": origin.value,
                        "external_id": external_id,
                        "meter_id": target.meter_id,
                        "concentrator_id": target.concentrator_id,
                        "service_point_id": target.service_point_id,
                        "reason": checked_reason,
                        "special": special,
                        "payload": _dumps(payload),
                        "attempts": 0,
                        "max_attempts": policy.max_attempts,
                        "scheduled_at": start,
                        "deadline": start + policy.duration,
                        "schedule_id": schedule_id,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
            if not rows:
                return SubmitResult(None, 0, tuple(rejected))
            batch_id = conn.execute(
                t.work_order_batches.insert()
                .values(
                    activity=activity.value,
                    origin=origin.value,
                    external_id=external_id,
                    total=len(rows),
                    created_at=now,
                )
                .returning(t.work_order_batches.c.id)
            ).scalar_one()
            for row in rows:
                row["batch_id"] = batch_id
            written = 0
            for chunk in _chunks(rows, 1000):
                conn.execute(wo.insert(), list(chunk))
                written += len(chunk)
                if on_progress is not None:
                    on_progress(written, len(rows))
        return SubmitResult(int(batch_id), len(rows), tuple(rejected))

    def _resolve(
        self,
        conn: Connection,
        kind: Target,
        targets: Sequence[TargetRef],
        rejected: list[Rejected],
    ) -> list[_Resolved]:
        if kind is Target.CONCENTRATOR:
            return self._resolve_concentrators(conn, targets, rejected)
        return self._resolve_meters(conn, targets, rejected)

    def _resolve_concentrators(
        self, conn: Connection, targets: Sequence[TargetRef], rejected: list[Rejected]
    ) -> list[_Resolved]:
        c = t.concentrators.c
        names = sorted({ref.concentrator for ref in targets if ref.concentrator})
        known: dict[str, tuple[int, str]] = {}
        for chunk in _chunks(names):
            for row in conn.execute(sa.select(c.id, c.name, c.time_zone).where(c.name.in_(chunk))):
                known[row.name] = (row.id, row.time_zone)
        resolved = []
        for index, ref in enumerate(targets):
            if not ref.concentrator:
                rejected.append(Rejected(index, ref, "concentrator: required for this activity"))
            elif ref.concentrator not in known:
                rejected.append(
                    Rejected(index, ref, f"concentrator: {ref.concentrator!r} is not registered")
                )
            else:
                dc_id, tz = known[ref.concentrator]
                resolved.append(_Resolved(None, dc_id, None, tz))
        return resolved

    def _resolve_meters(
        self, conn: Connection, targets: Sequence[TargetRef], rejected: list[Rejected]
    ) -> list[_Resolved]:
        m, c, sp, link = t.meters.c, t.concentrators.c, t.service_points.c, t.meter_links.c
        base = (
            sa.select(
                m.id,
                m.serial_number,
                m.concentrator_id,
                m.host,
                c.name.label("concentrator"),
                c.time_zone,
                sp.id.label("service_point_id"),
                sp.name.label("pod"),
            )
            .select_from(t.meters)
            .outerjoin(t.concentrators, c.id == m.concentrator_id)
            .outerjoin(t.meter_links, sa.and_(link.meter_id == m.id, link.valid_to.is_(None)))
            .outerjoin(t.service_points, sp.id == link.service_point_id)
        )
        by_serial: dict[str, RowMapping] = {}
        by_pod: dict[str, RowMapping] = {}
        serials = sorted({ref.meter for ref in targets if ref.meter})
        pods = sorted({ref.pod for ref in targets if ref.pod and not ref.meter})
        for chunk in _chunks(serials):
            for row in conn.execute(base.where(m.serial_number.in_(chunk))).mappings():
                by_serial[row["serial_number"]] = row
        for chunk in _chunks(pods):
            for row in conn.execute(base.where(sp.name.in_(chunk))).mappings():
                by_pod[row["pod"]] = row
        resolved = []
        for index, ref in enumerate(targets):
            problem, found = self._match_meter(ref, by_serial, by_pod)
            if problem is not None or found is None:
                rejected.append(Rejected(index, ref, problem or "meter: not found"))
                continue
            resolved.append(
                _Resolved(
                    found["id"],
                    found["concentrator_id"],
                    found["service_point_id"],
                    found["time_zone"] or DEFAULT_TIME_ZONE,
                )
            )
        return resolved

    @staticmethod
    def _match_meter(
        ref: TargetRef, by_serial: Mapping[str, RowMapping], by_pod: Mapping[str, RowMapping]
    ) -> tuple[str | None, RowMapping | None]:
        if ref.meter:
            row = by_serial.get(ref.meter)
            if row is None:
                return f"meter: serial {ref.meter!r} is not registered", None
            if ref.pod and row["pod"] != ref.pod:
                linked = row["pod"] or "no POD"
                return f"pod: meter {ref.meter} is linked to {linked}, not {ref.pod}", None
        elif ref.pod:
            row = by_pod.get(ref.pod)
            if row is None:
                return f"pod: {ref.pod!r} is not registered or has no meter linked", None
        else:
            return "meter: give a meter serial or a POD", None
        if ref.concentrator and row["concentrator"] != ref.concentrator:
            return (
                f"concentrator: meter {row['serial_number']} is not behind {ref.concentrator}",
                None,
            )
        if row["concentrator_id"] is None and row["host"] is None:
            return (
                f"meter: {row['serial_number']} has no concentrator and no network address",
                None,
            )
        return None, row

    def meters_of_concentrator(self, name: str) -> list[TargetRef]:
        """Every meter behind a concentrator, as targets (bulk "by concentrator")."""
        m, c = t.meters.c, t.concentrators.c
        with self.engine.connect() as conn:
            if conn.execute(sa.select(c.id).where(c.name == name)).first() is None:
                raise InvalidWorkOrder(f"concentrator: {name!r} is not registered")
            serials = conn.execute(
                sa.select(m.serial_number)
                .join(t.concentrators, c.id == m.concentrator_id)
                .where(c.name == name)
                .order_by(m.serial_number)
            ).scalars()
            return [TargetRef(meter=serial) for serial in serials]

    def set_permits(self, concentrator: str, max_sessions: int) -> None:
        """Maximum concurrent RUNNING orders on one concentrator (default: the queue's)."""
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be at least 1, got {max_sessions}")
        cp = t.concentrator_permits
        with self.transaction() as conn:
            dc_id = conn.execute(
                sa.select(t.concentrators.c.id).where(t.concentrators.c.name == concentrator)
            ).scalar()
            if dc_id is None:
                raise InvalidWorkOrder(f"concentrator: {concentrator!r} is not registered")
            conn.execute(cp.delete().where(cp.c.concentrator_id == dc_id))
            conn.execute(cp.insert().values(concentrator_id=dc_id, max_sessions=max_sessions))

    # -- leasing --------------------------------------------------------------------------

    def lease(
        self,
        worker: str,
        limit: int,
        lease_for: timedelta,
        activities: Iterable[ActivityType] | None = None,
    ) -> list[LeasedOrder]:
        """Claim up to ``limit`` due orders for ``worker``: highest priority first, then
        earliest scheduled, honouring concentrator permits and one RUNNING order per meter.
        Expired leases and overdue orders are settled first (at most once per
        ``sweep_every``; an overdue order is never leased meanwhile)."""
        with self.transaction() as conn:
            return self._lease(conn, worker, limit, lease_for, activities)

    def _lease(
        self,
        conn: Connection,
        worker: str,
        limit: int,
        lease_for: timedelta,
        activities: Iterable[ActivityType] | None,
    ) -> list[LeasedOrder]:
        """`lease` in ``conn``'s transaction."""
        if limit < 1:
            return []
        wanted = None if activities is None else sorted(a.value for a in activities)
        now = self.clock()
        if self._sweep_due(now):
            self._reclaim(conn, now)
            self._expire_overdue(conn, now)
        # PostgreSQL reads twice as many: another worker may lock or lease some meanwhile.
        wider = limit * 2 if self.is_postgresql else limit
        candidates = self._candidates(conn, now, wanted, wider)
        if not candidates:
            return []
        locked = self._lock_rows(conn, candidates, limit)
        picked = self._pick(conn, locked, limit)
        if not picked:
            return []
        expires = now + lease_for
        ids = [row["id"] for row in picked]
        conn.execute(
            _START_STATEMENT, {"ids": ids, "owner": worker, "expires": expires, "now": now}
        )
        conn.execute(
            _ATTEMPT_STATEMENT,
            [
                {
                    "work_order_id": row["id"],
                    "attempt": row["attempts"] + 1,
                    "worker": worker,
                    "started_at": now,
                }
                for row in picked
            ],
        )
        return [self._leased(row, worker, expires) for row in picked]

    def _permits(self, conn: Connection) -> dict[int, int]:
        return {row.concentrator_id: row.max_sessions for row in conn.execute(_PERMITS_STATEMENT)}

    def _sweep_due(self, now: datetime) -> bool:
        """Whether this lease settles expired leases and overdue orders: the first one, then
        once ``sweep_every`` has passed (or the clock went back). An expired lease goes back
        to the queue ``sweep_every`` late at most, against leases of minutes."""
        last = self._swept_at
        if last is not None and last <= now < last + self.sweep_every:
            return False
        self._swept_at = now
        return True

    def _candidates(
        self, conn: Connection, now: datetime, wanted: list[str] | None, limit: int
    ) -> list[RowMapping]:
        """Due orders that could start now: on no busy meter, and per concentrator at most as
        many as it has free permits (per point-to-point meter: one), best first."""
        params: dict[str, Any] = {"now": now, "limit": limit}
        if wanted is not None:
            params["wanted"] = wanted
        query = _candidates_query(self.default_permits, wanted is not None, self.is_postgresql)
        return list(conn.execute(query, params).mappings())

    def _lock_rows(self, conn: Connection, rows: list[RowMapping], limit: int) -> list[RowMapping]:
        """The best ``limit`` candidates, locked on PostgreSQL (rows locked but not leased
        would hide them from the other workers until this transaction ends) and read again
        there: another worker may have leased some since. On SQLite the candidate query ran
        under this transaction's write lock, so its rows are current."""
        if not self.is_postgresql:
            return rows
        ids = [row["id"] for row in rows]
        return list(conn.execute(_LOCK_STATEMENT, {"ids": ids, "limit": limit}).mappings())

    @staticmethod
    def _group_key(row: RowMapping) -> tuple[int, int]:
        if row["concentrator_id"] is not None:
            return (_LOCK_CONCENTRATOR, int(row["concentrator_id"]))
        return (_LOCK_METER, int(row["meter_id"]))

    def _claim_groups(self, conn: Connection, rows: list[RowMapping]) -> list[RowMapping]:
        """On PostgreSQL, take the advisory lock of each row's concentrator (or point-to-point
        meter) for this transaction, in one round trip; rows whose group another leasing
        worker holds are skipped."""
        if not self.is_postgresql or not rows:
            return rows
        keys = sorted({self._group_key(row) for row in rows})
        granted = {
            (kind, key)
            for kind, key, ok in conn.execute(
                sa.text(
                    "SELECT k.kind, k.key, pg_try_advisory_xact_lock(k.kind, k.key) "
                    "FROM unnest(CAST(:kinds AS int[]), CAST(:keys AS int[])) AS k(kind, key)"
                ),
                {"kinds": [k[0] for k in keys], "keys": [k[1] for k in keys]},
            )
            if ok
        }
        return [row for row in rows if self._group_key(row) in granted]

    def _pick(self, conn: Connection, rows: list[RowMapping], limit: int) -> list[RowMapping]:
        """The locked candidates to lease: at most ``limit``, one per meter, within each
        concentrator's free permits.

        On SQLite the candidate query ran under this transaction's write lock (BEGIN
        IMMEDIATE), so the free permits and busy meters it saw are current and only two
        candidates of one meter are left to separate. On PostgreSQL another worker may have
        leased since: the running counts and busy meters are read again under the
        concentrators' advisory locks."""
        if not self.is_postgresql:
            busy: set[int] = set()
            picked: list[RowMapping] = []
            for row in rows:
                meter_id = row["meter_id"]
                if meter_id is None or meter_id not in busy:
                    busy.add(meter_id)
                    picked.append(row)
            return picked  # ``rows`` are at most ``limit`` (`_candidates`)
        eligible = self._claim_groups(conn, rows)
        permits = self._permits(conn)
        dc_ids = sorted({row["concentrator_id"] for row in eligible if row["concentrator_id"]})
        meter_ids = sorted({row["meter_id"] for row in eligible if row["meter_id"]})
        running: dict[int, int] = {}
        for chunk in _chunks(dc_ids):
            for dc_id, count in conn.execute(_RUNNING_PER_DC_STATEMENT, {"ids": chunk}):
                running[dc_id] = count
        busy_meters: set[int] = set()
        for chunk in _chunks(meter_ids):
            busy_meters.update(conn.execute(_BUSY_METERS_STATEMENT, {"ids": chunk}).scalars())
        picked = []
        for row in eligible:
            if len(picked) >= limit:
                break
            dc_id, meter_id = row["concentrator_id"], row["meter_id"]
            if meter_id is not None and meter_id in busy_meters:
                continue
            if dc_id is not None:
                if running.get(dc_id, 0) >= permits.get(dc_id, self.default_permits):
                    continue
                running[dc_id] = running.get(dc_id, 0) + 1
            if meter_id is not None:
                busy_meters.add(meter_id)
            picked.append(row)
        return picked

    @staticmethod
    def _leased(row: RowMapping, worker: str, expires: datetime) -> LeasedOrder:
        """The order of ``row`` (read before its attempt started: `_LEASE_COLUMNS`)."""
        return LeasedOrder(
            id=row["id"],
            batch_id=row["batch_id"],
            activity=ActivityType(row["activity"]),
            origin=Origin(row["origin"]),
            external_id=row["external_id"],
            attempt=row["attempts"] + 1,
            max_attempts=row["max_attempts"],
            priority=row["priority"],
            base_priority=row["base_priority"],
            meter_id=row["meter_id"],
            meter_serial=row["meter_serial"],
            concentrator_id=row["concentrator_id"],
            concentrator_name=row["concentrator_name"],
            service_point=row["service_point_name"],
            reason=row["reason"],
            special=row["special"],
            payload=_loads(row["payload"]),
            scheduled_at=row["scheduled_at"],
            deadline=row["deadline"],
            worker=worker,
            lease_expires_at=expires,
        )

    def renew(self, order: LeasedOrder, lease_for: timedelta) -> datetime | None:
        """Extend the lease of a running attempt; None when it was lost meanwhile."""
        with self.transaction() as conn:
            expires = self.clock() + lease_for
            updated = conn.execute(
                wo.update().where(*self._held(order)).values(lease_expires_at=expires)
            ).rowcount
        return expires if updated == 1 else None

    @staticmethod
    def _held(order: LeasedOrder) -> list[sa.ColumnElement[bool]]:
        return [
            wo.c.id == order.id,
            wo.c.state == State.RUNNING.value,
            wo.c.lease_owner == order.worker,
            wo.c.attempts == order.attempt,
        ]

    # -- outcomes -------------------------------------------------------------------------

    def record(self, order: LeasedOrder, outcome: Outcome) -> State:
        """Store the outcome of this attempt and move the order on (COMPLETED, RETRY with
        backoff, FAILED, EXPIRED). Raises ``LeaseLost`` when the lease was taken back."""
        (state,) = self.record_many([(order, outcome)])
        if state is None:
            raise LeaseLost(
                f"work order {order.id} attempt {order.attempt} is no longer leased by "
                f"{order.worker}"
            )
        return state

    def record_many(
        self,
        items: Sequence[tuple[LeasedOrder, Outcome]],
        also: OutcomeWriter | None = None,
    ) -> list[State | None]:
        """`record` for many attempts in one transaction (one commit instead of one per
        order); the state of each, or None where the lease was lost. ``also(conn, orders
        and their states)`` runs in that transaction: rows stored with the outcomes or not
        at all."""
        if not items:
            return []
        with self.transaction() as conn:
            return self._record(conn, items, also)

    def record_and_lease(
        self,
        items: Sequence[tuple[LeasedOrder, Outcome]],
        also: OutcomeWriter | None,
        worker: str,
        limit: int,
        lease_for: timedelta,
        activities: Iterable[ActivityType] | None = None,
    ) -> tuple[list[State | None], list[LeasedOrder]]:
        """`record_many` then `lease` in one transaction: a worker whose orders finish as
        others start pays one commit (and one thread hop) for both. Both or neither."""
        with self.transaction() as conn:
            states = self._record(conn, items, also) if items else []
            return states, self._lease(conn, worker, limit, lease_for, activities)

    def _record(
        self,
        conn: Connection,
        items: Sequence[tuple[LeasedOrder, Outcome]],
        also: OutcomeWriter | None,
    ) -> list[State | None]:
        """`record_many` in ``conn``'s transaction."""
        query = _recorded_statement(self.is_postgresql)
        ids = sorted({order.id for order, _ in items})
        current = {row["id"]: row for row in conn.execute(query, {"ids": ids}).mappings()}
        now = self.clock()
        states: list[State | None] = []
        attempts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        failed: list[int] = []
        for order, outcome in items:
            row = current.get(order.id)
            if (
                row is None
                or row["state"] != State.RUNNING.value
                or row["lease_owner"] != order.worker
                or row["attempts"] != order.attempt
            ):
                states.append(None)
                continue
            decision = decide(
                outcome,
                attempt=order.attempt,
                max_attempts=order.max_attempts,
                base_priority=order.base_priority,
                policy=self.policies[order.activity],
                now=now,
                deadline=row["deadline"],
                fraction=self.rng.random(),
            )
            check_transition(State.RUNNING, decision.state)
            states.append(decision.state)
            # The row is settled now: a duplicate item in the same call is refused.
            del current[order.id]
            attempts.append(
                {
                    "b_order": order.id,
                    "b_attempt": order.attempt,
                    "ended_at": now,
                    "outcome": decision.state.value,
                    "error_text": outcome.error_text,
                }
            )
            retry = decision.state is State.RETRY
            updates.append(
                {
                    "b_id": order.id,
                    "state": decision.state.value,
                    "result": _dumps(outcome.result),
                    "is_error": not outcome.ok,
                    "error_text": outcome.error_text,
                    "lease_owner": None,
                    "lease_expires_at": None,
                    "updated_at": now,
                    "scheduled_at": decision.retry_at if retry else None,
                    "priority": decision.priority if retry else None,
                    "ended_at": None if retry else now,
                }
            )
            if decision.state in (State.FAILED, State.EXPIRED):
                failed.append(order.id)
        if attempts:
            conn.execute(_END_ATTEMPTS_STATEMENT, attempts)
            conn.execute(_SETTLE_STATEMENT, updates)
        self._open_field_orders(conn, failed, now)
        if also is not None:
            also(conn, [(order, state) for (order, _), state in zip(items, states, strict=True)])
        return states

    @staticmethod
    def _close_attempt(
        conn: Connection,
        order_id: int,
        attempt: int,
        now: datetime,
        outcome: State | str,
        error_text: str | None,
    ) -> None:
        a = t.work_order_attempts.c
        conn.execute(
            t.work_order_attempts.update()
            .where(a.work_order_id == order_id, a.attempt == attempt)
            .values(ended_at=now, outcome=str(outcome), error_text=error_text)
        )

    def _open_field_orders(self, conn: Connection, ids: Sequence[int], now: datetime) -> None:
        """A field work order for a technician per finally failed order, with the reason."""
        if not ids:
            return
        rows = conn.execute(
            sa.select(
                wo.c.id, wo.c.meter_id, wo.c.concentrator_id, wo.c.activity, wo.c.error_text
            ).where(wo.c.id.in_(ids))
        ).mappings()
        conn.execute(
            t.field_work_orders.insert(),
            [
                {
                    "work_order_id": row["id"],
                    "meter_id": row["meter_id"],
                    "concentrator_id": row["concentrator_id"],
                    "activity": row["activity"],
                    "reason": row["error_text"] or "remote execution failed",
                    "created_at": now,
                }
                for row in rows
            ],
        )

    def _reclaim(self, conn: Connection, now: datetime) -> None:
        """RUNNING orders whose lease ran out go back to the queue (or fail, if that was the
        last attempt): their worker is gone."""
        lost = list(conn.execute(_lost_statement(self.is_postgresql), {"now": now}).mappings())
        failed: list[int] = []
        for row in lost:
            self._close_attempt(
                conn, row["id"], row["attempts"], now, "LEASE_LOST", _LEASE_LOST_TEXT
            )
            final = row["attempts"] >= row["max_attempts"] or row["deadline"] <= now
            state = State.FAILED if row["attempts"] >= row["max_attempts"] else State.EXPIRED
            values: dict[str, Any] = {
                "lease_owner": None,
                "lease_expires_at": None,
                "error_text": _LEASE_LOST_TEXT,
                "is_error": True,
                "updated_at": now,
            }
            if final:
                values.update(state=state.value, ended_at=now)
                failed.append(row["id"])
            else:
                values.update(state=State.RETRY.value, scheduled_at=now)
            conn.execute(wo.update().where(wo.c.id == row["id"]).values(**values))
        self._open_field_orders(conn, failed, now)

    def _expire_overdue(self, conn: Connection, now: datetime) -> None:
        """Queued orders past their deadline end EXPIRED, with a field work order."""
        ids = list(conn.execute(_overdue_statement(self.is_postgresql), {"now": now}).scalars())
        for chunk in _chunks(ids):
            conn.execute(
                wo.update()
                .where(wo.c.id.in_(chunk))
                .values(
                    state=State.EXPIRED.value,
                    ended_at=now,
                    is_error=True,
                    error_text=sa.func.coalesce(wo.c.error_text, _OVERDUE_TEXT),
                    updated_at=now,
                )
            )
            self._open_field_orders(conn, chunk, now)

    def cancel(self, order_id: int) -> State:
        """Cancel a queued order. A RUNNING order cannot be cancelled: its field command may
        already be on the wire. Raises ``InvalidTransition`` or ``WorkOrderNotFound``."""
        with self.transaction() as conn:
            query = sa.select(wo.c.state).where(wo.c.id == order_id)
            if self.is_postgresql:
                query = query.with_for_update()
            current = conn.execute(query).scalar()
            if current is None:
                raise WorkOrderNotFound(order_id)
            check_transition(State(current), State.CANCELLED)
            now = self.clock()
            conn.execute(
                wo.update()
                .where(wo.c.id == order_id)
                .values(state=State.CANCELLED.value, ended_at=now, updated_at=now)
            )
        return State.CANCELLED

    # -- queries --------------------------------------------------------------------------

    def listing_query(self, filters: WorkOrderFilter) -> sa.Select[Any]:
        m, c, sp = t.meters.c, t.concentrators.c, t.service_points.c
        query = (
            sa.select(
                wo,
                m.serial_number.label("meter_serial"),
                c.name.label("concentrator_name"),
                c.time_zone.label("time_zone"),
                sp.name.label("service_point_name"),
            )
            .select_from(wo)
            .outerjoin(t.meters, m.id == wo.c.meter_id)
            .outerjoin(t.concentrators, c.id == wo.c.concentrator_id)
            .outerjoin(t.service_points, sp.id == wo.c.service_point_id)
        )
        if filters.batch_id is not None:
            query = query.where(wo.c.batch_id == filters.batch_id)
        if filters.activity is not None:
            query = query.where(wo.c.activity == filters.activity.value)
        if filters.concentrator is not None:
            query = query.where(c.name == filters.concentrator)
        if filters.meter is not None:
            query = query.where(m.serial_number == filters.meter)
        if filters.pod is not None:
            query = query.where(sp.name == filters.pod)
        if filters.ended_from is not None:
            query = query.where(wo.c.ended_at >= filters.ended_from)
        if filters.ended_to is not None:
            query = query.where(wo.c.ended_at < filters.ended_to)
        if filters.state is not None:
            query = query.where(wo.c.state == filters.state.value)
        if filters.view is not None:
            spec = VIEWS[filters.view]
            if spec.states is not None:
                query = query.where(wo.c.state.in_(sorted(s.value for s in spec.states)))
            if spec.origin is not None:
                query = query.where(wo.c.origin == spec.origin.value)
            allowed = spec.activity_set(self.policies)
            if allowed is not None:
                query = query.where(wo.c.activity.in_(sorted(a.value for a in allowed)))
        return query

    def list_orders(
        self, filters: WorkOrderFilter, limit: int = 100, offset: int = 0
    ) -> tuple[list[RowMapping], int]:
        """A page of orders (newest first) and the total matching the filters. The count and
        the page's ids read `work_orders` alone (its view index) unless a filter names a
        joined table — the listing's joins are outer joins on unique keys, so leaving them out
        never changes the rows — and only the page's ids are joined and read in full: over
        100,000 orders the joins are the cost."""
        query = self.listing_query(filters)
        where = query.whereclause
        if where is None or set(find_tables(where, check_columns=True)) <= {t.work_orders}:
            ids = sa.select(wo.c.id).where(*([] if where is None else [where]))
        else:
            ids = query.with_only_columns(wo.c.id)
        newest = wo.c.id.desc()
        with self.engine.connect() as conn:
            total = conn.execute(
                sa.select(sa.func.count()).select_from(ids.subquery())
            ).scalar_one()
            chosen = list(conn.execute(ids.order_by(newest).limit(limit).offset(offset)).scalars())
            rows: list[RowMapping] = []
            if chosen:
                page = query.where(wo.c.id.in_(chosen)).order_by(newest)
                rows = list(conn.execute(page).mappings())
        return rows, int(total)

    def iter_rows(self, filters: WorkOrderFilter) -> Iterator[RowMapping]:
        """Every matching order in id order, for the CSV report."""
        with self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=1000).execute(
                self.listing_query(filters).order_by(wo.c.id)
            )
            yield from result.mappings()

    def get(self, order_id: int) -> RowMapping:
        with self.engine.connect() as conn:
            row = (
                conn.execute(self.listing_query(WorkOrderFilter()).where(wo.c.id == order_id))
                .mappings()
                .first()
            )
        if row is None:
            raise WorkOrderNotFound(order_id)
        return row

    def attempts(self, order_id: int) -> list[RowMapping]:
        a = t.work_order_attempts.c
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(t.work_order_attempts)
                    .where(a.work_order_id == order_id)
                    .order_by(a.attempt)
                ).mappings()
            )

    def field_work_orders(self) -> list[RowMapping]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    sa.select(t.field_work_orders).order_by(t.field_work_orders.c.id)
                ).mappings()
            )

    def batch_progress(self, batch_id: int) -> BatchProgress:
        b = t.work_order_batches.c
        with self.engine.connect() as conn:
            batch = (
                conn.execute(sa.select(t.work_order_batches).where(b.id == batch_id))
                .mappings()
                .first()
            )
            if batch is None:
                raise WorkOrderNotFound(batch_id)
            counts = {
                state: int(count)
                for state, count in conn.execute(
                    sa.select(wo.c.state, sa.func.count())
                    .where(wo.c.batch_id == batch_id)
                    .group_by(wo.c.state)
                )
            }
        return BatchProgress(
            batch_id,
            batch["activity"],
            batch["origin"],
            batch["external_id"],
            batch["total"],
            counts,
        )


def _stamp(value: datetime | None, tz: str | None = None) -> str:
    if value is None:
        return ""
    shown = to_local(value, tz) if tz else value.astimezone(UTC)
    return shown.strftime("%Y-%m-%d %H:%M:%S")


def csv_record(row: RowMapping) -> list[str]:
    """One report line in ``CSV_COLUMNS`` order; local times use the concentrator's zone."""
    tz = row["time_zone"] or DEFAULT_TIME_ZONE
    return [
        str(row["batch_id"]),
        row["concentrator_name"] or "",
        row["service_point_name"] or "",
        row["meter_serial"] or "",
        row["activity"],
        _stamp(row["started_at"]),
        _stamp(row["ended_at"]),
        _stamp(row["started_at"], tz),
        _stamp(row["ended_at"], tz),
        "TRUE" if row["origin"] == Origin.LEGACY.value else "FALSE",
        row["external_id"] or "",
        row["result"] or "",
        "TRUE" if row["is_error"] else "FALSE",
        row["error_text"] or "",
    ]


def write_csv(rows: Iterable[RowMapping], stream: TextIO) -> int:
    """The seed's work-order report: header then one line per order; returns the count."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    count = 0
    for row in rows:
        writer.writerow(csv_record(row))
        count += 1
    return count


def _literal_in(column: sa.ColumnElement[str], states: Iterable[State]) -> sa.ColumnElement[bool]:
    """``column IN ('A', 'B')`` with the values written in the statement, as the partial
    indexes state them: SQLite reads a partial index only for a term written as its
    condition, and a generic plan of PostgreSQL's knows no parameter's value."""
    return column.in_([sa.literal_column(f"'{state.value}'") for state in sorted(states)])


_RUNNING_LITERAL: sa.ColumnElement[str] = sa.literal_column(f"'{State.RUNNING.value}'")


def _queue_group(table: sa.FromClause) -> sa.ColumnElement[int]:
    """The queue an order waits in: its concentrator's, or its point-to-point meter's (the
    meter's id negated) — ``tables.QUEUE_GROUP``, the leasable index's first column."""
    return sa.func.coalesce(table.c.concentrator_id, -table.c.meter_id)


def _best_first(table: sa.FromClause) -> tuple[sa.ColumnElement[Any], ...]:
    return (table.c.priority.desc(), table.c.scheduled_at, table.c.id)


def _startable(table: sa.FromClause, by_activity: bool) -> list[sa.ColumnElement[bool]]:
    """Orders of ``table`` that could start at ``now``: queued, due, not overdue (the next
    sweep expires those, `WorkOrderQueue._sweep_due`), of a ``wanted`` activity and on a
    meter with no RUNNING order."""
    busy = wo.alias("busy_orders")
    conditions = [
        _literal_in(table.c.state, LEASABLE_STATES),
        table.c.scheduled_at <= sa.bindparam("now"),
        table.c.deadline > sa.bindparam("now"),
        ~sa.exists().where(busy.c.state == _RUNNING_LITERAL, busy.c.meter_id == table.c.meter_id),
    ]
    if by_activity:
        conditions.append(table.c.activity.in_(sa.bindparam("wanted", expanding=True)))
    return conditions


def _groups_cte(postgresql: bool) -> sa.CTE:
    """The queues with queued orders, one seek each in the leasable index (a loose index
    scan). SQLite, without statistics, would read the queued states' entries of
    ``ix_work_orders_queue`` instead: it is told which index to read."""
    hint = "" if postgresql else f" INDEXED BY {t.LEASABLE_INDEX}"
    queued = f"FROM work_orders{hint} WHERE {t.LEASABLE_CONDITION}"
    return (
        sa.text(
            # Constants of this module and `tables`, no value from outside.
            f"SELECT min({t.QUEUE_GROUP}) AS grp {queued} UNION ALL "  # noqa: S608
            f"SELECT (SELECT min({t.QUEUE_GROUP}) {queued} AND {t.QUEUE_GROUP} > groups.grp) "
            "FROM groups WHERE groups.grp IS NOT NULL"
        )
        .columns(sa.column("grp", sa.Integer()))
        .cte("groups", recursive=True)
    )


def _with_names(query: sa.Select[Any]) -> sa.Select[Any]:
    """``query`` (from `work_orders`) joined to the names a `LeasedOrder` carries."""
    return (
        query.outerjoin(t.meters, t.meters.c.id == wo.c.meter_id)
        .outerjoin(t.concentrators, t.concentrators.c.id == wo.c.concentrator_id)
        .outerjoin(t.service_points, t.service_points.c.id == wo.c.service_point_id)
    )


# What `WorkOrderQueue._pick` and `WorkOrderQueue._leased` read of a candidate.
_LEASE_COLUMNS = (
    *(
        wo.c[name]
        for name in (
            "id",
            "batch_id",
            "activity",
            "origin",
            "external_id",
            "attempts",
            "max_attempts",
            "priority",
            "base_priority",
            "meter_id",
            "concentrator_id",
            "reason",
            "special",
            "payload",
            "scheduled_at",
            "deadline",
        )
    ),
    t.meters.c.serial_number.label("meter_serial"),
    t.concentrators.c.name.label("concentrator_name"),
    t.service_points.c.name.label("service_point_name"),
)


@functools.cache
def _candidates_query(default_permits: int, by_activity: bool, postgresql: bool) -> sa.Select[Any]:
    """The statement of `WorkOrderQueue._candidates`, built once per shape; parameters
    ``now``, ``limit`` and, ``by_activity``, the expanding ``wanted``.

    It reads the head of each queue (a concentrator's, or a point-to-point meter's), not
    the whole queue: the queues with queued orders (`_groups_cte`), the free permits of each
    (``rooms``: a concentrator's permits, a point-to-point meter's one, less its RUNNING
    orders; queues with none free are dropped), then each one's best orders that could
    start now, walking its part of the leasable index and stopping after as many as it has
    free permits. PostgreSQL takes them with ``LIMIT room`` in a LATERAL subquery; SQLite,
    which has neither LATERAL nor a correlated LIMIT, takes as many as the largest ``room``
    in a correlated ``IN`` and ranks that handful to cut each queue to its own. The rows
    are the candidates' `_LEASE_COLUMNS`, best first."""
    groups = _groups_cte(postgresql)
    other = wo.alias("running_orders")
    running = (
        sa.select(_queue_group(other).label("grp"), sa.func.count().label("n"))
        .where(other.c.state == _RUNNING_LITERAL)
        .group_by(_queue_group(other))
        .subquery("running")
    )
    cp = t.concentrator_permits.c
    permits = sa.case(
        (groups.c.grp < 0, 1), else_=sa.func.coalesce(cp.max_sessions, default_permits)
    )
    room = permits - sa.func.coalesce(running.c.n, 0)
    rooms = (
        sa.select(groups.c.grp, room.label("room"))
        .select_from(groups)
        .outerjoin(running, running.c.grp == groups.c.grp)
        .outerjoin(t.concentrator_permits, cp.concentrator_id == groups.c.grp)
        .where(groups.c.grp.is_not(None), room > 0)
        .cte("rooms")
    )
    queued = wo.alias("queued")
    head = (
        sa.select(queued.c.id)
        .where(_queue_group(queued) == rooms.c.grp, *_startable(queued, by_activity))
        .order_by(*_best_first(queued))
    )
    if postgresql:
        per_queue = head.limit(rooms.c.room).lateral("per_queue")
        candidates = sa.select(per_queue.c.id).select_from(rooms).join(per_queue, sa.true())
    else:
        largest = rooms.alias("largest")
        ranked = (
            sa.select(
                wo.c.id,
                rooms.c.room,
                sa.func.row_number()
                .over(partition_by=rooms.c.grp, order_by=_best_first(wo))
                .label("rank"),
            )
            .select_from(rooms)
            .join(
                wo,
                wo.c.id.in_(head.limit(sa.select(sa.func.max(largest.c.room)).scalar_subquery())),
            )
            .subquery("ranked")
        )
        candidates = sa.select(ranked.c.id).where(ranked.c.rank <= ranked.c.room)
    chosen = candidates.subquery("candidates")
    return (
        _with_names(sa.select(*_LEASE_COLUMNS).select_from(chosen).join(wo, wo.c.id == chosen.c.id))
        .order_by(*_best_first(wo))
        .limit(sa.bindparam("limit", type_=sa.Integer()))
    )


# The leasing transaction's other statements, built once (as `_candidates_query`): building
# a statement and its cache key costs the lease more CPU than SQLite takes to run it.
_IDS: sa.BindParameter[list[int]] = sa.bindparam("ids", expanding=True)
_NOW = sa.bindparam("now", type_=UtcDateTime())
_RUNNING = wo.c.state == State.RUNNING.value
_PERMITS_STATEMENT = sa.select(
    t.concentrator_permits.c.concentrator_id, t.concentrator_permits.c.max_sessions
)
_RUNNING_PER_DC_STATEMENT = (
    sa.select(wo.c.concentrator_id, sa.func.count())
    .where(_RUNNING, wo.c.concentrator_id.in_(_IDS))
    .group_by(wo.c.concentrator_id)
)
_BUSY_METERS_STATEMENT = sa.select(wo.c.meter_id).where(_RUNNING, wo.c.meter_id.in_(_IDS))
_ATTEMPT_STATEMENT = t.work_order_attempts.insert()


# Start the attempts of ``ids``: parameters ``owner``, ``expires`` and ``now``.
_START_STATEMENT = (
    wo.update()
    .where(wo.c.id.in_(_IDS))
    .values(
        state=State.RUNNING.value,
        attempts=wo.c.attempts + 1,
        lease_owner=sa.bindparam("owner", type_=sa.String()),
        lease_expires_at=sa.bindparam("expires", type_=UtcDateTime()),
        started_at=sa.func.coalesce(wo.c.started_at, _NOW),
        updated_at=_NOW,
    )
)


# `record_many`'s, built once too: end each attempt (executemany: ``b_order``, ``b_attempt``,
# ``ended_at``, ``outcome``, ``error_text``) and settle each order (``b_id`` and the values).
_A = t.work_order_attempts.c
_END_ATTEMPTS_STATEMENT = (
    t.work_order_attempts.update()
    .where(_A.work_order_id == sa.bindparam("b_order"), _A.attempt == sa.bindparam("b_attempt"))
    .values(
        ended_at=sa.bindparam("ended_at"),
        outcome=sa.bindparam("outcome"),
        error_text=sa.bindparam("error_text"),
    )
)
_SETTLE_STATEMENT = (
    wo.update()
    .where(wo.c.id == sa.bindparam("b_id"))
    .values(
        state=sa.bindparam("state"),
        result=sa.bindparam("result"),
        is_error=sa.bindparam("is_error"),
        error_text=sa.bindparam("error_text"),
        lease_owner=sa.bindparam("lease_owner"),
        lease_expires_at=sa.bindparam("lease_expires_at"),
        updated_at=sa.bindparam("updated_at"),
        scheduled_at=sa.func.coalesce(
            sa.bindparam("scheduled_at", type_=UtcDateTime()), wo.c.scheduled_at
        ),
        priority=sa.func.coalesce(sa.bindparam("priority", type_=sa.Integer()), wo.c.priority),
        ended_at=sa.bindparam("ended_at", type_=UtcDateTime()),
    )
)


@functools.cache
def _recorded_statement(for_update: bool) -> sa.Select[Any]:
    """What `record_many` checks of the orders ``ids`` (locked on PostgreSQL)."""
    query = sa.select(wo.c.id, wo.c.deadline, wo.c.state, wo.c.lease_owner, wo.c.attempts).where(
        wo.c.id.in_(_IDS)
    )
    return query.with_for_update() if for_update else query


# `WorkOrderQueue._lock_rows` on PostgreSQL: the candidates ``ids`` still leasable, best
# first, at most ``limit``, locked.
_LOCK_STATEMENT = (
    _with_names(sa.select(*_LEASE_COLUMNS).select_from(wo))
    .where(wo.c.id.in_(_IDS), wo.c.state.in_([s.value for s in LEASABLE_STATES]))
    .order_by(*_best_first(wo))
    .limit(sa.bindparam("limit", type_=sa.Integer()))
    .with_for_update(of=wo, skip_locked=True)
)


@functools.cache
def _lost_statement(for_update: bool) -> sa.Select[Any]:
    """RUNNING orders whose lease ran out before ``now``."""
    query = sa.select(wo.c.id, wo.c.attempts, wo.c.max_attempts, wo.c.deadline).where(
        _RUNNING, wo.c.lease_expires_at < _NOW
    )
    return query.with_for_update(skip_locked=True) if for_update else query


@functools.cache
def _overdue_statement(for_update: bool) -> sa.Select[Any]:
    """Queued orders whose deadline is at or before ``now``."""
    open_queued = [State.NEW.value, *(s.value for s in LEASABLE_STATES)]
    query = sa.select(wo.c.id).where(wo.c.state.in_(open_queued), wo.c.deadline <= _NOW)
    return query.with_for_update(skip_locked=True) if for_update else query
