"""The pieces of the scheduled collection: where a read starts, the payload, row decoding,
the status byte and the scheduler's collection entries."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from wo_fixtures import Clock, add_fleet

from smmc.dlms.apdu.selective_access import CLOCK_TIME, CaptureObjectDefinition
from smmc.dlms.axdr import Data
from smmc.dlms.cosem_time import CosemDateTime
from smmc.dlms.obis import Obis
from smmc.domain.readings import (
    CollectionKind,
    Energy,
    QualityFlag,
    closure_days,
    daily_closure_type,
    interval_type,
    profile_status_quality,
)
from smmc.domain.time import local_day_bounds
from smmc.domain.work_orders import ActivityType, InvalidWorkOrder
from smmc.engine.activities.collection import (
    CollectedMeter,
    _Batch,
    _capture_objects,
    _dc_daily,
    _dc_load_profile,
    _request,
    collected_meters,
)
from smmc.engine.scheduler import Scheduler, ScheduleScope, add_collection_schedules
from smmc.field.errors import FieldFailure
from smmc.store import tables as t
from smmc.store.readings import (
    IntervalValue,
    RegisterRead,
    assign_energy_profiles,
    closure_read_starts,
    ingest_intervals,
    ingest_register_reads,
    interval_read_starts,
    new_register_reads,
)
from smmc.store.work_orders import WorkOrderQueue

TZ = "America/Santiago"
A_PLUS = interval_type(Energy.ACTIVE_FORWARD)
Q = dt.timedelta(minutes=15)


def _meters(db: Engine, count: int) -> list[int]:
    add_fleet(db, {"DC-H7A": count})
    with db.connect() as conn:
        return list(conn.execute(sa.select(t.meters.c.id).order_by(t.meters.c.id)).scalars())


def test_status_byte_clock_adjusted() -> None:
    assert profile_status_quality(0x20) is QualityFlag.CLOCK_ADJUSTED
    assert profile_status_quality(0x20 | 0x80 | 0x08) is QualityFlag.CLOCK_ADJUSTED
    assert profile_status_quality(0x80 | 0x08 | 0x02) is QualityFlag.ACTUAL
    with pytest.raises(ValueError, match=r"0\.\.255"):
        profile_status_quality(256)


def test_closure_days_across_both_dst_changes() -> None:
    since = local_day_bounds(dt.date(2026, 4, 3), TZ)[0]
    until = local_day_bounds(dt.date(2026, 4, 7), TZ)[0]
    assert closure_days(TZ, since, until) == [dt.date(2026, 4, d) for d in (3, 4, 5, 6)]
    since = local_day_bounds(dt.date(2026, 9, 5), TZ)[0] + dt.timedelta(hours=1)
    until = local_day_bounds(dt.date(2026, 9, 7), TZ)[0]
    assert closure_days(TZ, since, until) == [dt.date(2026, 9, 5), dt.date(2026, 9, 6)]


def test_interval_read_starts(db: Engine) -> None:
    empty, complete, behind, holed = _meters(db, 4)
    since = dt.datetime(2026, 4, 4, 3, 0, tzinfo=dt.UTC)
    until = since + dt.timedelta(hours=24)
    ends = [since + Q * n for n in range(1, 97)]
    values = [IntervalValue(complete, A_PLUS.id, end, 1.0) for end in ends]
    values += [IntervalValue(behind, A_PLUS.id, end, 1.0) for end in ends[:50]]
    values += [IntervalValue(holed, A_PLUS.id, end, 1.0) for end in ends if end != ends[10]]
    with db.begin() as conn:
        ingest_intervals(conn, values)
    with db.connect() as conn:
        starts = interval_read_starts(conn, A_PLUS, [empty, complete, behind, holed], since, until)
        assert starts == {empty: ends[0], behind: ends[50], holed: ends[10]}
        with pytest.raises(ValueError, match="register"):
            interval_read_starts(
                conn, daily_closure_type(Energy.ACTIVE_FORWARD), [empty], since, until
            )


def test_closure_read_starts_and_new_sets(db: Engine) -> None:
    stored, holed, empty = _meters(db, 3)
    midnight = {d: local_day_bounds(dt.date(2026, 4, d), TZ)[0] for d in range(3, 9)}
    since, until = midnight[3], midnight[7] + dt.timedelta(hours=6)
    tiers = (1, 2, 3, 4, 5, 6)
    reads = [
        RegisterRead(stored, Energy.ACTIVE_FORWARD, midnight[d], tiers, 21) for d in (4, 5, 6, 7)
    ]
    reads += [RegisterRead(holed, Energy.ACTIVE_FORWARD, midnight[d], tiers, 21) for d in (4, 6, 7)]
    with db.begin() as conn:
        ingest_register_reads(conn, reads)
    with db.connect() as conn:
        starts = closure_read_starts(
            conn, Energy.ACTIVE_FORWARD, [stored, holed, empty], since, until
        )
        assert starts == {holed: midnight[5], empty: midnight[4]}
        offered = [
            RegisterRead(holed, Energy.ACTIVE_FORWARD, midnight[d], tiers, 22) for d in (4, 5)
        ]
        assert new_register_reads(conn, offered) == [offered[1]]
        assert new_register_reads(conn, []) == []


def test_payload() -> None:
    assert _request({}).kinds == frozenset(CollectionKind)
    request = _request({"collect": ["daily_closure"], "lookback_days": 5, "fire_time": "x"})
    assert request.kinds == {CollectionKind.DAILY_CLOSURE}
    assert request.lookback == dt.timedelta(days=5)
    for bad, reason in (
        ({"collect": ["hourly"]}, "unknown kind"),
        ({"collect": "load_profile"}, "non-empty list"),
        ({"collect": []}, "non-empty list"),
        ({"lookback_days": 0}, "lookback_days"),
        ({"lookback_days": True}, "lookback_days"),
        ({"lookback_days": 61}, "lookback_days"),
    ):
        with pytest.raises(FieldFailure, match=reason):
            _request(bad)


def _stamp(moment: dt.datetime) -> Data:
    return Data.octet_string(CosemDateTime.from_datetime(moment).to_bytes())


def test_collected_rows_decoded_rejected_and_unknown() -> None:
    meter = CollectedMeter(
        7,
        "M-7",
        (A_PLUS, interval_type(Energy.ACTIVE_REVERSE)),
        frozenset({Energy.ACTIVE_FORWARD, Energy.ACTIVE_REVERSE}),
    )
    end = dt.datetime(2026, 4, 4, 23, 15, tzinfo=dt.timezone(dt.timedelta(hours=-3)))
    serial = Data.octet_string(b"M-7")
    numbers = [Data.double_long_unsigned(n) for n in (40, 3, 9, 1)]
    batch = _Batch()
    _dc_load_profile(
        [
            (_stamp(end), serial, Data.unsigned(0x20), *numbers),
            (_stamp(end), Data.octet_string(b"OTHER"), Data.unsigned(0), *numbers),
            (_stamp(end), serial, Data.unsigned(0), *numbers[:3]),
            (Data.octet_string(b"not a date"), serial, Data.unsigned(0), *numbers),
        ],
        {"M-7": meter},
        TZ,
        batch,
    )
    flag = int(QualityFlag.CLOCK_ADJUSTED)
    assert batch.intervals == [
        IntervalValue(7, A_PLUS.id, end, 40.0, flag),
        IntervalValue(7, interval_type(Energy.ACTIVE_REVERSE).id, end, 3.0, flag),
    ]
    assert batch.unknown_serials == {"OTHER"}
    assert batch.rejected_count == 2
    assert batch.rejected[0] == "collected load profile row 3: 6 columns, expected 7"
    assert batch.rejected[1].startswith("collected load profile row 4: clock column")


def test_collected_rows_come_out_per_meter_and_channel_in_utc() -> None:
    """Rows as a DC sends them (by time, the meters interleaved) come out in the store's key
    order; a bad cell in a column no meter stores still rejects the row."""
    minus3 = dt.timezone(dt.timedelta(hours=-3))
    first = dt.datetime(2026, 4, 4, 0, 15, tzinfo=minus3)
    meters = {
        "B": CollectedMeter(9, "B", (interval_type(Energy.REACTIVE_REVERSE), A_PLUS), frozenset()),
        "A": CollectedMeter(4, "A", (A_PLUS,), frozenset()),
    }
    rows = [
        (
            _stamp(first + k * Q),
            Data.octet_string(serial.encode()),
            Data.unsigned(0),
            *(Data.double_long_unsigned(10 * k + n) for n in range(4)),
        )
        for k in range(3)
        for serial in ("B", "A")
    ]
    rows.append((*rows[0][:6], Data.visible_string("x")))
    batch = _Batch()
    _dc_load_profile(rows, meters, TZ, batch)
    reverse = interval_type(Energy.REACTIVE_REVERSE).id
    ends = [(first + k * Q).astimezone(dt.UTC) for k in range(3)]
    assert batch.intervals == [
        *(IntervalValue(4, A_PLUS.id, ends[k], float(10 * k), 0) for k in range(3)),
        *(IntervalValue(9, A_PLUS.id, ends[k], float(10 * k), 0) for k in range(3)),
        *(IntervalValue(9, reverse, ends[k], float(10 * k + 3), 0) for k in range(3)),
    ]
    assert all(type(value) is IntervalValue for value in batch.intervals)
    assert all(value.interval_end.tzinfo is dt.UTC for value in batch.intervals)
    assert batch.rejected == [
        "collected load profile row 7: energy is not an integer (VISIBLE_STRING)"
    ]


_SERIAL = CaptureObjectDefinition(1, Obis(0, 0, 96, 1, 0, 255), 2)


def _register(c: int, tier: int) -> CaptureObjectDefinition:
    return CaptureObjectDefinition(3, Obis(1, 0, c, 8, tier, 255), 2)


def _closure_meter() -> CollectedMeter:
    return CollectedMeter(7, "M-7", (), frozenset({Energy.ACTIVE_FORWARD, Energy.ACTIVE_REVERSE}))


END = dt.datetime(2026, 4, 4, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=-3)))


def test_collected_daily_closure_decoded_by_its_capture_objects() -> None:
    """Every energy with its total and T1..T6 is a register set, wherever its columns are;
    only the energies the meter's profile asks for are kept."""
    columns = [
        _SERIAL,
        *(_register(c, tier) for c in (4, 3, 2, 1) for tier in (6, 5, 4, 3, 2, 1, 0)),
        CLOCK_TIME,
    ]
    values = {(c, tier): 100 * c + tier for c in (1, 2, 3, 4) for tier in range(7)}
    row = (
        Data.octet_string(b"M-7"),
        *(
            Data.double_long_unsigned(values[(c, tier)])
            for c in (4, 3, 2, 1)
            for tier in (6, 5, 4, 3, 2, 1, 0)
        ),
        _stamp(END),
    )
    wire = Data.array(c.to_data() for c in columns)
    batch = _Batch()
    _dc_daily(
        [row], _capture_objects(wire, "capture objects"), {"M-7": _closure_meter()}, TZ, batch
    )
    assert batch.registers == [
        RegisterRead(7, energy, END, tuple(values[(c, t)] for t in range(1, 7)), values[(c, 0)])
        for energy, c in ((Energy.ACTIVE_FORWARD, 1), (Energy.ACTIVE_REVERSE, 2))
    ]
    assert batch.rejected_count == 0


