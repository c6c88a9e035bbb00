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
import uuid
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from smmc.domain.readings import READING_TYPES, Energy, ReadingKind, reading_type_by_id
from smmc.integration.payloads import MeterReading
from smmc.integration.soap import MAX_VALUES, CimService
from smmc.store import tables as t
from smmc.store.outbox import READINGS, queue_messages
from smmc.store.readings import IntervalValue, RegisterRead
from smmc.store.work_orders import WorkOrderQueue

__all__ = [
    "ReadingGroup",
    "eligible_meters",
    "queue_collected",
    "queue_meter_readings",
    "readings_message_id",
]

NORMAL = "normal"
_NAMESPACE = uuid.UUID("0c6f4d52-7a1b-4e8f-b3d9-5e2a61c8f047")
_METERS_PER_READ = 200
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
    group: ReadingGroup, start: datetime, end: datetime, meters: Sequence[str]
) -> str:
    """A MeterReadings message's MessageID, derived from its group, period and meters: the
    same readings queued again (a rerun) get the same MessageID and are not sent twice."""
    key = f"readings/{group.value}/{start.isoformat()}/{end.isoformat()}/{','.join(meters)}"
    return str(uuid.uuid5(_NAMESPACE, key))


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
    max_values: int = 10_000,
    now: datetime | None = None,
) -> int:
    """Write the period's readings of the eligible meters (all, or those of ``meters``) to
    the outbox as bounded ``MeterReadings`` messages; returns how many messages. Load
    profiles are the intervals ending in ``(start, end]``, closures those captured in
    ``[start, end]``. Given a connection, the rows are read and written in its transaction;
    a message queued before (same MessageID) is not queued again."""
    if max_values < 1:
        raise ValueError(f"max_values must be at least 1, got {max_values}")
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end: aware datetimes")
    if end < start or (end == start and group is ReadingGroup.LOAD_PROFILE):
        raise ValueError("start and end: start before end (or equal, for daily closures)")
    register = group is ReadingGroup.DAILY_CLOSURE
    types = [rt for rt in READING_TYPES if (rt.kind is ReadingKind.REGISTER) == register]
    with _connected(bind) as conn:
        service = CimService(conn.engine, WorkOrderQueue(conn.engine))
        serials = eligible_meters(conn, group, meters)
        messages: list[list[dict[str, Any]]] = []
        current: list[dict[str, Any]] = []
        size = 0
        per_read = _meters_per_read(group, end - start, len(types))
        for first in range(0, len(serials), per_read):
            chunk = serials[first : first + per_read]
            for item in service.stored_readings(chunk, types, [(start, end)], conn=conn):
                entry, values = _as_json(item)
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
        for index, entries in enumerate(messages, start=1):
            message_id = readings_message_id(group, start, end, [e["meter"] for e in entries])
            body = {
                "message_id": message_id,
                "kind": READINGS,
                "group": group.value,
                "index": index,
                "count": len(messages),
                "period_start": start.isoformat(),
                "period_end": end.isoformat(),
                "meters": entries,
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


def queue_collected(
    conn: Connection,
    serials: Mapping[int, str],
    intervals: Sequence[IntervalValue],
    closures: Sequence[RegisterRead],
    *,
    now: datetime | None = None,
) -> int:
    """What a collection has just stored, out to Legacy in the collection's transaction:
    the new closures (``closures``: the register sets stored for the first time) over the
    span of their capture instants, and the load profile and measurands of the meters that
    were offered ``intervals`` over the span those intervals cover. Only eligible meters;
    returns how many messages. A meter whose values in that span were partly stored
    before has them sent again, in a message with its own MessageID."""
    count = 0
    if closures:
        meters = sorted({serials[read.meter_id] for read in closures})
        low = min(read.captured_at for read in closures)
        high = max(read.captured_at for read in closures)
        count += queue_meter_readings(
            conn, ReadingGroup.DAILY_CLOSURE, low, high, meters=meters, now=now
        )
    if intervals:
        meters = sorted({serials[value.meter_id] for value in intervals})
        low = min(
            value.interval_end
            - timedelta(minutes=reading_type_by_id(value.reading_type_id).minutes or 0)
            for value in intervals
        )
        high = max(value.interval_end for value in intervals)
        count += queue_meter_readings(
            conn, ReadingGroup.LOAD_PROFILE, low, high, meters=meters, now=now
        )
    return count
