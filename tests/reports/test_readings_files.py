"""S_, M_ and DC_ daily files: the seed's columns exactly, one local day per file (92/96/100
rows per meter and reading type), values equal to the simulator's MeterModel."""

from __future__ import annotations

import csv
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from smmc.domain.readings import (
    AVERAGE_CURRENT,
    AVERAGE_VOLTAGE,
    Energy,
    QualityFlag,
    interval_type,
)
from smmc.domain.time import interval_ends, local_day_bounds, to_local
from smmc.reports.readings_files import DC_COLUMNS, S_COLUMNS, write_day_files
from smmc.sim.meter_model import MeterModel
from smmc.store.readings import (
    IntervalValue,
    RegisterRead,
    assign_energy_profiles,
    find_gaps,
    ingest_intervals,
    ingest_register_reads,
)
from smmc.store.tables import (
    concentrators,
    interval_readings,
    meter_links,
    meters,
    service_points,
)

INSTALLED = datetime(2026, 1, 1, tzinfo=UTC)
FALL_BACK = date(2026, 4, 4)
SPRING_FORWARD = date(2026, 9, 6)
ORDINARY = date(2026, 5, 12)
CHANNELS = {
    Energy.ACTIVE_FORWARD: "active_import_wh",
    Energy.ACTIVE_REVERSE: "active_export_wh",
    Energy.REACTIVE_FORWARD: "reactive_import_varh",
    Energy.REACTIVE_REVERSE: "reactive_export_varh",
}
METERS = {
    # serial: (zone, polyphase, pv kWp)
    "UAAEEDN17000000001": ("America/Santiago", False, 0.0),
    "UCAUEDN17000000002": ("America/Santiago", True, 3.0),
    "UAAEEDN17000000003": ("America/Punta_Arenas", False, 0.0),
}


def _insert(conn: sa.Connection, table: sa.Table, **values: object) -> int:
    return int(conn.execute(table.insert().values(**values).returning(table.c.id)).scalar_one())


class Fleet:
    def __init__(self, db: Engine) -> None:
        self.db = db
        self.models: dict[str, MeterModel] = {}
        self.ids: dict[str, int] = {}
        with db.begin() as conn:
            dcs = {
                tz: _insert(conn, concentrators, name=f"TD-{n}", time_zone=tz)
                for n, tz in enumerate(sorted({z for z, _, _ in METERS.values()}))
            }
            for n, (serial, (tz, poly, pv)) in enumerate(METERS.items()):
                meter_id = _insert(
                    conn, meters, serial_number=serial, concentrator_id=dcs[tz], commissioned=True
                )
                pod = _insert(conn, service_points, name=f"{742767 + n}")
                _insert(
                    conn, meter_links, meter_id=meter_id, service_point_id=pod, valid_from=INSTALLED
                )
                self.ids[serial] = meter_id
                self.models[serial] = MeterModel(
                    serial,
                    n + 3,
                    installed_at=INSTALLED,
                    time_zone=tz,
                    polyphase=poly,
                    pv_kwp=pv,
                )

    def collect(self, day: date) -> None:
        """Store the day's load profile (4 channels), measurands and daily closure."""
        values: list[IntervalValue] = []
        reads: list[RegisterRead] = []
        for serial, model in self.models.items():
            meter_id = self.ids[serial]
            for row in model.load_profile_day(day):
                for energy, attr in CHANNELS.items():
                    values.append(
                        IntervalValue(
                            meter_id,
                            interval_type(energy).id,
                            row.captured_utc,
                            float(getattr(row, attr)),
                        )
                    )
            for m in model.measurands(*_day_window(day, model.time_zone)):
                values.append(
                    IntervalValue(meter_id, AVERAGE_CURRENT.id, m.captured_utc, m.currents[0])
                )
                values.append(
                    IntervalValue(meter_id, AVERAGE_VOLTAGE.id, m.captured_utc, m.voltages[0])
                )
            billing = model.billing_row(day)
            assert billing is not None
            reads.append(
                RegisterRead(
                    meter_id,
                    Energy.ACTIVE_FORWARD,
                    billing.captured_utc,
                    billing.registers.active_import.tiers,
                    billing.registers.active_import.total,
                )
            )
            reads.append(
                RegisterRead(
                    meter_id,
                    Energy.ACTIVE_REVERSE,
                    billing.captured_utc,
                    billing.registers.active_export.tiers,
                    billing.registers.active_export.total,
                )
            )
        with self.db.begin() as conn:
            ingest_intervals(conn, values)
            ingest_register_reads(conn, reads)


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter=";")
        header = next(reader)
        return header, [dict(zip(header, row, strict=True)) for row in reader]


def _stamp(utc: datetime, tz: str) -> str:
    return to_local(utc, tz).strftime("%Y-%m-%d %H:%M:%S.000")


