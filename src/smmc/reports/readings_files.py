"""The utility's daily meter-data files: ``S_``, ``M_`` and ``DC_yyyy-mm-dd.csv``.

One file per local day. ``S_`` (load profile) and ``M_`` (measurands) carry, per meter and
reading type, every interval of the local day in the meter's zone — 92, 96 or 100 rows at
15 minutes — with the local interval end in ``sampledate``; an interval not collected yet is
written with an empty ``value`` and ``state`` = MISSING, so a file always shows the whole
day. ``DC_`` carries the daily-closure register sets captured in the local day (after its
midnight, up to and including the next). Columns are exactly the seed's; ``state`` is the
quality-flag integer (0 = actual). The delimiter is ``;``, as in the utility's other CSVs.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

from smmc.domain.readings import (
    LOAD_PROFILE_PROFILES,
    READING_TYPES,
    TIER_COUNT,
    QualityFlag,
    ReadingKind,
    ReadingType,
    energy_type_code,
    local_sample_time,
    reading_type_by_id,
)
from smmc.domain.time import DEFAULT_TIME_ZONE, interval_ends, local_day_bounds
from smmc.store.tables import (
    concentrators,
    interval_readings,
    meter_energy_profiles,
    meter_links,
    meters,
    register_reads,
    service_points,
)

__all__ = [
    "DC_COLUMNS",
    "S_COLUMNS",
    "DayInterval",
    "MeterPlace",
    "day_intervals",
    "day_register_reads",
    "days_between",
    "meter_places",
    "write_day_files",
]

S_COLUMNS = ("serialnumber", "pod", "value", "state", "cimcode", "sampledate")
DC_COLUMNS = (
    "serialnumber",
    *(f"t{n}" for n in range(1, TIER_COUNT + 1)),
    "tot",
    "energytype",
    "energytype_description",
    "time",
)
DELIMITER = ";"
LOAD_PROFILE_TYPES = frozenset(t.id for t in READING_TYPES if t.kind is ReadingKind.INTERVAL)
MEASURAND_TYPES = frozenset(t.id for t in READING_TYPES if t.kind is ReadingKind.MEASURAND)


@dataclass(frozen=True, slots=True)
class MeterPlace:
    serial: str
    pod: str | None
    time_zone: str


@dataclass(frozen=True, slots=True)
class DayInterval:
    """One interval of a meter's local day; ``value`` is None when it was not collected."""

    meter_id: int
    reading_type: ReadingType
    interval_end: datetime
    value: float | None
    quality: int


def meter_places(conn: Connection) -> dict[int, MeterPlace]:
    """Serial, current POD and zone of every meter (one query: a fleet fits in memory)."""
    current = meter_links.alias("current_link")
    query = sa.select(
        meters.c.id,
        meters.c.serial_number,
        service_points.c.name,
        concentrators.c.time_zone,
    ).select_from(
        meters.outerjoin(concentrators, meters.c.concentrator_id == concentrators.c.id)
        .outerjoin(
            current, sa.and_(current.c.meter_id == meters.c.id, current.c.valid_to.is_(None))
        )
        .outerjoin(service_points, current.c.service_point_id == service_points.c.id)
    )
    return {
        meter_id: MeterPlace(serial, pod, tz or DEFAULT_TIME_ZONE)
        for meter_id, serial, pod, tz in conn.execute(query)
    }


def _profile_pairs(conn: Connection) -> set[tuple[int, int]]:
    """(meter, reading type) pairs the meters' load-profile profiles ask for."""
    pairs: set[tuple[int, int]] = set()
    query = sa.select(
        meter_energy_profiles.c.meter_id, meter_energy_profiles.c.load_profile_profile
    ).where(meter_energy_profiles.c.load_profile_profile.is_not(None))
    for meter_id, name in conn.execute(query):
        profile = LOAD_PROFILE_PROFILES.get(name)
        if profile is not None:
            pairs.update((meter_id, t.id) for t in profile.reading_types())
    return pairs


def _fill(
    meter_id: int, kind: ReadingType, day: date, tz: str, stored: dict[datetime, tuple[float, int]]
) -> Iterator[DayInterval]:
    for end in interval_ends(day, tz, kind.minutes or 15):
        found = stored.get(end)
        if found is None:
            yield DayInterval(meter_id, kind, end, None, int(QualityFlag.MISSING))
        else:
            yield DayInterval(meter_id, kind, end, found[0], found[1])


