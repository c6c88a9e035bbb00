"""Typed meter data in the store: bulk ingest, gaps, energy profiles, read-success KPI.

The ``ingest_*`` functions are what a collection executor calls with what it read (meter id
or serial, reading type, rows). Every write is idempotent: a value already stored for the
same meter, reading type and instant is kept and the new copy dropped (ON CONFLICT DO
NOTHING), so late, repeated and back-filled data can be offered again safely.

SQLite: one executemany on the raw cursor in the caller's transaction. PostgreSQL: one COPY
straight into ``interval_readings`` (range-partitioned by UTC day) under a savepoint; if a
value is already stored the COPY fails on the key and the batch goes through a temporary
staging table and ``INSERT … SELECT … ON CONFLICT DO NOTHING`` instead. The partitions of
the days being written are created first, under an advisory lock so concurrent ingests
agree.
"""

from __future__ import annotations

import contextlib
import functools
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from smmc.domain.readings import (
    DAILY_CLOSURE_PROFILES,
    LOAD_PROFILE_PROFILES,
    READING_TYPES,
    TIER_COUNT,
    Energy,
    QualityFlag,
    ReadingType,
    UnknownReadingType,
    closed_day,
    closure_days,
    daily_closure_type,
    energy_type_code,
    is_dst_day,
    missing_interval_ends,
    reading_type,
    reading_type_by_id,
    tier_sum_violated,
)
from smmc.domain.time import DEFAULT_TIME_ZONE, local_day_bounds, to_local
from smmc.store.tables import (
    concentrators,
    field_work_orders,
    interval_readings,
    meter_energy_profiles,
    meter_links,
    meter_read_days,
    meters,
    register_reads,
    service_points,
)

__all__ = [
    "INTERVAL_ORDER",
    "IngestResult",
    "IntervalValue",
    "KpiGroup",
    "ReadSuccess",
    "RegisterRead",
    "UnknownMeter",
    "UnknownProfile",
    "assign_energy_profiles",
    "closure_read_starts",
    "ensure_partitions",
    "find_gaps",
    "ingest_daily_closure",
    "ingest_intervals",
    "ingest_load_profile",
    "ingest_register_reads",
    "interval_partitions",
    "interval_read_starts",
    "meter_list",
    "meter_time_zones",
    "new_register_reads",
    "read_success",
    "resolve_meter",
    "unread_meters",
]

_LOCK_PARTITIONS = 7_200_601  # advisory-lock key of partition creation
_STAGING = "staging_interval_readings"
_READ_COLUMNS = ("meter_id", "reading_type_id", "interval_end", "value", "quality")


class UnknownMeter(LookupError):
    """A serial number or id that names no meter."""


class UnknownProfile(ValueError):
    """An energy-profile name that is not defined."""


class IntervalValue(NamedTuple):
    """One interval value as the bulk path takes it (a tuple: cheap by the million)."""

    meter_id: int
    reading_type_id: int
    interval_end: datetime
    value: float
    quality: int = 0


INTERVAL_ORDER = operator.itemgetter(0, 1, 2)
"""Sort key of `IntervalValue` rows: meter, reading type, interval end (the stored key's
order, which the bulk path appends in and a meter's messages are grouped by)."""


@dataclass(frozen=True, slots=True)
class RegisterRead:
    """One register set (t1..t6 and total, Wh or varh) captured at ``captured_at``."""

    meter_id: int
    energy: Energy
    captured_at: datetime
    tiers: tuple[int, ...]
    total: int
    quality: int = 0


@dataclass(slots=True)
class IngestResult:
    """What a write did: offered values, newly stored ones, and register sets whose tiers do
    not sum to the total (stored and flagged; the caller raises the event)."""

    offered: int = 0
    inserted: int = 0
    tier_sum_violations: list[RegisterRead] = field(default_factory=list)


# -- meters --------------------------------------------------------------------------------


def resolve_meter(conn: Connection, meter: int | str) -> int:
    """The id of a meter given by id or serial number."""
    column = meters.c.id if isinstance(meter, int) else meters.c.serial_number
    found = conn.execute(sa.select(meters.c.id).where(column == meter)).scalar()
    if found is None:
        raise UnknownMeter(f"no meter {meter!r}")
    return int(found)


