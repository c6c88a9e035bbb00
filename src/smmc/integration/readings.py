"""Collected readings out to Legacy: daily closures and load profiles as ``created
MeterReadings`` on the normal-priority queue, for the meters whose energy profile says so.

``queue_meter_readings`` is what the collection calls once a day's (or a window's) data is
stored: it reads the stored values of the eligible meters over the period exactly as
``GetMeterReadings`` answers them (``CimService.stored_readings``: kWh/kvarh by the code's
multiplier, interval values by interval end, register values by capture time), splits them
into messages of at most ``max_values`` values (a meter is never split), and writes one
outbox row per message in one transaction. Each message carries ``ReadingTypeGroup``
(``DAILY_CLOSURE`` or ``LOAD_PROFILE``) and ``MessageIndex`` (``i/n``) header properties.

Eligible: a meter with an energy-profile row whose ``is_upload`` is true and, for daily
closures, whose ``is_daily_closure`` is true too.
"""

from __future__ import annotations

import json
import math
import operator
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from itertools import repeat
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from smmc.domain.readings import (
    READING_TYPES,
    Energy,
    ReadingKind,
    ReadingType,
    reading_type_by_id,
)
from smmc.integration.payloads import MeterReading
from smmc.integration.soap import MAX_VALUES, CimService, scaled_value
from smmc.store import tables as t
from smmc.store.outbox import READINGS, queue_messages
from smmc.store.readings import INTERVAL_ORDER, IntervalValue, RegisterRead
from smmc.store.work_orders import WorkOrderQueue

__all__ = [
    "Part",
    "ReadingGroup",
    "eligible_meters",
    "queue_collected",
    "queue_meter_readings",
    "readings_message_id",
]

NORMAL = "normal"
_NAMESPACE = uuid.UUID("0c6f4d52-7a1b-4e8f-b3d9-5e2a61c8f047")
_METERS_PER_READ = 200
MAX_MESSAGE_VALUES = 10_000
"""Values per ``MeterReadings`` message unless the caller says otherwise."""
_METER, _TYPE, _END, _VALUE = (operator.itemgetter(n) for n in range(4))
_METER_TYPE = operator.itemgetter(0, 1)
_SHORTEST_INTERVAL = timedelta(
    minutes=min(rt.minutes for rt in READING_TYPES if rt.minutes is not None)
)


class ReadingGroup(StrEnum):
    DAILY_CLOSURE = "DAILY_CLOSURE"
    LOAD_PROFILE = "LOAD_PROFILE"


def eligible_meters(
    bind: Engine | Connection, group: ReadingGroup, meters: Sequence[str] | None = None
) -> list[str]:
    """Serials of the meters whose energy profile asks for this group, sorted."""
    p, m = t.meter_energy_profiles.c, t.meters.c
    query = (
        sa.select(m.serial_number)
        .select_from(t.meters.join(t.meter_energy_profiles))
        .where(p.is_upload)
        .order_by(m.serial_number)
    )
    if group is ReadingGroup.DAILY_CLOSURE:
        query = query.where(p.is_daily_closure)
    if meters is not None:
        query = query.where(m.serial_number.in_(list(meters)))
    with _connected(bind) as conn:
        return list(conn.execute(query).scalars())


def _connected(bind: Engine | Connection) -> AbstractContextManager[Connection]:
    return bind.begin() if isinstance(bind, Engine) else nullcontext(bind)


def readings_message_id(
    group: ReadingGroup,
    start: datetime,
    end: datetime,
    meters: Sequence[str],
    part: str | None = None,
) -> str:
    """A MeterReadings message's MessageID, derived from its group, period, meters and, for
    a message of only a part of the group's types, that part: the same readings queued
    again (a rerun) get the same MessageID and are not sent twice."""
    key = f"readings/{group.value}/{start.isoformat()}/{end.isoformat()}/{','.join(meters)}"
    return str(uuid.uuid5(_NAMESPACE, key if part is None else f"{key}/{part}"))


def _as_json(item: MeterReading) -> tuple[dict[str, Any], int]:
    """A MeterReading as the outbox row stores it, and how many values it holds."""
    blocks = [
        {
            "reading_type": block.reading_type,
            "values": [[r.timestamp.isoformat(), r.value] for r in block.readings],
        }
        for block in item.interval_blocks
    ]
    registers = [[code, r.timestamp.isoformat(), r.value] for code, r in item.readings]
    size = sum(len(b["values"]) for b in blocks) + len(registers)
    return {"meter": item.meter.label, "blocks": blocks, "registers": registers}, size