def test_collected_daily_closure_old_layout_keeps_a_plus_and_names_the_rest() -> None:
    """A DC with the older layout (A+ T1..T6 and four totals): A+ is stored, the asked
    energy without tiers is rejected once per read, naming it."""
    columns = (
        CLOCK_TIME,
        _SERIAL,
        *(_register(1, tier) for tier in range(1, 7)),
        *(_register(c, 0) for c in (1, 2, 3, 4)),
    )
    numbers = (1, 2, 3, 4, 5, 6, 25, 8, 9, 10)
    row = (_stamp(END), Data.octet_string(b"M-7"), *map(Data.double_long_unsigned, numbers))
    bad = (*row[:4], Data.octet_string(b"3"), *row[5:])
    batch = _Batch()
    _dc_daily([row, bad, row], columns, {"M-7": _closure_meter()}, TZ, batch)
    expected = RegisterRead(7, Energy.ACTIVE_FORWARD, END, (1, 2, 3, 4, 5, 6), 25)
    assert batch.registers == [expected, expected]
    assert batch.rejected == [
        "collected daily closure: no total and T1..T6 columns for active_reverse",
        "collected daily closure row 2: active_forward T3 is not an integer (OCTET_STRING)",
    ]


def test_collected_daily_closure_without_clock_or_bad_capture_objects() -> None:
    batch = _Batch()
    row = (Data.octet_string(b"M-7"), Data.double_long_unsigned(1))
    _dc_daily([row], (_SERIAL, _register(1, 0)), {"M-7": _closure_meter()}, TZ, batch)
    assert batch.registers == []
    assert batch.rejected == [
        "collected daily closure row 1: the profile has no clock or serial column"
    ]
    with pytest.raises(FieldFailure, match="capture objects"):
        _capture_objects(Data.array([Data.unsigned(3)]), "capture objects")