def meter_time_zones(conn: Connection, meter_ids: Iterable[int]) -> dict[int, str]:
    """Each existing meter's zone: its concentrator's, else the default (point-to-point
    meters). Ids that name no meter are left out."""
    ids = sorted(set(meter_ids))
    zones: dict[int, str] = {}
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        rows = conn.execute(
            sa.select(meters.c.id, concentrators.c.time_zone)
            .select_from(
                meters.outerjoin(concentrators, meters.c.concentrator_id == concentrators.c.id)
            )
            .where(meters.c.id.in_(chunk))
        )
        for meter_id, tz in rows:
            zones[meter_id] = tz or DEFAULT_TIME_ZONE
    return zones


def _known_zones(conn: Connection, meter_ids: Iterable[int]) -> dict[int, str]:
    """Zones of meters about to receive data; an unknown id refuses the whole batch."""
    ids = set(meter_ids)
    zones = meter_time_zones(conn, ids)
    unknown = sorted(ids - set(zones))
    if unknown:
        raise UnknownMeter(f"no meter with id {', '.join(map(str, unknown[:10]))}")
    return zones


# -- partitions ----------------------------------------------------------------------------


def _partition_name(day: date) -> str:
    return f"interval_readings_p{day:%Y%m%d}"


def interval_partitions(conn: Connection) -> list[str]:
    """Names of the existing day partitions (PostgreSQL), sorted."""
    rows = conn.exec_driver_sql(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'interval_readings'::regclass ORDER BY c.relname"
    )
    return [r[0] for r in rows]


def ensure_partitions(conn: Connection, days: Iterable[date]) -> None:
    """Create the UTC-day partitions of ``interval_readings`` that ``days`` need."""
    if conn.dialect.name != "postgresql":
        return
    wanted = {_partition_name(d): d for d in days}
    missing = set(wanted) - set(interval_partitions(conn))
    if not missing:
        return
    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_LOCK_PARTITIONS})")
    for name in sorted(missing):
        day = wanted[name]
        # Names and bounds are built from dates, never from input text.
        conn.exec_driver_sql(
            f'CREATE TABLE IF NOT EXISTS "{name}" PARTITION OF interval_readings '
            f"FOR VALUES FROM ('{day.isoformat()} 00:00:00+00') "
            f"TO ('{(day + timedelta(days=1)).isoformat()} 00:00:00+00')"
        )


# -- interval values -----------------------------------------------------------------------

_MINUTES = {t.id: t.minutes or 15 for t in READING_TYPES}


