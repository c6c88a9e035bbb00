"""The bulk ingest's two ways of keying a batch (one zone and interval length, or mixed) and
PostgreSQL's direct COPY with its fall-back to the staging table, on both backends."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from smmc.domain.readings import Energy, QualityFlag, UnknownReadingType, interval_type
from smmc.domain.time import interval_ends
from smmc.store.readings import IntervalValue, ingest_intervals
from smmc.store.tables import concentrators, interval_readings, meter_read_days, meters

FALL_BACK = date(2026, 4, 4)  # 100 quarter hours in Santiago, 96 in Punta Arenas (no DST)
A15 = interval_type(Energy.ACTIVE_FORWARD)
A60 = interval_type(Energy.ACTIVE_FORWARD, 60)
R15 = interval_type(Energy.REACTIVE_FORWARD)


def _meter(db: Engine, serial: str, tz: str) -> int:
    with db.begin() as conn:
        dc = conn.execute(
            concentrators.insert()
            .values(name=f"TD-{serial}", time_zone=tz)
            .returning(concentrators.c.id)
        ).scalar_one()
        return int(
            conn.execute(
                meters.insert()
                .values(serial_number=serial, concentrator_id=dc, commissioned=True)
                .returning(meters.c.id)
            ).scalar_one()
        )


def _day(meter_id: int, kind: int, tz: str, minutes: int = 15) -> list[IntervalValue]:
    return [
        IntervalValue(meter_id, kind, end, float(n))
        for n, end in enumerate(interval_ends(FALL_BACK, tz, minutes))
    ]


def _stored(db: Engine) -> dict[tuple[int, int, datetime], tuple[float, int]]:
    with db.connect() as conn:
        rows = conn.execute(sa.select(interval_readings))
        return {(m, t, e): (v, q) for m, t, e, v, q in rows}


def _read_days(db: Engine) -> set[tuple[int, date]]:
    with db.connect() as conn:
        rows = conn.execute(sa.select(meter_read_days.c.meter_id, meter_read_days.c.day))
        return {(m, d) for m, d in rows}


def test_a_mixed_batch_flags_each_zone_and_length_like_separate_batches(db: Engine) -> None:
    santiago = _meter(db, "UAAEEDN00000000900", "America/Santiago")
    magallanes = _meter(db, "UAAEEDN00000000901", "America/Punta_Arenas")
    mixed = (
        _day(santiago, A15.id, "America/Santiago")
        + _day(santiago, A60.id, "America/Santiago", 60)
        + _day(magallanes, R15.id, "America/Punta_Arenas")
    )
    with db.begin() as conn:
        result = ingest_intervals(conn, mixed)
    assert (result.offered, result.inserted) == (100 + 25 + 96, 100 + 25 + 96)
    stored = _stored(db)
    dst = int(QualityFlag.DST_DAY)
    assert {q for (m, _, _), (_, q) in stored.items() if m == santiago} == {dst}
    assert {q for (m, _, _), (_, q) in stored.items() if m == magallanes} == {0}
    assert stored[(magallanes, R15.id, interval_ends(FALL_BACK, "America/Punta_Arenas")[5])][
        0
    ] == pytest.approx(5.0)
    # Every value belongs to the local day of FALL_BACK in its own zone.
    assert _read_days(db) == {(santiago, FALL_BACK), (magallanes, FALL_BACK)}


def test_quality_passed_in_is_kept_beside_the_dst_flag(db: Engine) -> None:
    meter_id = _meter(db, "UAAEEDN00000000902", "America/Santiago")
    values = [
        v._replace(quality=int(QualityFlag.CLOCK_ADJUSTED)) if n % 2 else v
        for n, v in enumerate(_day(meter_id, A15.id, "America/Santiago"))
    ]
    with db.begin() as conn:
        ingest_intervals(conn, values)
    stored = _stored(db)
    for n, value in enumerate(values):
        expected = int(QualityFlag.DST_DAY) | (int(QualityFlag.CLOCK_ADJUSTED) if n % 2 else 0)
        assert stored[(meter_id, A15.id, value.interval_end)] == (value.value, expected)


def test_an_unknown_reading_type_id_refuses_the_batch(db: Engine) -> None:
    meter_id = _meter(db, "UAAEEDN00000000903", "America/Santiago")
    values = _day(meter_id, A15.id, "America/Santiago")[:3]
    values.append(values[0]._replace(reading_type_id=9999))
    with pytest.raises(UnknownReadingType, match="9999"), db.begin() as conn:
        ingest_intervals(conn, values)
    assert _stored(db) == {}


def test_a_batch_partly_stored_falls_back_and_the_transaction_goes_on(db: Engine) -> None:
    """On PostgreSQL the direct COPY fails on the first stored key and is rolled back to its
    savepoint; the staging path then stores only the new values, and the same transaction
    keeps working (on SQLite the one path is ON CONFLICT DO NOTHING throughout)."""
    meter_id = _meter(db, "UAAEEDN00000000904", "America/Santiago")
    day = _day(meter_id, A15.id, "America/Santiago")
    with db.begin() as conn:
        first = ingest_intervals(conn, day[:60])
    with db.begin() as conn:
        # The last value of the first batch arrives altered: the stored one is kept.
        late = [day[59]._replace(value=-1.0), *day[60:]]
        again = ingest_intervals(conn, late)
        more = ingest_intervals(
            conn, [IntervalValue(meter_id, R15.id, v.interval_end, v.value) for v in day[:10]]
        )
    assert (first.inserted, again.offered, again.inserted, more.inserted) == (60, 41, 40, 10)
    stored = _stored(db)
    assert len(stored) == 110
    assert stored[(meter_id, A15.id, day[59].interval_end)][0] == day[59].value


def test_a_batch_across_utc_days_lands_in_each_days_partition(db: Engine) -> None:
    meter_id = _meter(db, "UAAEEDN00000000905", "America/Santiago")
    start = datetime(2026, 5, 12, 23, 0, tzinfo=UTC)
    values = [
        IntervalValue(meter_id, A15.id, start + timedelta(minutes=15 * n), float(n))
        for n in range(1, 9)
    ]
    with db.begin() as conn:
        assert ingest_intervals(conn, values).inserted == 8
    assert len(_stored(db)) == 8
    if db.dialect.name == "postgresql":
        with db.connect() as conn:
            counts = conn.exec_driver_sql(
                "SELECT tableoid::regclass::text, count(*) FROM interval_readings GROUP BY 1"
            ).all()
        assert sorted(counts) == [
            ("interval_readings_p20260512", 3),
            ("interval_readings_p20260513", 5),
        ]