@pytest.mark.parametrize(
    ("day", "santiago_rows"), [(FALL_BACK, 100), (SPRING_FORWARD, 92), (ORDINARY, 96)]
)
def test_load_profile_file_has_the_local_day_and_the_simulators_values(
    db: Engine, tmp_path: Path, day: date, santiago_rows: int
) -> None:
    fleet = Fleet(db)
    fleet.collect(day)
    written = write_day_files(db, day, tmp_path)
    path, count = written["S"]
    assert path.name == f"S_{day.isoformat()}.csv"
    header, rows = _read(path)
    assert tuple(header) == S_COLUMNS
    assert count == len(rows)
    per_series = Counter((r["serialnumber"], r["cimcode"]) for r in rows)
    for serial, (tz, _, _) in METERS.items():
        expected = santiago_rows if tz == "America/Santiago" else 96
        for energy in CHANNELS:
            assert per_series[(serial, interval_type(energy).code)] == expected
    by_key = {(r["serialnumber"], r["cimcode"], r["sampledate"]): r for r in rows}
    assert len(by_key) == len(rows) - sum(
        # the repeated April hour shows its four local times twice
        4
        for tz, _, _ in METERS.values()
        for _ in CHANNELS
        if day == FALL_BACK and tz == "America/Santiago"
    )
    for serial, model in fleet.models.items():
        series = [
            r
            for r in rows
            if r["serialnumber"] == serial
            and r["cimcode"] == interval_type(Energy.ACTIVE_FORWARD).code
        ]
        lp = model.load_profile_day(day)
        assert [r["sampledate"] for r in series] == [
            _stamp(x.captured_utc, model.time_zone) for x in lp
        ]
        assert [int(r["value"]) for r in series] == [x.active_import_wh for x in lp]
        dst_day = day != ORDINARY and model.time_zone == "America/Santiago"
        assert {int(r["state"]) for r in series} == {int(QualityFlag.DST_DAY) if dst_day else 0}
        assert {r["pod"] for r in series} == {str(742767 + list(METERS).index(serial))}
        export = [
            r
            for r in rows
            if r["serialnumber"] == serial
            and r["cimcode"] == interval_type(Energy.REACTIVE_REVERSE).code
        ]
        assert [int(r["value"]) for r in export] == [x.reactive_export_varh for x in lp]


def test_measurands_file(db: Engine, tmp_path: Path) -> None:
    fleet = Fleet(db)
    fleet.collect(ORDINARY)
    header, rows = _read(write_day_files(db, ORDINARY, tmp_path)["M"][0])
    assert tuple(header) == S_COLUMNS
    serial = "UAAEEDN17000000001"
    model = fleet.models[serial]
    current = [
        r for r in rows if r["serialnumber"] == serial and r["cimcode"] == AVERAGE_CURRENT.code
    ]
    expected = model.measurands(*_day_window(ORDINARY, model.time_zone))
    assert len(current) == 96
    assert [float(r["value"]) for r in current] == [m.currents[0] for m in expected]
    voltage = [
        r for r in rows if r["serialnumber"] == serial and r["cimcode"] == AVERAGE_VOLTAGE.code
    ]
    assert [float(r["value"]) for r in voltage] == [m.voltages[0] for m in expected]


def _day_window(day: date, tz: str) -> tuple[datetime, datetime]:
    ends = interval_ends(day, tz)
    return ends[0] - (ends[1] - ends[0]), ends[-1]


def test_daily_closure_file(db: Engine, tmp_path: Path) -> None:
    fleet = Fleet(db)
    fleet.collect(ORDINARY)
    path, count = write_day_files(db, ORDINARY, tmp_path)["DC"]
    assert path.name == f"DC_{ORDINARY.isoformat()}.csv"
    header, rows = _read(path)
    assert tuple(header) == DC_COLUMNS
    assert count == len(rows) == 2 * len(METERS)
    for serial, model in fleet.models.items():
        billing = model.billing_row(ORDINARY)
        assert billing is not None
        mine = {r["energytype"]: r for r in rows if r["serialnumber"] == serial}
        imported, exported = mine["8"], mine["9"]
        assert imported["energytype_description"] == "8 Active Energy Import Previous"
        assert exported["energytype_description"] == "9 Active Energy Export Previous"
        tiers = billing.registers.active_import.tiers
        assert [int(imported[f"t{n}"]) for n in range(1, 7)] == list(tiers)
        assert int(imported["tot"]) == billing.registers.active_import.total == sum(tiers)
        assert int(exported["tot"]) == billing.registers.active_export.total
        assert imported["time"] == f"{ORDINARY.replace(day=13).isoformat()} 00:00:00.000"
    # The next local day's file does not repeat this closure.
    _, next_rows = _read(write_day_files(db, date(2026, 5, 13), tmp_path)["DC"][0])
    assert next_rows == []