def _sqlite_time(moment: datetime) -> str:
    """The text SQLAlchemy's SQLite DateTime stores, so bulk and Core rows compare equal."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _pg_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f+00")


@functools.lru_cache(maxsize=4096)
def _dst_flag(day: date, tz: str) -> int:
    return int(QualityFlag.DST_DAY) if is_dst_day(day, tz) else 0


def _day_and_flag(tz: str, minutes: int, end: datetime) -> tuple[date, int]:
    """The local day an interval ending at ``end`` belongs to, and its DST-day flag."""
    day = to_local(end - timedelta(minutes=minutes), tz).date()
    return day, _dst_flag(day, tz)


def ingest_intervals(
    conn: Connection, values: Sequence[IntervalValue], *, received_at: datetime | None = None
) -> IngestResult:
    """Store interval values (load profile, measurands) idempotently.

    The DST-day flag is added from each meter's zone; every (meter, local day) touched is
    recorded as read at ``received_at`` (default now) unless it was read before.

    A batch repeats few instants across many meters, so the per-value work is a handful of
    dictionary look-ups done by ``map``/``zip`` (no Python statement per value); the stored
    text, local day and DST flag are worked out once per distinct instant.
    """
    result = IngestResult(offered=len(values))
    if not values:
        return result
    received = received_at or datetime.now(UTC)
    meter_ids, type_ids, ends = (list(map(operator.itemgetter(n), values)) for n in range(3))
    zones = _known_zones(conn, meter_ids)
    unknown = set(type_ids) - _MINUTES.keys()
    if unknown:
        raise UnknownReadingType(f"unknown reading type id {min(unknown)}")
    distinct_ends = set(ends)
    naive = next((end for end in distinct_ends if end.tzinfo is None), None)
    if naive is not None:
        raise ValueError(f"naive interval end {naive!r}: give it a time zone")
    tzs = set(zones.values())
    lengths = {_MINUTES[t] for t in set(type_ids)}
    keys: list[Any]
    if len(tzs) == 1 and len(lengths) == 1:
        # The usual batch: one zone, one interval length; the instant alone is the key.
        tz, minutes = next(iter(tzs)), next(iter(lengths))
        keys = ends
        infos = {end: _day_and_flag(tz, minutes, end) for end in distinct_ends}
    else:
        keys = list(
            zip(
                map(zones.__getitem__, meter_ids),
                map(_MINUTES.__getitem__, type_ids),
                ends,
                strict=True,
            )
        )
        infos = {key: _day_and_flag(*key) for key in set(keys)}
    day_of = {key: day for key, (day, _) in infos.items()}
    flag_of = {key: flag for key, (_, flag) in infos.items()}
    postgres = conn.dialect.name == "postgresql"
    stamp = _pg_time if postgres else _sqlite_time
    stamps = {end: stamp(end) for end in distinct_ends}
    rows = list(
        zip(
            meter_ids,
            type_ids,
            map(stamps.__getitem__, ends),
            map(operator.itemgetter(3), values),
            map(operator.or_, map(operator.itemgetter(4), values), map(flag_of.__getitem__, keys)),
            strict=True,
        )
    )
    read_days = set(zip(meter_ids, map(day_of.__getitem__, keys), strict=True))
    if postgres:
        ensure_partitions(conn, {end.astimezone(UTC).date() for end in distinct_ends})
        result.inserted = _copy_intervals(conn, rows)
    else:
        with contextlib.closing(conn.connection.driver_connection.cursor()) as cursor:  # type: ignore[union-attr]
            cursor.executemany(
                "INSERT INTO interval_readings "
                "(meter_id, reading_type_id, interval_end, value, quality) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                rows,
            )
            result.inserted = max(cursor.rowcount, 0)
    _record_read_days(conn, read_days, received)
    return result


def _copy_intervals(conn: Connection, rows: list[tuple[Any, ...]]) -> int:
    """COPY the rows straight into ``interval_readings`` (the usual case: all new); if any
    is already stored the COPY fails on the key, is rolled back to its savepoint, and the
    rows go through a staging table and ``INSERT … ON CONFLICT DO NOTHING`` instead."""
    columns = ", ".join(_READ_COLUMNS)
    text = "".join([f"{m}\t{t}\t{e}\t{v!r}\t{q}\n" for m, t, e, v, q in rows])
    with conn.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
        cursor.execute("SAVEPOINT smmc_copy_intervals")
        try:
            with cursor.copy(f"COPY interval_readings ({columns}) FROM STDIN") as copy:
                copy.write(text)
        except psycopg.errors.UniqueViolation:
            cursor.execute("ROLLBACK TO SAVEPOINT smmc_copy_intervals")
        else:
            cursor.execute("RELEASE SAVEPOINT smmc_copy_intervals")
            return len(rows)
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGING} "
            f"(LIKE interval_readings INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
        )
        cursor.execute(f"TRUNCATE {_STAGING}")
        with cursor.copy(f"COPY {_STAGING} ({columns}) FROM STDIN") as copy:
            copy.write(text)
        cursor.execute(
            f"INSERT INTO interval_readings ({columns}) SELECT {columns} FROM {_STAGING} "  # noqa: S608
            "ON CONFLICT DO NOTHING"
        )
        inserted: int = cursor.rowcount
    return max(inserted, 0)


def _record_read_days(
    conn: Connection, read_days: set[tuple[int, date]], received: datetime
) -> None:
    if not read_days:
        return
    rows = [{"meter_id": m, "day": d, "first_read_at": received} for m, d in sorted(read_days)]
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(
        meter_read_days
    )
    conn.execute(insert.on_conflict_do_nothing(), rows)


def ingest_load_profile(
    conn: Connection,
    meter: int | str,
    kind: str | int | ReadingType,
    rows: Iterable[tuple[datetime, float] | tuple[datetime, float, int]],
    *,
    received_at: datetime | None = None,
) -> IngestResult:
    """An executor's entry point: one meter (id or serial), one reading type (corrected or
    literal code, id or type) and its ``(interval_end, value[, quality])`` rows."""
    meter_id = resolve_meter(conn, meter)
    if isinstance(kind, ReadingType):
        rt = kind
    elif isinstance(kind, int):
        rt = reading_type_by_id(kind)
    else:
        rt = reading_type(kind)
    if rt.minutes is None:
        raise ValueError(f"{rt.name} is a register, not an interval reading type")
    values = [
        IntervalValue(meter_id, rt.id, row[0], float(row[1]), row[2] if len(row) > 2 else 0)
        for row in rows
    ]
    return ingest_intervals(conn, values, received_at=received_at)


# -- register reads ------------------------------------------------------------------------


def ingest_register_reads(
    conn: Connection, reads: Sequence[RegisterRead], *, received_at: datetime | None = None
) -> IngestResult:
    """Store register sets idempotently; a set whose tiers do not sum to the total is stored
    with the TIER_SUM_VIOLATION flag and listed in the result."""
    result = IngestResult(offered=len(reads))
    if not reads:
        return result
    received = received_at or datetime.now(UTC)
    zones = _known_zones(conn, (r.meter_id for r in reads))
    rows = []
    read_days: set[tuple[int, date]] = set()
    for read in reads:
        if len(read.tiers) != TIER_COUNT:
            raise ValueError(f"a register set has {TIER_COUNT} tiers, got {len(read.tiers)}")
        quality = read.quality
        if tier_sum_violated(read.tiers, read.total):
            quality |= QualityFlag.TIER_SUM_VIOLATION
            result.tier_sum_violations.append(read)
        row: dict[str, Any] = {
            "meter_id": read.meter_id,
            "reading_type_id": daily_closure_type(read.energy).id,
            "captured_at": read.captured_at,
            "total": read.total,
            "energy_type": energy_type_code(read.energy)[0],
            "quality": int(quality),
            "received_at": received,
        }
        row.update({f"t{n}": v for n, v in enumerate(read.tiers, start=1)})
        rows.append(row)
        closed = to_local(read.captured_at - timedelta(seconds=1), zones[read.meter_id]).date()
        read_days.add((read.meter_id, closed))
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(
        register_reads
    )
    stored = conn.execute(insert.on_conflict_do_nothing().returning(register_reads.c.id), rows)
    result.inserted = len(stored.all())
    _record_read_days(conn, read_days, received)
    return result


def ingest_daily_closure(
    conn: Connection,
    meter: int | str,
    energy: Energy,
    captured_at: datetime,
    tiers: Sequence[int],
    total: int,
    *,
    received_at: datetime | None = None,
) -> IngestResult:
    """An executor's entry point for one daily-closure register set of one meter."""
    read = RegisterRead(resolve_meter(conn, meter), energy, captured_at, tuple(tiers), total)
    return ingest_register_reads(conn, [read], received_at=received_at)


