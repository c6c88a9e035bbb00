"""Scheduled collection: daily closure, load profile ("n2pload") and measurands into the store.

Two executors, one per kind of target:

* `ConcentratorCollectionExecutor` (activity ``Collection``, a concentrator): reads the DC's
  collected-data profiles in bulk — load profile ``0.128.99.1.0.255``, measurands
  ``0.128.99.2.0.255``, daily closure ``0.128.98.1.0.255`` and status words
  ``0.128.99.98.0.255`` — by range, in one management session, for every meter of the DC;
  the daily closure and the measurands are decoded by the profile's capture objects (read in
  the same session), so every energy whose total and T1..T6 it carries is a register set,
  and the L1 voltage and current columns are found and scaled as the meter's own registers
  (the device profile's scalers). A DC without the measurand profile (older firmware: the
  GET answers object-undefined) is no failure: the result says so;
* `MeterCollectionExecutor` (activity ``MeterCollection``, a point-to-point meter): reads the
  meter's own load profile, measurand profile and daily billing profile by range, and its
  status words, in one association.

Payload (both optional): ``collect``, a list of ``daily_closure``, ``load_profile`` and
``measurands`` (default all three), and
``lookback_days`` (default 3): how far back a missing interval or closure is still read
again. Each read starts at the first instant some meter of the order still lacks
(`interval_read_starts`, `closure_read_starts`), so a gap left by a failed run, an
unreachable meter or a DC that was down is back-filled by the next run; what was stored
already is offered again and kept once (the store's ingest is idempotent).

What each meter gets follows its energy profiles (``meter_energy_profiles``; a meter without
an assignment gets `DEFAULT_LOAD_PROFILE_PROFILE` and `DEFAULT_DAILY_CLOSURE_PROFILE`).
A load-profile row whose status byte says the clock was adjusted is stored with
``CLOCK_ADJUSTED``; a register set whose tiers do not sum to its total is stored flagged by
the store and raised here as a ``TIER_SUM_VIOLATION`` meter event, once per set.
"""

from __future__ import annotations

import asyncio
import json
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import repeat
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from smmc.dlms.apdu import DataAccessResult
from smmc.dlms.apdu.selective_access import CLOCK_TIME, CaptureObjectDefinition
from smmc.dlms.axdr import Data, DataTag
from smmc.dlms.cosem import CosemAccessError
from smmc.dlms.cosem.base import expect_items
from smmc.dlms.cosem.profile_generic import parse_definition
from smmc.dlms.cosem_time import CosemDateTime
from smmc.dlms.errors import ServiceError
from smmc.dlms.obis import Obis
from smmc.dlms.profiles.builder import AttributeInfo, DecodeMap
from smmc.domain.error_catalog import ErrorKey, FieldError
from smmc.domain.events import METER_WORDS
from smmc.domain.readings import (
    AVERAGE_CURRENT,
    AVERAGE_VOLTAGE,
    DAILY_CLOSURE_PROFILES,
    DEFAULT_DAILY_CLOSURE_PROFILE,
    DEFAULT_LOAD_PROFILE_PROFILE,
    LOAD_PROFILE_PROFILES,
    TIER_COUNT,
    CollectionKind,
    DailyClosureProfile,
    Energy,
    LoadProfileProfile,
    ReadingType,
    interval_type,
    profile_status_quality,
    tier_sum_violated,
)
from smmc.domain.time import DEFAULT_TIME_ZONE, zone
from smmc.domain.work_orders import ActivityType
from smmc.engine.activities.base import FieldExecutor, FieldResult
from smmc.field.drivers import (
    COLLECTED_DAILY,
    COLLECTED_LOAD_PROFILE,
    COLLECTED_MEASURANDS,
    COLLECTED_STATUS_WORDS,
    LOAD_PROFILE,
    MEASURAND_PROFILE,
)
from smmc.field.errors import FieldFailure
from smmc.integration.readings import queue_collected
from smmc.store import tables as t
from smmc.store.events import METER, Observation, Occurrence, apply_events
from smmc.store.readings import (
    INTERVAL_ORDER,
    IntervalValue,
    RegisterRead,
    closure_read_starts,
    ingest_intervals,
    ingest_register_reads,
    interval_read_starts,
    new_register_reads,
)
from smmc.store.work_orders import LeasedOrder

__all__ = [
    "BILLING",
    "DEFAULT_LOOKBACK_DAYS",
    "CollectedMeter",
    "ConcentratorCollectionExecutor",
    "MeterCollectionExecutor",
    "collected_meters",
]

