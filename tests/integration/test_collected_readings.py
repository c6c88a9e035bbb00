"""``queue_collected`` on both databases: the load-profile messages it builds from values the
collection has just stored (all new) are exactly those read back from the store — same
outbox rows, byte for byte — and it reads them back whenever the store holds something else
in their span (values stored before, another reading type) or a value it cannot trust to
render the same (a negative zero)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any
from unittest import mock

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Connection, Engine
from test_outbox_readings import add_meters

from smmc.domain.readings import READING_TYPES, ReadingKind
from smmc.integration import readings
from smmc.integration.readings import queue_collected
from smmc.store import tables as t
from smmc.store.readings import IntervalValue, ingest_intervals

DAY = datetime(2025, 11, 20, tzinfo=timezone(timedelta(hours=-3)))  # as a DC stamps rows
NOW = DAY + timedelta(days=1, minutes=10)
TYPES = [rt for rt in READING_TYPES if rt.kind is not ReadingKind.REGISTER]

values_ = st.one_of(
    st.integers(0, 10**9).map(float),
    st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, 0.1, 0.112, 229.7, 1e-7, 123456789.125]),
).filter(lambda value: value != 0 or math.copysign(1.0, value) > 0)  # no negative zero
# (meter index, reading type, interval number, value), unique per meter, type and number
cells_ = st.lists(
    st.tuples(st.integers(0, 3), st.sampled_from(TYPES), st.integers(1, 12), values_),
    min_size=1,
    max_size=60,
    unique_by=lambda cell: (cell[0], cell[1].id, cell[2]),
)


@pytest.fixture
def meters(db: Engine) -> dict[int, str]:
    """Meter id → serial of `add_meters` (M1 and M2 upload their load profile)."""
    with db.begin() as conn:
        return {meter_id: serial for serial, meter_id in add_meters(conn).items()}


def _intervals(meters: dict[int, str], cells: list[Any]) -> list[IntervalValue]:
    ids = sorted(meters)
    return [
        IntervalValue(ids[n], rt.id, DAY + timedelta(minutes=(rt.minutes or 15) * k), value)
        for n, rt, k, value in cells
    ]


@contextmanager
def _rolled_back(db: Engine) -> Iterator[Connection]:
    with db.connect() as conn:
        transaction = conn.begin()
        try:
            yield conn
        finally:
            transaction.rollback()


def _queued(
    conn: Connection, meters: dict[int, str], offered: list[IntervalValue], *, all_new: bool
) -> list[Any]:
    """What ``queue_collected`` writes to the outbox for ``offered`` (then removed again)."""
    count = queue_collected(conn, meters, offered, [], now=NOW, all_new=all_new)
    rows = conn.execute(
        sa.select(t.outbox.c.message_id, t.outbox.c.payload, t.outbox.c.created_at).order_by(
            t.outbox.c.id
        )
    ).all()
    conn.execute(t.outbox.delete())
    assert len(rows) == count
    return [tuple(row) for row in rows]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cells=cells_)
def test_messages_built_from_new_values_are_those_read_back(
    db: Engine, meters: dict[int, str], cells: list[Any]
) -> None:
    offered = _intervals(meters, cells)
    with _rolled_back(db) as conn:
        assert ingest_intervals(conn, offered).inserted == len(offered)
        # Built from the values: the read-back path is not taken.
        with mock.patch.object(readings, "_stored_entries", side_effect=AssertionError):
            built = _queued(conn, meters, offered, all_new=True)
        read_back = _queued(conn, meters, offered, all_new=False)
    assert built == read_back
    uploading = {meter_id for meter_id, serial in meters.items() if serial in ("M1", "M2")}
    assert bool(built) == any(value.meter_id in uploading for value in offered)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(before=cells_, cells=cells_)
def test_values_stored_before_in_the_span_are_read_back(
    db: Engine, meters: dict[int, str], before: list[Any], cells: list[Any]
) -> None:
    earlier = _intervals(meters, before)
    keys = {value[:3] for value in earlier}
    offered = [value for value in _intervals(meters, cells) if value[:3] not in keys]
    if not offered:
        return
    with _rolled_back(db) as conn:
        ingest_intervals(conn, earlier)
        assert ingest_intervals(conn, offered).inserted == len(offered)
        built = _queued(conn, meters, offered, all_new=True)
        read_back = _queued(conn, meters, offered, all_new=False)
    assert built == read_back


def test_a_negative_zero_is_read_back(db: Engine, meters: dict[int, str]) -> None:
    """SQLite stores -0.0 as 0.0, PostgreSQL keeps the sign: only the store knows."""
    offered = _intervals(meters, [(0, TYPES[0], 1, -0.0), (0, TYPES[0], 2, 5.0)])
    with _rolled_back(db) as conn:
        ingest_intervals(conn, offered)
        built = _queued(conn, meters, offered, all_new=True)
        read_back = _queued(conn, meters, offered, all_new=False)
    assert built == read_back
    assert built