# -- gaps ----------------------------------------------------------------------------------


def find_gaps(
    conn: Connection, day: date, kind: ReadingType, meter_ids: Iterable[int]
) -> dict[int, list[datetime]]:
    """Per meter, the interval ends of local ``day`` (in the meter's zone) not stored yet;
    meters without a gap are left out. The back-fill reads exactly these again."""
    minutes = kind.minutes or 15
    zones = meter_time_zones(conn, meter_ids)
    gaps: dict[int, list[datetime]] = {}
    by_zone: dict[str, list[int]] = {}
    for meter_id, tz in zones.items():
        by_zone.setdefault(tz, []).append(meter_id)
    for tz, ids in by_zone.items():
        start, end = local_day_bounds(day, tz)
        stored: dict[int, list[datetime]] = {m: [] for m in ids}
        query = sa.select(interval_readings.c.meter_id, interval_readings.c.interval_end).where(
            interval_readings.c.reading_type_id == kind.id,
            interval_readings.c.interval_end > start,
            interval_readings.c.interval_end <= end,
            interval_readings.c.meter_id.in_(ids),
        )
        for meter_id, interval_end in conn.execute(query):
            stored[meter_id].append(interval_end)
        for meter_id in ids:
            missing = missing_interval_ends(day, tz, stored[meter_id], minutes)
            if missing:
                gaps[meter_id] = missing
    return gaps