BILLING = Obis(1, 0, 98, 1, 0, 255)
"""The meter's daily billing profile (registers at its local midnight)."""
DEFAULT_LOOKBACK_DAYS = 3
MAX_LOOKBACK_DAYS = 60  # what a meter's own load profile keeps
# Energy register ``1.0.c.x.t.255``: c = 1..4 are A+, A−, R+, R− (DC profiles and meter).
_ENERGY_OF_C = {
    1: Energy.ACTIVE_FORWARD,
    2: Energy.ACTIVE_REVERSE,
    3: Energy.REACTIVE_FORWARD,
    4: Energy.REACTIVE_REVERSE,
}
_DC_LOAD_ENERGIES = tuple(_ENERGY_OF_C.values())  # columns 3..6 of a collected LP row
_DC_SERIAL = Obis(0, 0, 96, 1, 0, 255)  # the serial column of the DC's collected profiles
_PROFILE_STATUS = Obis(0, 0, 96, 10, 1, 255)  # the status byte of an interval row
_VOLTAGE_L1 = Obis(1, 0, 32, 25, 0, 255)
_CURRENT_L1 = Obis(1, 0, 31, 25, 0, 255)
_EVENT_KEY = "TIER_SUM_VIOLATION"
_SOURCE = "collection"
_MAX_LISTED = 20  # rejected rows and unknown serials listed in a result


def _bad(text: str) -> FieldFailure:
    return FieldFailure(FieldError.of(ErrorKey.UNKNOWN, f"[COLLECTION] {text}"))


@dataclass(frozen=True, slots=True)
class _Request:
    kinds: frozenset[CollectionKind]
    lookback: timedelta


def _request(payload: Mapping[str, Any]) -> _Request:
    raw = payload.get("collect")
    if raw is None:
        kinds = frozenset(CollectionKind)
    elif isinstance(raw, list) and raw and all(isinstance(item, str) for item in raw):
        try:
            kinds = frozenset(CollectionKind(item) for item in raw)
        except ValueError:
            known = ", ".join(kind.value for kind in CollectionKind)
            raise _bad(f"collect: {raw!r} names an unknown kind (known: {known})") from None
    else:
        raise _bad(f"collect must be a non-empty list of kinds, got {raw!r}")
    days = payload.get("lookback_days", DEFAULT_LOOKBACK_DAYS)
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_LOOKBACK_DAYS:
        raise _bad(f"lookback_days must be an integer 1..{MAX_LOOKBACK_DAYS}, got {days!r}")
    return _Request(kinds, timedelta(days=days))


# -- which meters, what of each ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CollectedMeter:
    """One meter of a collection order and what its energy profiles ask for."""

    id: int
    serial: str
    load_types: tuple[ReadingType, ...]
    closure_energies: frozenset[Energy]


def collected_meters(
    conn: Connection, *, concentrator_id: int | None = None, meter_id: int | None = None
) -> list[CollectedMeter]:
    """The meters behind a concentrator (or one meter) with what to collect of each."""
    m, p = t.meters.c, t.meter_energy_profiles.c
    query = sa.select(
        m.id,
        m.serial_number,
        m.meter_type,
        p.meter_id.label("assigned"),
        p.daily_closure_profile,
        p.load_profile_profile,
        p.is_upload,
        p.is_daily_closure,
    ).select_from(t.meters.outerjoin(t.meter_energy_profiles, p.meter_id == m.id))
    if concentrator_id is not None:
        query = query.where(m.concentrator_id == concentrator_id)
    if meter_id is not None:
        query = query.where(m.id == meter_id)
    found = []
    load: LoadProfileProfile | None
    daily: DailyClosureProfile | None
    for row in conn.execute(query.order_by(m.id)).mappings():
        if row["assigned"] is None:
            load, daily = DEFAULT_LOAD_PROFILE_PROFILE, DEFAULT_DAILY_CLOSURE_PROFILE
            upload = closing = True
        else:
            load = LOAD_PROFILE_PROFILES.get(row["load_profile_profile"] or "")
            daily = DAILY_CLOSURE_PROFILES.get(row["daily_closure_profile"] or "")
            upload, closing = bool(row["is_upload"]), bool(row["is_daily_closure"])
        meter_type = "polyphase" if row["meter_type"] == "polyphase" else "monophase"
        found.append(
            CollectedMeter(
                row["id"],
                row["serial_number"],
                load.reading_types() if load is not None and upload else (),
                daily.energies(meter_type) if daily is not None and closing else frozenset(),
            )
        )
    return found