def test_collected_meters_follow_energy_profiles(db: Engine) -> None:
    default, export, off = _meters(db, 3)
    with db.begin() as conn:
        conn.execute(
            t.meters.update().where(t.meters.c.id == export).values(meter_type="polyphase")
        )
        assign_energy_profiles(
            conn,
            export,
            daily_closure="DailyClosure Energy Profile",
            load_profile="LP Active + Active Export",
        )
        assign_energy_profiles(
            conn, off, daily_closure=None, load_profile="LP Active", is_upload=False
        )
    with db.connect() as conn:
        found = {m.id: m for m in collected_meters(conn)}
    assert found[default].load_types == (A_PLUS,)
    assert found[default].closure_energies == {Energy.ACTIVE_FORWARD, Energy.ACTIVE_REVERSE}
    assert found[export].load_types == (A_PLUS, interval_type(Energy.ACTIVE_REVERSE))
    assert found[export].closure_energies == frozenset(Energy)
    assert found[off].load_types == ()
    assert found[off].closure_energies == frozenset()


def test_collection_schedules_target_concentrators_and_point_to_point_meters(
    db: Engine, queue: WorkOrderQueue, clock: Clock
) -> None:
    add_fleet(db, {"DC-A": 2, "DC-B": 1})
    with db.begin() as conn:
        conn.execute(
            t.meters.insert(),
            [{"serial_number": "P2P-1", "host": "127.0.0.9", "port": 4059}],
        )
    scheduler = Scheduler(queue)
    ids = add_collection_schedules(scheduler, lookback_days=5)
    assert len(ids) == 5
    entries = {
        (s.name, s.activity, s.scope, s.cron, tuple(s.payload["collect"]))
        for s in scheduler.schedules()
    }
    dcs, p2p = ScheduleScope.ALL_CONCENTRATORS, ScheduleScope.POINT_TO_POINT_METERS
    collection, meter_collection = ActivityType.COLLECTION, ActivityType.METER_COLLECTION
    assert entries == {
        (
            "collection: daily closure (concentrators)",
            collection,
            dcs,
            "15 1 * * *",
            ("daily_closure",),
        ),
        (
            "collection: load profile (concentrators)",
            collection,
            dcs,
            "45 1 * * *",
            ("load_profile",),
        ),
        ("collection: measurands (concentrators)", collection, dcs, "45 1 * * *", ("measurands",)),
        (
            "collection: daily closure (meters)",
            meter_collection,
            p2p,
            "15 1 * * *",
            ("daily_closure",),
        ),
        (
            "collection: load profile (meters)",
            meter_collection,
            p2p,
            "45 1 * * *",
            (
                "load_profile",
                "measurands",
            ),
        ),
    }
    clock.advance(days=1)
    assert len(scheduler.run_due()) == 5
    w = t.work_orders.c
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(w.activity, w.concentrator_id, w.meter_id, w.payload)
        ).mappings()
        orders = [dict(row) for row in rows]
    assert sorted(o["activity"] for o in orders) == sorted(
        ["Collection"] * 6 + ["MeterCollection"] * 2
    )
    assert all('"lookback_days": 5' in o["payload"] for o in orders)
    with pytest.raises(InvalidWorkOrder, match="scope"):
        scheduler.add(
            "wrong", ActivityType.COLLECTION, "0 1 * * *", ScheduleScope.POINT_TO_POINT_METERS
        )


def test_collection_schedules_without_the_concentrators_measurands(queue: WorkOrderQueue) -> None:
    scheduler = Scheduler(queue)
    ids = add_collection_schedules(scheduler, measurands_cron=None, load_profile_cron="0 0 * * *")
    assert len(ids) == 4
    collected = {s.name: s.payload["collect"] for s in scheduler.schedules()}
    assert "collection: measurands (concentrators)" not in collected
    assert collected["collection: load profile (concentrators)"] == ["load_profile"]
    assert collected["collection: load profile (meters)"] == ["load_profile", "measurands"]