def _meters_per_read(group: ReadingGroup, span: timedelta, types: int) -> int:
    """How many meters one ``stored_readings`` call may cover without passing its limit of
    ``MAX_VALUES`` values, counted as it counts them: every interval type at the shortest
    interval, or every register type of each energy's closure per day."""
    if group is ReadingGroup.LOAD_PROFILE:
        per_meter = (span // _SHORTEST_INTERVAL + 1) * types
    else:
        per_meter = (span // timedelta(days=1) + 2) * len(Energy) * types
    return max(1, min(_METERS_PER_READ, MAX_VALUES // per_meter))


def queue_meter_readings(
    bind: Engine | Connection,
    group: ReadingGroup,
    start: datetime,
    end: datetime,
    *,
    meters: Sequence[str] | None = None,
    max_values: int = MAX_MESSAGE_VALUES,
    now: datetime | None = None,
    part: Part | None = None,
) -> int:
    """Write the period's readings of the eligible meters (all, or those of ``meters``) to
    the outbox as bounded ``MeterReadings`` messages; returns how many messages. Load
    profiles are the intervals ending in ``(start, end]``, closures those captured in
    ``[start, end]``; ``part`` keeps a load profile's messages to its energies or its
    measurands. Given a connection, the rows are read and written in its transaction; a
    message queued before (same MessageID) is not queued again."""
    if max_values < 1:
        raise ValueError(f"max_values must be at least 1, got {max_values}")
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end: aware datetimes")
    if end < start or (end == start and group is ReadingGroup.LOAD_PROFILE):
        raise ValueError("start and end: start before end (or equal, for daily closures)")
    with _connected(bind) as conn:
        meters = eligible_meters(conn, group, meters)
        entries = _stored_entries(conn, group, start, end, meters, _types(group, part))
        return _queue(conn, group, start, end, entries, max_values, now, part)


def _group_types(group: ReadingGroup) -> list[ReadingType]:
    register = group is ReadingGroup.DAILY_CLOSURE
    return [rt for rt in READING_TYPES if (rt.kind is ReadingKind.REGISTER) == register]


class Part(StrEnum):
    """A part of the load-profile group: a DC's load profile and its measurands are
    collected by separate orders, each of which sends what it stored, and only that."""

    ENERGIES = "energies"
    MEASURANDS = "measurands"


def _types(group: ReadingGroup, part: Part | None) -> list[ReadingType]:
    types = _group_types(group)
    if part is None:
        return types
    measurand = part is Part.MEASURANDS
    return [rt for rt in types if (rt.kind is ReadingKind.MEASURAND) == measurand]


def _part(type_ids: set[int]) -> Part | None:
    """The part of the load-profile group that offered intervals of these types belong to
    (``None``: both)."""
    measurands = {rt.id for rt in _types(ReadingGroup.LOAD_PROFILE, Part.MEASURANDS)}
    if type_ids <= measurands:
        return Part.MEASURANDS
    return Part.ENERGIES if type_ids.isdisjoint(measurands) else None


def _stored_entries(
    conn: Connection,
    group: ReadingGroup,
    start: datetime,
    end: datetime,
    serials: list[str],
    types: list[ReadingType],
) -> Iterator[tuple[dict[str, Any], int]]:
    """The meters' stored readings of the period, as ``GetMeterReadings`` answers them."""
    service = CimService(conn.engine, WorkOrderQueue(conn.engine))
    per_read = _meters_per_read(group, end - start, len(types))
    for first in range(0, len(serials), per_read):
        chunk = serials[first : first + per_read]
        for item in service.stored_readings(chunk, types, [(start, end)], conn=conn):
            yield _as_json(item)


def _queue(
    conn: Connection,
    group: ReadingGroup,
    start: datetime,
    end: datetime,
    entries: Iterable[tuple[dict[str, Any], int]],
    max_values: int,
    now: datetime | None,
    part: Part | None = None,
) -> int:
    """The meters' entries as outbox rows of at most ``max_values`` values (a meter is
    never split; a meter without values is left out); returns how many messages."""
    messages: list[list[dict[str, Any]]] = []
    current: list[dict[str, Any]] = []
    size = 0
    for entry, values in entries:
        if values == 0:
            continue
        if current and size + values > max_values:
            messages.append(current)
            current, size = [], 0
        current.append(entry)
        size += values
    if current:
        messages.append(current)
    stamp = now or datetime.now(UTC)
    rows = []
    for index, items in enumerate(messages, start=1):
        # The energies keep the group's MessageID (a DC's load profile had it before it
        # was collected apart from its measurands).
        named = part if part is Part.MEASURANDS else None
        message_id = readings_message_id(group, start, end, [e["meter"] for e in items], named)
        body = {
            "message_id": message_id,
            "kind": READINGS,
            "group": group.value,
            "index": index,
            "count": len(messages),
            "period_start": start.isoformat(),
            "period_end": end.isoformat(),
            "meters": items,
        }
        rows.append(
            {
                "message_id": message_id,
                "kind": READINGS,
                "priority": NORMAL,
                "payload": json.dumps(body),
                "created_at": stamp,
                "delivered_at": None,
            }
        )
    queue_messages(conn, rows)
    return len(rows)


class _Scaled(dict[tuple[int, float], str]):
    """(reading type id, stored value) → the value in the unit of the type's code, each
    distinct pair rendered once (a day's load profile repeats few values)."""

    def __missing__(self, key: tuple[int, float]) -> str:
        type_id, value = key
        text = self[key] = scaled_value(value, reading_type_by_id(type_id).code)
        return text


def _offered_entries(
    conn: Connection,
    serials: Mapping[int, str],
    meters: list[str],
    intervals: Sequence[IntervalValue],
    start: datetime,
    end: datetime,
    types: list[ReadingType],
) -> list[tuple[dict[str, Any], int]] | None:
    """The load-profile entries of the eligible meters built from ``intervals``, which the
    caller has just stored, all of them new — exactly what reading them back would give,
    provided the store holds nothing else of those meters in ``(start, end]`` (counted
    here; ``None`` when it does, or when a value is a negative zero, which SQLite stores
    as zero)."""
    eligible = eligible_meters(conn, ReadingGroup.LOAD_PROFILE, meters)
    ids = {serial: meter_id for meter_id, serial in serials.items()}
    wanted = {ids[serial] for serial in eligible}
    values = intervals if len(eligible) == len(meters) else [v for v in intervals if v[0] in wanted]
    amounts = list(map(_VALUE, values))
    if min(map(math.copysign, repeat(1.0), filter((0.0).__eq__, amounts)), default=1.0) < 0:
        return None
    iv = t.interval_readings.c
    type_ids = [rt.id for rt in types]
    meter_ids = sorted(wanted)
    stored = 0
    for first in range(0, len(meter_ids), _METERS_PER_READ):
        stored += conn.execute(
            sa.select(sa.func.count()).where(
                iv.meter_id.in_(meter_ids[first : first + _METERS_PER_READ]),
                iv.reading_type_id.in_(type_ids),
                iv.interval_end > start,
                iv.interval_end <= end,
            )
        ).scalar_one()
    if stored != len(values):
        return None
    ordered = sorted(values, key=INTERVAL_ORDER)
    stamps = {moment: moment.astimezone(UTC).isoformat() for moment in set(map(_END, values))}
    # (time, value) tuples: JSON writes them as the read-back's lists, and the collector
    # stops tracking a tuple of strings (a day of a DC is hundreds of thousands of pairs).
    pairs = list(
        zip(
            map(stamps.__getitem__, map(_END, ordered)),
            map(_Scaled().__getitem__, zip(map(_TYPE, ordered), map(_VALUE, ordered), strict=True)),
            strict=True,
        )
    )
    blocks: dict[int, list[dict[str, Any]]] = {}
    sizes: dict[int, int] = {}
    first = 0
    # Counted in key order: each meter and type is one run of the ordered values.
    for (meter_id, type_id), count in Counter(map(_METER_TYPE, ordered)).items():
        code = reading_type_by_id(type_id).code
        blocks.setdefault(meter_id, []).append(
            {"reading_type": code, "values": pairs[first : first + count]}
        )
        sizes[meter_id] = sizes.get(meter_id, 0) + count
        first += count
    return [
        ({"meter": serial, "blocks": blocks[ids[serial]], "registers": []}, sizes[ids[serial]])
        for serial in eligible
        if ids[serial] in blocks
    ]


def queue_collected(
    conn: Connection,
    serials: Mapping[int, str],
    intervals: Sequence[IntervalValue],
    closures: Sequence[RegisterRead],
    *,
    now: datetime | None = None,
    all_new: bool = False,
) -> int:
    """What a collection has just stored, out to Legacy in the collection's transaction:
    the new closures (``closures``: the register sets stored for the first time) over the
    span of their capture instants, and the load profile and measurands of the meters that
    were offered ``intervals`` over the span those intervals cover. Only eligible meters;
    returns how many messages. A meter whose values in that span were partly stored
    before has them sent again, in a message with its own MessageID. ``all_new``: every
    one of ``intervals`` was stored by this transaction, so the messages may be built from
    them instead of read back (a day of a concentrator is hundreds of thousands of values)."""
    count = 0
    if closures:
        meters = sorted({serials[read.meter_id] for read in closures})
        low = min(read.captured_at for read in closures)
        high = max(read.captured_at for read in closures)
        count += queue_meter_readings(
            conn, ReadingGroup.DAILY_CLOSURE, low, high, meters=meters, now=now
        )
    if intervals:
        meters = sorted({serials[meter_id] for meter_id in map(_METER, intervals)})
        lengths = {
            type_id: timedelta(minutes=reading_type_by_id(type_id).minutes or 0)
            for type_id in set(map(_TYPE, intervals))
        }
        ends = list(map(_END, intervals))
        low = min(map(operator.sub, ends, map(lengths.__getitem__, map(_TYPE, intervals))))
        high = max(ends)
        group = ReadingGroup.LOAD_PROFILE
        part = _part(set(lengths))
        types = _types(group, part)
        entries = (
            _offered_entries(conn, serials, meters, intervals, low, high, types)
            if all_new
            else None
        )
        if entries is None:
            count += queue_meter_readings(conn, group, low, high, meters=meters, now=now, part=part)
        else:
            count += _queue(conn, group, low, high, entries, MAX_MESSAGE_VALUES, now, part)
    return count