def _read_starts(
    engine: Engine,
    meters: Sequence[CollectedMeter],
    kinds: frozenset[CollectionKind],
    since: datetime,
    until: datetime,
) -> dict[CollectionKind, datetime]:
    """Per kind, where the read starts: the earliest instant any meter still lacks."""
    # The energies of one load-profile row are stored together: the profile's first type
    # tells for all of them; a closure is looked for per energy the profile asks.
    load: dict[ReadingType, list[int]] = {}
    closing: dict[Energy, list[int]] = {}
    for meter in meters:
        if meter.load_types:
            load.setdefault(meter.load_types[0], []).append(meter.id)
        for energy in meter.closure_energies:
            closing.setdefault(energy, []).append(meter.id)
    everyone = {AVERAGE_VOLTAGE: [meter.id for meter in meters]}
    starts: dict[CollectionKind, datetime] = {}
    with engine.connect() as conn:
        for kind in kinds:
            if kind is CollectionKind.DAILY_CLOSURE:
                found = _firsts(closure_read_starts, conn, closing, since, until)
            else:
                groups = load if kind is CollectionKind.LOAD_PROFILE else everyone
                found = _firsts(interval_read_starts, conn, groups, since, until)
            if found:
                starts[kind] = min(found)
    return starts


_Key = TypeVar("_Key")


def _firsts(
    search: Callable[[Connection, _Key, list[int], datetime, datetime], dict[int, datetime]],
    conn: Connection,
    groups: Mapping[_Key, list[int]],
    since: datetime,
    until: datetime,
) -> list[datetime]:
    """Every meter's first missing instant, over groups searched by ``search``."""
    return [
        moment
        for key, ids in groups.items()
        for moment in search(conn, key, ids, since, until).values()
    ]


# -- decoding rows ------------------------------------------------------------------------------

Row = tuple[Data, ...]


def _stamp(cell: Data, tz: str) -> datetime:
    raw = cell.value
    if cell.tag is not DataTag.OCTET_STRING or not isinstance(raw, bytes) or len(raw) != 12:
        raise ValueError(f"clock column is not a date-time ({cell.tag.name})")
    moment = CosemDateTime.from_bytes(raw).to_datetime()
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone(tz))


def _number(cell: Data, what: str) -> int:
    raw = cell.value
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise ValueError(f"{what} is not an integer ({cell.tag.name})")
    return raw


def _serial(cell: Data) -> str:
    raw = cell.value
    if not isinstance(raw, bytes | str):
        raise ValueError(f"serial column is a {cell.tag.name}")
    return raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw


@dataclass(slots=True)
class _Batch:
    """What one order read, decoded, ready for one store transaction."""

    intervals: list[IntervalValue] = field(default_factory=list)
    registers: list[RegisterRead] = field(default_factory=list)
    words: list[Observation] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    rejected_count: int = 0
    unknown_serials: set[str] = field(default_factory=set)
    serials: dict[int, str] = field(default_factory=dict)
    measurands: int = 0  # voltage and current values read
    measurands_absent: str | None = None  # why none could be read

    def reject(self, what: str, reason: str) -> None:
        self.rejected_count += 1
        if len(self.rejected) < _MAX_LISTED:
            self.rejected.append(f"{what}: {reason}")


def _dc_rows(
    rows: Iterable[Row],
    width: int,
    what: str,
    meters: Mapping[str, CollectedMeter],
    tz: str,
    batch: _Batch,
    clock: int = 0,
    serial_column: int = 1,
) -> Iterator[tuple[str, Row, CollectedMeter, datetime]]:
    """The rows of a collected-data profile (clock · serial · values, unless the columns
    say where) of known meters, with their label and time; a malformed row is rejected, an
    unknown serial counted. A DC's rows repeat a few clock values: each is decoded once."""
    stamps: dict[Data, datetime] = {}
    for number, row in enumerate(rows, start=1):
        label = f"{what} row {number}"
        try:
            if len(row) != width:
                raise ValueError(f"{len(row)} columns, expected {width}")
            serial = _serial(row[serial_column])
            meter = meters.get(serial)
            if meter is None:
                batch.unknown_serials.add(serial)
                continue
            cell = row[clock]
            # Only a valid clock (an octet-string, hashable) is ever kept.
            at = stamps.get(cell) if cell.tag is DataTag.OCTET_STRING else None
            if at is None:
                at = stamps[cell] = _stamp(cell, tz)
        except ValueError as exc:
            batch.reject(label, str(exc))
            continue
        yield label, row, meter, at