# -- energy profiles and the meter list ----------------------------------------------------


def assign_energy_profiles(
    conn: Connection,
    meter_id: int,
    *,
    daily_closure: str | None,
    load_profile: str | None,
    is_upload: bool = True,
    is_daily_closure: bool = True,
) -> None:
    """Assign (or replace) a meter's energy profiles by name."""
    if daily_closure is not None and daily_closure not in DAILY_CLOSURE_PROFILES:
        raise UnknownProfile(f"unknown daily-closure profile {daily_closure!r}")
    if load_profile is not None and load_profile not in LOAD_PROFILE_PROFILES:
        raise UnknownProfile(f"unknown load-profile profile {load_profile!r}")
    values = {
        "meter_id": meter_id,
        "daily_closure_profile": daily_closure,
        "load_profile_profile": load_profile,
        "is_upload": is_upload,
        "is_daily_closure": is_daily_closure,
        "updated_at": datetime.now(UTC),
    }
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(
        meter_energy_profiles
    )
    conn.execute(
        insert.on_conflict_do_update(
            index_elements=["meter_id"],
            set_={k: insert.excluded[k] for k in values if k != "meter_id"},
        ),
        values,
    )


_current = meter_links.alias("current_link")
_METER_PLACES = (
    meters.outerjoin(concentrators, meters.c.concentrator_id == concentrators.c.id)
    .outerjoin(_current, sa.and_(_current.c.meter_id == meters.c.id, _current.c.valid_to.is_(None)))
    .outerjoin(service_points, _current.c.service_point_id == service_points.c.id)
)


def meter_list(
    conn: Connection, *, concentrator: str | None = None, limit: int = 100, offset: int = 0
) -> list[dict[str, Any]]:
    """The meter list with the seed's columns; ``errorinst`` is an open field work order and
    ``row`` the meter's node address in its concentrator's table."""
    open_field = (
        sa.select(field_work_orders.c.id)
        .where(field_work_orders.c.meter_id == meters.c.id, field_work_orders.c.status == "open")
        .exists()
    )
    query = (
        sa.select(
            concentrators.c.name.label("concentrator"),
            service_points.c.name.label("pod"),
            meters.c.serial_number.label("serialnumber"),
            meters.c.commissioned,
            meters.c.reachable,
            open_field.label("errorinst"),
            meters.c.node_address.label("row"),
            meters.c.phase,
            meter_energy_profiles.c.is_upload,
            meter_energy_profiles.c.is_daily_closure,
            meter_energy_profiles.c.daily_closure_profile,
            meter_energy_profiles.c.load_profile_profile,
        )
        .select_from(
            _METER_PLACES.outerjoin(
                meter_energy_profiles, meter_energy_profiles.c.meter_id == meters.c.id
            )
        )
        .order_by(meters.c.serial_number)
        .limit(limit)
        .offset(offset)
    )
    if concentrator is not None:
        query = query.where(concentrators.c.name == concentrator)
    out = []
    for row in conn.execute(query).mappings():
        out.append(
            {
                "concentrator": row["concentrator"],
                "pod": row["pod"],
                "serialnumber": row["serialnumber"],
                "commissioned": row["commissioned"],
                "reachable": row["reachable"],
                "errorinst": bool(row["errorinst"]),
                "row": row["row"],
                "phase": f"Phase {row['phase']}" if row["phase"] else None,
                "isupload": bool(row["is_upload"]),
                "isdailyclosure": bool(row["is_daily_closure"]),
                "energydailyclosureprofile": row["daily_closure_profile"],
                "energyfastloadprofile": row["load_profile_profile"],
            }
        )
    return out