def day_intervals(
    conn: Connection,
    day: date,
    type_ids: frozenset[int],
    places: dict[int, MeterPlace],
    expected: AbstractSet[tuple[int, int]] = frozenset(),
) -> Iterator[DayInterval]:
    """Every interval of local ``day`` for each (meter, type) with data that day or listed
    in ``expected``; grouped by zone, meter and type, in time order."""
    zones = sorted({p.time_zone for p in places.values()})
    seen: set[tuple[int, int]] = set()
    for tz in zones:
        start, end = local_day_bounds(day, tz)
        query = (
            sa.select(
                interval_readings.c.meter_id,
                interval_readings.c.reading_type_id,
                interval_readings.c.interval_end,
                interval_readings.c.value,
                interval_readings.c.quality,
            )
            .where(
                interval_readings.c.reading_type_id.in_(sorted(type_ids)),
                interval_readings.c.interval_end > start,
                interval_readings.c.interval_end <= end,
            )
            .order_by(interval_readings.c.meter_id, interval_readings.c.reading_type_id)
        )
        current: tuple[int, int] | None = None
        stored: dict[datetime, tuple[float, int]] = {}
        result = conn.execution_options(stream_results=True, yield_per=20_000).execute(query)
        for meter_id, type_id, interval_end, value, quality in result:
            place = places.get(meter_id)
            if place is None or place.time_zone != tz:
                continue
            if (meter_id, type_id) != current:
                if current is not None:
                    yield from _fill(current[0], reading_type_by_id(current[1]), day, tz, stored)
                current, stored = (meter_id, type_id), {}
                seen.add(current)
            stored[interval_end] = (value, quality)
        if current is not None:
            yield from _fill(current[0], reading_type_by_id(current[1]), day, tz, stored)
        for meter_id, type_id in sorted(expected - seen):
            place = places.get(meter_id)
            if place is not None and place.time_zone == tz and type_id in type_ids:
                yield from _fill(meter_id, reading_type_by_id(type_id), day, tz, {})


def day_register_reads(
    conn: Connection, day: date, places: dict[int, MeterPlace]
) -> Iterator[RowMapping]:
    """Register reads captured in local ``day`` (``(midnight, next midnight]``)."""
    zones = sorted({p.time_zone for p in places.values()})
    for tz in zones:
        start, end = local_day_bounds(day, tz)
        query = (
            sa.select(register_reads)
            .where(register_reads.c.captured_at > start, register_reads.c.captured_at <= end)
            .order_by(
                register_reads.c.meter_id,
                register_reads.c.reading_type_id,
                register_reads.c.captured_at,
            )
        )
        for row in conn.execute(query).mappings():
            place = places.get(row["meter_id"])
            if place is not None and place.time_zone == tz:
                yield row


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() else repr(value)


def _stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _write_intervals(
    conn: Connection,
    path: Path,
    day: date,
    type_ids: frozenset[int],
    places: dict[int, MeterPlace],
    expected: AbstractSet[tuple[int, int]],
    delimiter: str,
) -> int:
    count = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(S_COLUMNS)
        for item in day_intervals(conn, day, type_ids, places, expected):
            place = places[item.meter_id]
            writer.writerow(
                (
                    place.serial,
                    place.pod or "",
                    "" if item.value is None else _number(item.value),
                    item.quality,
                    item.reading_type.code,
                    _stamp(local_sample_time(item.interval_end, place.time_zone)),
                )
            )
            count += 1
    return count


def _write_daily_closure(
    conn: Connection, path: Path, day: date, places: dict[int, MeterPlace], delimiter: str
) -> int:
    count = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(DC_COLUMNS)
        for row in day_register_reads(conn, day, places):
            place = places[row["meter_id"]]
            kind = reading_type_by_id(row["reading_type_id"])
            if kind.energy is None:
                continue
            code, description = energy_type_code(kind.energy)
            captured: datetime = row["captured_at"]
            writer.writerow(
                (
                    place.serial,
                    *(row[f"t{n}"] for n in range(1, TIER_COUNT + 1)),
                    row["total"],
                    code,
                    description,
                    _stamp(local_sample_time(captured, place.time_zone)),
                )
            )
            count += 1
    return count


def write_day_files(
    engine: Engine, day: date, out_dir: Path, *, delimiter: str = DELIMITER
) -> dict[str, tuple[Path, int]]:
    """Write ``S_``, ``M_`` and ``DC_`` files of local ``day`` into ``out_dir``; answers
    ``{prefix: (path, data rows)}``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = day.isoformat()
    with engine.connect() as conn:
        places = meter_places(conn)
        profile = _profile_pairs(conn)
        s_path, m_path, dc_path = (out_dir / f"{p}_{stem}.csv" for p in ("S", "M", "DC"))
        return {
            "S": (
                s_path,
                _write_intervals(conn, s_path, day, LOAD_PROFILE_TYPES, places, profile, delimiter),
            ),
            "M": (
                m_path,
                _write_intervals(conn, m_path, day, MEASURAND_TYPES, places, set(), delimiter),
            ),
            "DC": (dc_path, _write_daily_closure(conn, dc_path, day, places, delimiter)),
        }


def days_between(first: date, last: date) -> list[date]:
    """The local days ``first``..``last`` inclusive."""
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]