def _dc_load_profile(
    rows: Iterable[Row], meters: Mapping[str, CollectedMeter], tz: str, batch: _Batch
) -> None:
    """Collected LP rows: clock · serial · status · A+ · A− · R+ · R−. A DC sends a day of
    each meter (hundreds of thousands of cells per order) with few distinct clocks and
    status bytes: each clock, status and serial is decoded once, a row's cells are read in
    place, and the checks of `_dc_rows` and `_number` run only on what is not a plain
    integer (so a row is rejected for the same reasons, in the same order). The values come
    out per meter and channel in row order, in UTC: the store's key order, so sorting them
    costs one comparison each."""
    what = "collected load profile"
    stamps: dict[bytes, datetime] = {}
    qualities: dict[int, int] = {}
    read: dict[int, tuple[CollectedMeter, _Taken]] = {}
    known: dict[bytes, _Taken | None] = {}
    for number, row in enumerate(rows, start=1):
        try:
            if len(row) != 7:
                raise ValueError(f"{len(row)} columns, expected 7")
            raw = row[1].value
            target = known.get(raw, _UNSEEN) if type(raw) is bytes else _UNSEEN
            if target is _UNSEEN:
                serial = _serial(row[1])
                meter = meters.get(serial)
                if meter is None:
                    batch.unknown_serials.add(serial)
                    target = None
                else:
                    target = read.setdefault(meter.id, (meter, ([], [], [])))[1]
                if type(raw) is bytes:
                    known[raw] = target
            if target is None:
                continue
            cell = row[0]
            clock = cell.value
            end = stamps.get(clock) if type(clock) is bytes else None
            if end is None:
                end = _stamp(cell, tz).astimezone(UTC)
                if type(clock) is bytes and cell.tag is DataTag.OCTET_STRING:
                    stamps[clock] = end
            status = row[2].value
            if type(status) is not int:
                status = _number(row[2], "status")
            quality = qualities.get(status)
            if quality is None:
                quality = qualities[status] = int(profile_status_quality(status))
            a, b, c, d = row[3].value, row[4].value, row[5].value, row[6].value
            values: tuple[int, ...]
            if type(a) is int and type(b) is int and type(c) is int and type(d) is int:
                values = (a, b, c, d)
            else:
                values = tuple(_number(cell, "energy") for cell in row[3:])
        except ValueError as exc:
            batch.reject(f"{what} row {number}", str(exc))
            continue
        ends, flags, energies = target
        ends.append(end)
        flags.append(quality)
        energies.append(values)
    for meter_id in sorted(read):
        meter, (ends, flags, energies) = read[meter_id]
        for kind in sorted(meter.load_types, key=_TYPE_ID):
            if kind.energy is not None:
                column = operator.itemgetter(_DC_LOAD_ENERGIES.index(kind.energy))
                fields = zip(
                    repeat(meter_id),
                    repeat(kind.id),
                    ends,
                    map(float, map(column, energies)),
                    flags,
                    strict=False,
                )
                # tuple.__new__ builds each IntervalValue (a NamedTuple) in C.
                batch.intervals.extend(map(tuple.__new__, repeat(IntervalValue), fields))


_UNSEEN: Any = object()
_Taken = tuple[list[datetime], list[int], list[tuple[int, ...]]]  # ends, qualities, energies
_TYPE_ID = operator.attrgetter("id")


def _capture_objects(value: Data, what: str) -> tuple[CaptureObjectDefinition, ...]:
    """A profile's capture objects (attribute 3) as read; a malformed list fails the order."""
    try:
        return tuple(
            parse_definition(item) for item in expect_items(value, DataTag.ARRAY, None, what)
        )
    except CosemAccessError as exc:
        raise _bad(f"{what}: {exc.message or exc}") from None


def _clock_and_serial(
    columns: Sequence[CaptureObjectDefinition], rows: int, what: str, batch: _Batch
) -> tuple[int, int] | None:
    """Where a collected profile's clock and serial columns are; without them each of its
    ``rows`` is rejected."""
    clock = next((n for n, c in enumerate(columns) if c == CLOCK_TIME), None)
    serial = next(
        (n for n, c in enumerate(columns) if c.logical_name == _DC_SERIAL and c.class_id == 1),
        None,
    )
    if clock is None or serial is None:
        for number in range(1, rows + 1):
            batch.reject(f"{what} row {number}", "the profile has no clock or serial column")
        return None
    return clock, serial