# -- read-success KPI ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KpiGroup:
    """Read success of one group: meters expected, meters read in time, and the verdict."""

    level: str
    name: str
    expected: int
    read: int
    target: float

    @property
    def success(self) -> float:
        return self.read / self.expected if self.expected else 1.0

    @property
    def meets_target(self) -> bool:
        return self.success >= self.target


@dataclass(frozen=True, slots=True)
class ReadSuccess:
    day: date
    target: float
    window: timedelta
    groups: list[KpiGroup]


def read_success(
    conn: Connection,
    day: date,
    *,
    target: float = 0.995,
    window: timedelta = timedelta(hours=24),
) -> ReadSuccess:
    """Share of commissioned meters with a value of local ``day`` received no later than
    ``window`` after the day ended (in the meter's zone), per concentrator, comuna and for
    the whole company."""
    if not 0.0 < target <= 1.0:
        raise ValueError(f"target must be in (0, 1], got {target}")
    first_read = (
        sa.select(meter_read_days.c.first_read_at)
        .where(meter_read_days.c.meter_id == meters.c.id, meter_read_days.c.day == day)
        .scalar_subquery()
    )
    query = (
        sa.select(
            meters.c.id,
            concentrators.c.name,
            sa.func.coalesce(service_points.c.comuna, concentrators.c.comuna),
            sa.func.coalesce(concentrators.c.time_zone, DEFAULT_TIME_ZONE),
            first_read,
        )
        .select_from(_METER_PLACES)
        .where(meters.c.commissioned.is_(True))
    )
    counts: dict[tuple[str, str], list[int]] = {}
    deadlines: dict[str, datetime] = {}
    for _, concentrator, comuna, tz, read_at in conn.execute(query):
        deadline = deadlines.get(tz)
        if deadline is None:
            deadline = deadlines[tz] = local_day_bounds(day, tz)[1] + window
        ok = int(read_at is not None and read_at <= deadline)
        keys = (
            ("concentrator", concentrator or "(point to point)"),
            ("comuna", comuna or "(unknown)"),
            ("company", "company"),
        )
        for key in keys:
            tally = counts.setdefault(key, [0, 0])
            tally[0] += 1
            tally[1] += ok
    groups = [
        KpiGroup(level, name, expected, read, target)
        for (level, name), (expected, read) in sorted(counts.items())
    ]
    return ReadSuccess(day, target, window, groups)