def test_gap_shows_as_missing_rows_and_a_profile_without_data_fills_its_day(
    db: Engine, tmp_path: Path
) -> None:
    fleet = Fleet(db)
    serial = "UAAEEDN17000000001"
    model = fleet.models[serial]
    lp = model.load_profile_day(SPRING_FORWARD)
    kind = interval_type(Energy.ACTIVE_FORWARD)
    with db.begin() as conn:
        ingest_intervals(
            conn,
            [
                IntervalValue(fleet.ids[serial], kind.id, r.captured_utc, float(r.active_import_wh))
                for r in lp
                if r is not lp[10]
            ],
        )
        assign_energy_profiles(
            conn,
            fleet.ids["UCAUEDN17000000002"],
            daily_closure=None,
            load_profile="LP Active + Active Export",
        )
    _, rows = _read(write_day_files(db, SPRING_FORWARD, tmp_path)["S"][0])
    mine = [r for r in rows if r["serialnumber"] == serial]
    assert len(mine) == 92
    assert mine[10]["value"] == ""
    assert int(mine[10]["state"]) & QualityFlag.MISSING
    assert mine[10]["sampledate"] == _stamp(lp[10].captured_utc, model.time_zone)
    profiled = Counter(r["cimcode"] for r in rows if r["serialnumber"] == "UCAUEDN17000000002")
    assert profiled == {
        interval_type(Energy.ACTIVE_FORWARD).code: 92,
        interval_type(Energy.ACTIVE_REVERSE).code: 92,
    }
    assert {r["value"] for r in rows if r["serialnumber"] == "UCAUEDN17000000002"} == {""}
    assert "UAAEEDN17000000003" not in {r["serialnumber"] for r in rows}


@pytest.mark.parametrize(
    "days", [(date(2026, 4, 3), FALL_BACK, date(2026, 4, 5)), (SPRING_FORWARD,)]
)
def test_overlapping_runs_with_a_gap_store_every_interval_once(
    db: Engine, tmp_path: Path, days: tuple[date, ...]
) -> None:
    """Runs every 6 hours re-read the last 8 hours (duplicates); one run's link is down (a
    gap); the next day's gap report drives a back-fill. Every interval ends up stored once,
    and each local day's file equals the simulator."""
    fleet = Fleet(db)
    serial = "UAAEEDN17000000001"
    model, meter_id = fleet.models[serial], fleet.ids[serial]
    kind = interval_type(Energy.ACTIVE_FORWARD)
    first = local_day_bounds(days[0], model.time_zone)[0]
    last = local_day_bounds(days[-1], model.time_zone)[1]
    run, step, overlap = first + timedelta(hours=6), timedelta(hours=6), timedelta(hours=8)
    offered = 0
    distinct: set[datetime] = set()
    number = 0
    while run <= last:
        rows = model.load_profile(max(first, run - overlap), run)
        number += 1
        if number != 3:  # the third run's communication fails: its 6 hours are lost
            distinct.update(r.captured_utc for r in rows)
            with db.begin() as conn:
                offered += ingest_intervals(
                    conn,
                    [
                        IntervalValue(meter_id, kind.id, r.captured_utc, float(r.active_import_wh))
                        for r in rows
                    ],
                ).offered
        run += step
    with db.connect() as conn:
        gaps = {day: find_gaps(conn, day, kind, [meter_id]).get(meter_id, []) for day in days}
    lost = [end for ends in gaps.values() for end in ends]
    assert lost  # the failed run left a hole the overlap could not cover
    with db.begin() as conn:
        for day, ends in gaps.items():
            if ends:
                rows = [r for r in model.load_profile_day(day) if r.captured_utc in set(ends)]
                result = ingest_intervals(
                    conn,
                    [
                        IntervalValue(meter_id, kind.id, r.captured_utc, float(r.active_import_wh))
                        for r in rows
                    ],
                )
                assert result.inserted == len(ends)
        assert all(not find_gaps(conn, day, kind, [meter_id]) for day in days)
        stored = conn.execute(
            sa.select(sa.func.count())
            .select_from(interval_readings)
            .where(interval_readings.c.meter_id == meter_id)
        ).scalar_one()
    expected = sum(len(interval_ends(day, model.time_zone)) for day in days)
    assert stored == expected
    assert offered > len(distinct)  # the overlaps did offer duplicates
    for day in days:
        _, written = _read(write_day_files(db, day, tmp_path)["S"][0])
        mine = [r for r in written if r["serialnumber"] == serial]
        lp = model.load_profile_day(day)
        assert [int(r["value"]) for r in mine] == [x.active_import_wh for x in lp]
        assert [r["sampledate"] for r in mine] == [
            _stamp(x.captured_utc, model.time_zone) for x in lp
        ]