def _dc_measurands(
    rows: Sequence[Row],
    objects: Sequence[CaptureObjectDefinition],
    decode: DecodeMap,
    meters: Mapping[str, CollectedMeter],
    tz: str,
    batch: _Batch,
) -> None:
    """Collected measurands, decoded by the profile's capture objects: clock · serial ·
    status · average voltage L1 · average current L1 (the simulated DC's order). The
    columns are the meter's own registers, scaled as its device profile declares them, so
    a meter read through its DC stores what it would give read directly."""
    what = "collected measurands"
    located = _clock_and_serial(objects, len(rows), what, batch)
    if located is None:
        return
    clock, serial = located
    infos = (decode.info(c.logical_name, c.attribute_index) for c in objects)
    columns = tuple(
        info if info is not None and info.class_id == c.class_id else None
        for c, info in zip(objects, infos, strict=True)
    )
    where = _measurand_columns(columns, what, batch) if rows else None
    if where is None:
        return
    for label, row, meter, at in _dc_rows(
        rows, len(objects), what, meters, tz, batch, clock, serial
    ):
        try:
            _add_measurands(row, meter, at, where, columns, batch)
        except ValueError as exc:
            batch.reject(label, str(exc))


def _dc_daily(
    rows: Sequence[Row],
    columns: Sequence[CaptureObjectDefinition],
    meters: Mapping[str, CollectedMeter],
    tz: str,
    batch: _Batch,
) -> None:
    """Collected daily rows, decoded by the profile's capture objects: the clock, the serial
    and energy registers ``{3, 1.0.c.8.t.255, 2}``. Every energy with its total and T1..T6
    is a register set (the simulated DC carries all four; an older layout, A+ T1..T6 and
    the four totals, only A+); an energy a meter's profile asks for without its tiers is
    rejected once per read, naming the energy."""
    what = "collected daily closure"
    located = _clock_and_serial(columns, len(rows), what, batch)
    if located is None:
        return
    clock, serial = located
    where = {
        found: n
        for n, c in enumerate(columns)
        if c.class_id == 3
        and c.attribute_index == 2
        and (found := _energy_register(c.logical_name)) is not None
    }
    complete = {
        energy
        for energy in Energy
        if all((energy, tier) in where for tier in range(TIER_COUNT + 1))
    }
    asked = set().union(*(meter.closure_energies for meter in meters.values()))
    if rows:
        for energy in sorted(asked - complete):
            batch.reject(what, f"no total and T1..T6 columns for {energy.value}")
    read = _dc_rows(rows, len(columns), what, meters, tz, batch, clock, serial)
    for label, row, meter, captured in read:
        energies = sorted(meter.closure_energies & complete)
        try:
            sets = [
                (
                    energy,
                    tuple(
                        _number(row[where[(energy, tier)]], f"{energy.value} T{tier}")
                        for tier in range(1, TIER_COUNT + 1)
                    ),
                    _number(row[where[(energy, 0)]], f"{energy.value} total"),
                )
                for energy in energies
            ]
        except ValueError as exc:
            batch.reject(label, str(exc))
            continue
        batch.registers.extend(
            RegisterRead(meter.id, energy, captured, tiers, total) for energy, tiers, total in sets
        )


def _dc_words(
    rows: Iterable[Row], meters: Mapping[str, CollectedMeter], tz: str, batch: _Batch
) -> None:
    """Collected status words: clock · serial · normal 1, normal 2, extended 1, extended 2.
    The latest row of each meter is its current state (older rows are history)."""
    latest: dict[str, Observation] = {}
    width = 2 + len(METER_WORDS)
    for label, row, meter, at in _dc_rows(rows, width, "collected status words", meters, tz, batch):
        try:
            cells = zip(METER_WORDS, row[2:], strict=True)
            words = {name: _number(cell, name) for name, cell in cells}
        except ValueError as exc:
            batch.reject(label, str(exc))
            continue
        seen = latest.get(meter.serial)
        if seen is None or at >= seen.observed_at:
            latest[meter.serial] = Observation(METER, meter.serial, words, at, _SOURCE)
    batch.words.extend(latest[serial] for serial in sorted(latest))


def _energy_register(obis: Obis | None) -> tuple[Energy, int] | None:
    """(energy, tier) of an energy register column ``1.0.c.8.t.255``; tier 0 is the total."""
    if obis is None or obis.a != 1 or obis.d != 8 or obis.c not in _ENERGY_OF_C:
        return None
    if not 0 <= obis.e <= TIER_COUNT:
        return None
    return _ENERGY_OF_C[obis.c], obis.e