def unread_meters(conn: Connection, days: int, today: date) -> list[dict[str, Any]]:
    """The worklist: commissioned meters with no value for the last ``days`` local days
    before ``today`` (never-read meters included), oldest first."""
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    last = (
        sa.select(sa.func.max(meter_read_days.c.day))
        .where(meter_read_days.c.meter_id == meters.c.id)
        .scalar_subquery()
    )
    since = today - timedelta(days=days)
    query = (
        sa.select(
            meters.c.serial_number,
            concentrators.c.name.label("concentrator"),
            service_points.c.name.label("pod"),
            last.label("last_read_day"),
        )
        .select_from(_METER_PLACES)
        .where(meters.c.commissioned.is_(True), sa.or_(last.is_(None), last < since))
        .order_by(last.asc().nulls_first(), meters.c.serial_number)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


# -- collection: where the next read starts -------------------------------------------------


def _grid_after(moment: datetime, step: timedelta) -> datetime:
    """The first instant of the UTC ``step`` grid strictly after ``moment``."""
    seconds = int(step.total_seconds())
    stamp = int(moment.timestamp())
    return datetime.fromtimestamp((stamp // seconds + 1) * seconds, UTC)


def interval_read_starts(
    conn: Connection,
    kind: ReadingType,
    meter_ids: Iterable[int],
    since: datetime,
    until: datetime,
) -> dict[int, datetime]:
    """Per meter, the first interval end in ``(since, until]`` not stored yet: where the
    next profile read must start so that a gap is back-filled. Meters complete up to
    ``until`` are left out. Interval ends lie on the UTC grid of the interval length (true
    of every zone whose offset is a whole number of quarter hours)."""
    if kind.minutes is None:
        raise ValueError(f"{kind.name} is a register, not an interval reading type")
    step = timedelta(minutes=kind.minutes)
    first = _grid_after(since, step)
    if first > until:
        return {}
    ids = sorted(set(meter_ids))
    c = interval_readings.c
    window = (c.reading_type_id == kind.id, c.interval_end > since, c.interval_end <= until)
    starts: dict[int, datetime] = {}
    for offset in range(0, len(ids), 5000):
        chunk = ids[offset : offset + 5000]
        counted = {
            meter_id: (count, top)
            for meter_id, count, top in conn.execute(
                sa.select(c.meter_id, sa.func.count(), sa.func.max(c.interval_end))
                .where(*window, c.meter_id.in_(chunk))
                .group_by(c.meter_id)
            )
        }
        holed = []
        for meter_id in chunk:
            if meter_id not in counted:
                starts[meter_id] = first
                continue
            count, top = counted[meter_id]
            if count == (top - first) // step + 1:
                if top + step <= until:
                    starts[meter_id] = top + step
            else:
                holed.append(meter_id)
        stored: dict[int, set[datetime]] = {m: set() for m in holed}
        if holed:
            for meter_id, end in conn.execute(
                sa.select(c.meter_id, c.interval_end).where(*window, c.meter_id.in_(holed))
            ):
                stored[meter_id].add(end)
        for meter_id, ends in stored.items():
            moment = first
            while moment in ends:
                moment += step
            starts[meter_id] = moment
    return starts


def closure_read_starts(
    conn: Connection,
    energy: Energy,
    meter_ids: Iterable[int],
    since: datetime,
    until: datetime,
) -> dict[int, datetime]:
    """Per meter, the capture instant (local midnight, in the meter's zone) of the first
    daily closure of ``energy`` closing in ``(since, until]`` not stored yet. Meters with
    every closure of the window stored are left out."""
    zones = meter_time_zones(conn, meter_ids)
    r = register_reads.c
    type_id = daily_closure_type(energy).id
    stored: dict[int, set[date]] = {m: set() for m in zones}
    ids = sorted(zones)
    for offset in range(0, len(ids), 5000):
        chunk = ids[offset : offset + 5000]
        for meter_id, captured in conn.execute(
            sa.select(r.meter_id, r.captured_at).where(
                r.reading_type_id == type_id,
                r.captured_at > since,
                r.captured_at <= until,
                r.meter_id.in_(chunk),
            )
        ):
            stored[meter_id].add(closed_day(captured, zones[meter_id]))
    starts: dict[int, datetime] = {}
    expected: dict[str, list[date]] = {}
    for meter_id, tz in zones.items():
        days = expected.get(tz)
        if days is None:
            days = expected[tz] = closure_days(tz, since, until)
        missing = next((day for day in days if day not in stored[meter_id]), None)
        if missing is not None:
            starts[meter_id] = local_day_bounds(missing + timedelta(days=1), tz)[0]
    return starts


def new_register_reads(conn: Connection, reads: Sequence[RegisterRead]) -> list[RegisterRead]:
    """The register sets of ``reads`` not stored yet (so that a re-read raises no event
    twice)."""
    if not reads:
        return []
    r = register_reads.c
    keys = {(read.meter_id, daily_closure_type(read.energy).id) for read in reads}
    low = min(read.captured_at for read in reads)
    high = max(read.captured_at for read in reads)
    stored: set[tuple[int, int, datetime]] = set()
    pairs = sorted(keys)
    for offset in range(0, len(pairs), 2000):
        chunk = pairs[offset : offset + 2000]
        rows = conn.execute(
            sa.select(r.meter_id, r.reading_type_id, r.captured_at).where(
                r.meter_id.in_({m for m, _ in chunk}),
                r.reading_type_id.in_({t for _, t in chunk}),
                r.captured_at >= low,
                r.captured_at <= high,
            )
        )
        stored.update((m, t, c) for m, t, c in rows)
    return [
        read
        for read in reads
        if (read.meter_id, daily_closure_type(read.energy).id, read.captured_at) not in stored
    ]