Columns = tuple[AttributeInfo | None, ...]


def _column(columns: Columns, obis: Obis) -> int | None:
    return next((n for n, info in enumerate(columns) if info and info.obis == obis), None)


def _scaled(columns: Columns, index: int, row: Row) -> float | int:
    info = columns[index]
    if info is None:
        return _number(row[index], f"column {index + 1}")
    return info.scale(row[index])


def _meter_load_profile(
    rows: Iterable[Row],
    meter: CollectedMeter,
    minutes: int,
    columns: Columns,
    tz: str,
    batch: _Batch,
) -> None:
    """The meter's load profile: clock · status · A+ · A− · R+ · R− (interval energies)."""
    where = {
        found[0]: n
        for n, info in enumerate(columns)
        if (found := _energy_register(info.obis if info else None)) is not None
    }
    wanted = []
    for kind in meter.load_types:
        if kind.energy is None or kind.energy not in where:
            batch.reject(f"{meter.serial} load profile", f"no column for {kind.name}")
            continue
        try:
            wanted.append((interval_type(kind.energy, minutes), where[kind.energy]))
        except ValueError:
            batch.reject(f"{meter.serial} load profile", f"capture period {minutes} min")
            return
    for number, row in enumerate(rows, start=1):
        try:
            end = _stamp(row[0], tz)
            quality = int(profile_status_quality(_number(row[1], "status")))
            values = [(kind, float(_scaled(columns, index, row))) for kind, index in wanted]
        except (ValueError, IndexError) as exc:
            batch.reject(f"{meter.serial} load profile row {number}", str(exc))
            continue
        batch.intervals.extend(
            IntervalValue(meter.id, kind.id, end, value, quality) for kind, value in values
        )


def _meter_measurands(
    rows: Iterable[Row], meter: CollectedMeter, columns: Columns, tz: str, batch: _Batch
) -> None:
    """The measurand profile: clock · status · V L1..L3 · I L1..L3."""
    where = _measurand_columns(columns, f"{meter.serial} measurands", batch)
    if where is None:
        return
    for number, row in enumerate(rows, start=1):
        try:
            _add_measurands(row, meter, _stamp(row[0], tz), where, columns, batch)
        except (ValueError, IndexError) as exc:
            batch.reject(f"{meter.serial} measurand row {number}", str(exc))


def _measurand_columns(columns: Columns, what: str, batch: _Batch) -> tuple[int, int, int] | None:
    """Where a measurand profile's status, L1 voltage and L1 current are (rejected once
    if one is missing)."""
    found = [_column(columns, obis) for obis in (_PROFILE_STATUS, _VOLTAGE_L1, _CURRENT_L1)]
    status, voltage, current = found
    if status is None or voltage is None or current is None:
        batch.reject(what, "no status, L1 voltage or L1 current column")
        return None
    return status, voltage, current


def _add_measurands(
    row: Row,
    meter: CollectedMeter,
    end: datetime,
    where: tuple[int, int, int],
    columns: Columns,
    batch: _Batch,
) -> None:
    """A measurand row's values the store keeps: the average voltage and current of phase
    A (L1), the reading types DOMAIN.md §6 names, with the row's quality."""
    status, voltage, current = where
    quality = int(profile_status_quality(_number(row[status], "status")))
    volts = float(_scaled(columns, voltage, row))
    amps = float(_scaled(columns, current, row))
    batch.intervals.append(IntervalValue(meter.id, AVERAGE_VOLTAGE.id, end, volts, quality))
    batch.intervals.append(IntervalValue(meter.id, AVERAGE_CURRENT.id, end, amps, quality))
    batch.measurands += 2


def _meter_billing(
    rows: Iterable[Row], meter: CollectedMeter, columns: Columns, tz: str, batch: _Batch
) -> None:
    """The daily billing profile: clock · status · per energy the total and T1..T6."""
    where = {
        found: n
        for n, info in enumerate(columns)
        if (found := _energy_register(info.obis if info else None)) is not None
    }
    energies = []
    for energy in sorted(meter.closure_energies):
        if all((energy, tier) in where for tier in range(TIER_COUNT + 1)):
            energies.append(energy)
        else:
            batch.reject(f"{meter.serial} billing", f"no tier columns for {energy.value}")
    for number, row in enumerate(rows, start=1):
        try:
            captured = _stamp(row[0], tz)
            sets = [
                (
                    energy,
                    tuple(
                        int(_scaled(columns, where[(energy, tier)], row))
                        for tier in range(1, TIER_COUNT + 1)
                    ),
                    int(_scaled(columns, where[(energy, 0)], row)),
                )
                for energy in energies
            ]
        except (ValueError, IndexError) as exc:
            batch.reject(f"{meter.serial} billing row {number}", str(exc))
            continue
        batch.registers.extend(
            RegisterRead(meter.id, energy, captured, tiers, total) for energy, tiers, total in sets
        )


# -- storing ----------------------------------------------------------------------------------


def _store(engine: Engine, batch: _Batch, order: LeasedOrder, received: datetime) -> dict[str, Any]:
    """Everything an order read, in one transaction; the tier-sum events of sets stored for
    the first time, and the ``created MeterReadings`` of what was newly stored (for meters
    whose energy profile uploads), go out in the same transaction."""
    batch.intervals.sort(key=INTERVAL_ORDER)
    with engine.begin() as conn:
        intervals = ingest_intervals(conn, batch.intervals, received_at=received)
        fresh = new_register_reads(conn, batch.registers)
        registers = ingest_register_reads(conn, batch.registers, received_at=received)
        occurrences = [
            Occurrence(
                METER,
                batch.serials[read.meter_id],
                _EVENT_KEY,
                read.captured_at,
                _SOURCE,
                raw=json.dumps({"tiers": list(read.tiers), "total": read.total}),
                description=(
                    f"{read.energy.value} closure captured {read.captured_at.isoformat()}: "
                    f"T1..T6 sum to {sum(read.tiers)}, total is {read.total}"
                ),
                correlation_id=str(order.batch_id),
            )
            for read in fresh
            if tier_sum_violated(read.tiers, read.total)
        ]
        if batch.words or occurrences:
            apply_events(conn, batch.words, occurrences, now=received)
        offered = batch.intervals if intervals.inserted else []
        messages = queue_collected(
            conn,
            batch.serials,
            offered,
            fresh,
            now=received,
            all_new=intervals.inserted == intervals.offered,
        )
    return {
        "intervals_offered": intervals.offered,
        "intervals_new": intervals.inserted,
        "closures_offered": registers.offered,
        "closures_new": registers.inserted,
        "tier_sum_violations": len(registers.tier_sum_violations),
        "tier_sum_events": len(occurrences),
        "status_words": len(batch.words),
        "rejected": batch.rejected_count,
        "rejected_rows": batch.rejected,
        "unknown_serials": sorted(batch.unknown_serials)[:_MAX_LISTED],
        "readings_messages": messages,
    }


# -- executors ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Plan:
    kinds: frozenset[CollectionKind]
    now: datetime
    meters: list[CollectedMeter]
    starts: dict[CollectionKind, datetime]


class _CollectionExecutor(FieldExecutor):
    """What both collections share: the plan before the session, the store after it."""

    async def plan(
        self, order: LeasedOrder, *, concentrator_id: int | None = None, meter_id: int | None = None
    ) -> _Plan:
        request = _request(order.payload)
        engine = self.drivers.engine
        now = self.context.now()
        meters = await asyncio.to_thread(
            _meters, engine, concentrator_id=concentrator_id, meter_id=meter_id
        )
        kinds, since = request.kinds, now - request.lookback
        starts = await asyncio.to_thread(_read_starts, engine, meters, kinds, since, now)
        return _Plan(kinds, now, meters, starts)

    async def finish(self, order: LeasedOrder, plan: _Plan, batch: _Batch) -> FieldResult:
        stored = await asyncio.to_thread(_store, self.drivers.engine, batch, order, plan.now)
        ranges = {
            kind.value: [start.isoformat(), plan.now.isoformat()]
            for kind, start in plan.starts.items()
        }
        result = {"meters": len(plan.meters), "ranges": ranges, **stored}
        if CollectionKind.MEASURANDS in plan.kinds:
            result["measurands"] = batch.measurands_absent or batch.measurands
        return FieldResult(result)


class ConcentratorCollectionExecutor(_CollectionExecutor):
    """Bulk collection of every meter behind one concentrator from its collected data."""

    activity = ActivityType.COLLECTION

    async def run(self, order: LeasedOrder) -> FieldResult:
        dc_id = self.concentrator_id(order)
        plan = await self.plan(order, concentrator_id=dc_id)
        now, starts = plan.now, plan.starts
        by_serial = {meter.serial: meter for meter in plan.meters}
        batch = _Batch(serials={meter.id: meter.serial for meter in plan.meters})
        load: list[Row] = []
        daily: list[Row] = []
        daily_columns = measurand_columns = Data.array(())
        measurands: list[Row] = []
        words: list[Row] = []
        async with self.drivers.concentrator(dc_id, order.priority) as dc:
            tz = dc.access.time_zone
            if CollectionKind.LOAD_PROFILE in starts:
                load = await dc.client.read_profile(
                    COLLECTED_LOAD_PROFILE, starts[CollectionKind.LOAD_PROFILE], now
                )
            if CollectionKind.MEASURANDS in starts:
                try:
                    measurand_columns = await dc.client.get(7, COLLECTED_MEASURANDS, 3)
                except ServiceError as exc:
                    if exc.code != DataAccessResult.OBJECT_UNDEFINED:
                        raise
                    batch.measurands_absent = "not offered by the concentrator"
                else:
                    measurands = await dc.client.read_profile(
                        COLLECTED_MEASURANDS, starts[CollectionKind.MEASURANDS], now
                    )
            if CollectionKind.DAILY_CLOSURE in plan.kinds:
                # The status words are captured with the closures: read them every run (the
                # latest row is the meter's state), from the first missing closure if any.
                start = starts.get(CollectionKind.DAILY_CLOSURE, now - timedelta(days=1))
                if CollectionKind.DAILY_CLOSURE in starts:
                    daily_columns = await dc.client.get(7, COLLECTED_DAILY, 3)
                    daily = await dc.client.read_profile(COLLECTED_DAILY, start, now)
                words = await dc.client.read_profile(COLLECTED_STATUS_WORDS, start, now)
        _dc_load_profile(load, by_serial, tz, batch)
        columns = _capture_objects(measurand_columns, "collected measurands capture objects")
        _dc_measurands(measurands, columns, self.drivers.decode, by_serial, tz, batch)
        columns = _capture_objects(daily_columns, "collected daily closure capture objects")
        _dc_daily(daily, columns, by_serial, tz, batch)
        _dc_words(words, by_serial, tz, batch)
        # The rows as read (tens of thousands of objects) need not outlive their decoding:
        # every live object makes the collector's full passes during the store longer.
        del load, measurands, daily, words
        return await self.finish(order, plan, batch)


class MeterCollectionExecutor(_CollectionExecutor):
    """Collection of one point-to-point meter from its own profiles."""

    activity = ActivityType.METER_COLLECTION

    async def run(self, order: LeasedOrder) -> FieldResult:
        plan = await self.plan(order, meter_id=self.meter_id(order))
        now, starts, target = plan.now, plan.starts, plan.meters[0]
        batch = _Batch(serials={target.id: target.serial})
        decode = self.drivers.decode
        async with self.drivers.meter(target.id, order.concentrator_id, order.priority) as meter:
            dc = meter.access.concentrator
            tz = dc.time_zone if dc is not None else DEFAULT_TIME_ZONE
            if CollectionKind.LOAD_PROFILE in starts:
                seconds = _number(await meter.client.get(7, LOAD_PROFILE, 4), "capture period")
                rows = await meter.client.read_profile(
                    LOAD_PROFILE, starts[CollectionKind.LOAD_PROFILE], now
                )
                columns = decode.columns(LOAD_PROFILE)
                _meter_load_profile(rows, target, seconds // 60, columns, tz, batch)
            if CollectionKind.MEASURANDS in starts:
                rows = await meter.client.read_profile(
                    MEASURAND_PROFILE, starts[CollectionKind.MEASURANDS], now
                )
                _meter_measurands(rows, target, decode.columns(MEASURAND_PROFILE), tz, batch)
            if CollectionKind.DAILY_CLOSURE in starts:
                rows = await meter.client.read_profile(
                    BILLING, starts[CollectionKind.DAILY_CLOSURE], now
                )
                _meter_billing(rows, target, decode.columns(BILLING), tz, batch)
            if CollectionKind.DAILY_CLOSURE in plan.kinds:
                words = dict(zip(METER_WORDS, await meter.status_words(), strict=True))
                batch.words.append(Observation(METER, target.serial, words, now, _SOURCE))
        return await self.finish(order, plan, batch)


def _meters(
    engine: Engine, *, concentrator_id: int | None = None, meter_id: int | None = None
) -> list[CollectedMeter]:
    with engine.connect() as conn:
        found = collected_meters(conn, concentrator_id=concentrator_id, meter_id=meter_id)
    if meter_id is not None and not found:
        raise _bad(f"meter {meter_id} is not registered")
    return found
