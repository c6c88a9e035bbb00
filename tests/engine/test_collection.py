"""Scheduled collection (issue 7) against the simulator over real TCP.

A small fleet (one concentrator with three meters, two point-to-point meters) is collected
by the scheduler's collection entries, day after day, across a DST change: every interval
is stored exactly once with the simulator's values (one DC meter collects the four
load-profile channels and, as a polyphase meter, the closures of all four energies; every
meter its measurands, through the DC or from the meter), the
local-day files have 92/96/100 intervals, a meter the concentrator could not reach for a
day is back-filled on the next run, tier-sum violations are flagged and evented once, and a
clock set inside an interval flags that interval.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "field"))  # the shared harness

import field_sim
from field_sim import SimFleet, sim_fleet

from smmc.domain.readings import (
    AVERAGE_CURRENT,
    AVERAGE_VOLTAGE,
    DAILY_CLOSURE_ENERGY_PROFILE,
    LP_FOUR_QUADRANTS,
    Energy,
    QualityFlag,
    daily_closure_type,
    interval_type,
)
from smmc.domain.time import local_day_bounds, to_local
from smmc.domain.work_orders import ActivityType, State, load_policies
from smmc.engine.activities import FieldContext, register_field_executors
from smmc.engine.executors import ExecutorRegistry
from smmc.engine.scheduler import Scheduler, add_collection_schedules
from smmc.engine.worker import Worker, WorkerConfig
from smmc.reports.readings_files import write_day_files
from smmc.sim.anomalies import Anomaly, AnomalyKind
from smmc.sim.meter_model import MeterModel
from smmc.store import tables as t
from smmc.store.readings import assign_energy_profiles, find_gaps
from smmc.store.secrets import SecretBox
from smmc.store.work_orders import WorkOrderQueue

TZ = "America/Santiago"
DAY = dt.timedelta(days=1)
A_PLUS_15 = interval_type(Energy.ACTIVE_FORWARD)
A_MINUS_15 = interval_type(Energy.ACTIVE_REVERSE)
TIER_EVENT_CODE = "3.21.113.159"
REGISTERS = {
    Energy.ACTIVE_FORWARD: "active_import",
    Energy.ACTIVE_REVERSE: "active_export",
    Energy.REACTIVE_FORWARD: "reactive_import",
    Energy.REACTIVE_REVERSE: "reactive_export",
}
# The simulation starts at 03:00 / 02:00 local; the collection runs on the 4 following days.
APRIL = dt.datetime(2026, 4, 3, 6, 0, tzinfo=dt.UTC)  # DST ends: Saturday 4 April has 100
SEPTEMBER = dt.datetime(2026, 9, 3, 6, 0, tzinfo=dt.UTC)  # DST starts: Sunday 6 September, 92


class Collection:
    """The scheduler's collection entries, a queue on simulated time and a worker."""

    def __init__(self, fleet: SimFleet) -> None:
        self.fleet = fleet
        self.queue = WorkOrderQueue(fleet.engine, load_policies(), clock=fleet.clock.now)
        self.scheduler = Scheduler(self.queue)
        self.schedules = add_collection_schedules(self.scheduler)
        registry = ExecutorRegistry()
        drivers = fleet.drivers(gateway_timeout=5.0, timeout=5.0)
        register_field_executors(registry, FieldContext(drivers, now=fleet.clock.now))
        self.worker = Worker(
            self.queue, registry, WorkerConfig(name="h7a-collector", poll_interval=0.05)
        )

    async def day(self) -> list[dict[str, Any]]:
        """One simulated day later: the due schedules create their orders, the worker runs
        them; answers the orders of this round."""
        self.fleet.wall.advance(DAY)
        batches = self.scheduler.run_due()
        # Daily closure and load profile of the DCs and the P2P meters, the DCs' measurands.
        assert len(batches) == 5
        await self.worker.run_until_idle()
        w = t.work_orders.c
        with self.fleet.engine.connect() as conn:
            rows = conn.execute(sa.select(t.work_orders).where(w.batch_id.in_(batches)))
            orders = [dict(row) for row in rows.mappings()]
        assert orders
        for order in orders:
            assert order["state"] == State.COMPLETED.value, order
        return orders


def _index(fleet: SimFleet) -> dict[str, int]:
    return {fleet.plan.meter(i).serial: i for i in range(len(fleet.plan))}


def _stored_intervals(
    db: Engine, meter_id: int, type_id: int, day: dt.date
) -> dict[dt.datetime, tuple[float, int]]:
    start, end = local_day_bounds(day, TZ)
    r = t.interval_readings.c
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(r.interval_end, r.value, r.quality).where(
                r.meter_id == meter_id,
                r.reading_type_id == type_id,
                r.interval_end > start,
                r.interval_end <= end,
            )
        )
        return {end: (value, quality) for end, value, quality in rows}


def _expected_load(model: MeterModel, day: dt.date, energy: Energy) -> dict[dt.datetime, float]:
    field = {
        Energy.ACTIVE_FORWARD: "active_import_wh",
        Energy.ACTIVE_REVERSE: "active_export_wh",
        Energy.REACTIVE_FORWARD: "reactive_import_varh",
        Energy.REACTIVE_REVERSE: "reactive_export_varh",
    }[energy]
    # UTC keys: local times of the repeated hour compare equal within one zone.
    return {
        row.clock.astimezone(dt.UTC): float(getattr(row, field))
        for row in model.load_profile_day(day)
    }


def _closures(db: Engine, meter_id: int, energy: Energy) -> dict[dt.datetime, dict[str, Any]]:
    r = t.register_reads.c
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(t.register_reads).where(
                r.meter_id == meter_id, r.reading_type_id == daily_closure_type(energy).id
            )
        )
        return {row["captured_at"]: dict(row) for row in rows.mappings()}


def _meter_type(db: Engine, meter_id: int) -> str:
    with db.connect() as conn:
        found = conn.execute(
            sa.select(t.meters.c.meter_type).where(t.meters.c.id == meter_id)
        ).scalar_one()
    return str(found)


@pytest.mark.parametrize(
    ("start", "dst_day", "length"),
    [(APRIL, dt.date(2026, 4, 4), 100), (SEPTEMBER, dt.date(2026, 9, 6), 92)],
    ids=["april", "september"],
)
async def test_scheduled_collection_across_dst(
    db: Engine,
    secret_box: SecretBox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    start: dt.datetime,
    dst_day: dt.date,
    length: int,
) -> None:
    monkeypatch.setattr(field_sim, "NOW", start)
    async with sim_fleet(db, secret_box, tmp_path, per_concentrator=3, point_to_point=2) as fleet:
        index = _index(fleet)
        dc = fleet.dc()
        gateway = fleet.gateway_serials(dc)
        p2p = fleet.p2p_serials()
        serials = [*gateway, *p2p]
        ids = {serial: fleet.meter_id(serial) for serial in serials}
        models = {serial: fleet.runner.meters.model(index[serial]) for serial in serials}
        # One DC meter (polyphase: the closures of all four energies) collects the four
        # load-profile channels, one P2P meter also the export channel.
        for serial, profile in (
            (gateway[0], LP_FOUR_QUADRANTS.name),
            (p2p[0], "LP Active + Active Export"),
        ):
            with db.begin() as conn:
                assign_energy_profiles(
                    conn,
                    ids[serial],
                    daily_closure="DailyClosure Energy Profile",
                    load_profile=profile,
                )
        with db.begin() as conn:
            conn.execute(
                t.meters.update()
                .where(t.meters.c.id == ids[gateway[0]])
                .values(meter_type="polyphase")
            )
        # Tier-sum violations on one DC meter and one P2P meter for two closures.
        mismatch = Anomaly(
            AnomalyKind.TIER_TOTAL_MISMATCH, start + DAY * 1.5, start + DAY * 3.5, 4321
        )
        for serial in (gateway[1], p2p[1]):
            models[serial].anomalies = (mismatch,)
        # A MeterSync inside an interval of the third day (the clock set to the exact time).
        synced_at = start + 2 * DAY + dt.timedelta(hours=9, minutes=7, seconds=30)
        models[p2p[1]].set_clock(synced_at, synced_at)
        adjusted_end = synced_at + dt.timedelta(minutes=7, seconds=30)

        run = Collection(fleet)
        await run.day()
        # The DC cannot reach one meter during the second run: a gap in its data.
        lost = dc.node_by_serial(gateway[2])
        assert lost is not None
        lost.reachable = False
        await run.day()
        lost.reachable = True
        gap_day = to_local(start + DAY, TZ).date()  # complete for the others by now
        gaps = find_gaps_by_id(db, gap_day, list(ids.values()))
        assert gaps == {ids[gateway[2]]}
        backfill = await run.day()  # back-filled here
        await run.day()
        # The back-fill re-read what the other meters had already: offered again, kept once.
        results = [
            json.loads(order["result"])
            for order in backfill
            if order["activity"] == ActivityType.COLLECTION.value
        ]
        load = next(r for r in results if "load_profile" in r["ranges"])
        assert load["intervals_offered"] > load["intervals_new"] > 0
        assert load["rejected"] == 0
        assert load["unknown_serials"] == []

        first_day = to_local(start, TZ).date() - DAY
        days = [first_day + DAY * n for n in range(5)]
        assert dst_day in days
        for day in days:
            assert find_gaps_by_id(db, day, list(ids.values())) == set(), day

        # Every interval once, with the simulator's values; DST days flagged.
        for serial in serials:
            energies = [Energy.ACTIVE_FORWARD]
            if serial == gateway[0]:
                energies = list(LP_FOUR_QUADRANTS.energies)
            if serial == p2p[0]:
                energies.append(Energy.ACTIVE_REVERSE)
            for day in days:
                for energy in energies:
                    expected = _expected_load(models[serial], day, energy)
                    stored = _stored_intervals(db, ids[serial], interval_type(energy).id, day)
                    assert len(expected) == (length if day == dst_day else 96)
                    assert {k: v for k, (v, _) in stored.items()} == expected, (serial, day)
                    dst_flag = QualityFlag.DST_DAY if day == dst_day else 0
                    for end, (_, quality) in stored.items():
                        clock = QualityFlag.CLOCK_ADJUSTED if end == adjusted_end else 0
                        if serial != p2p[1]:
                            clock = 0
                        assert quality == dst_flag | clock, (serial, end, quality)
        assert adjusted_end in _stored_intervals(
            db, ids[p2p[1]], A_PLUS_15.id, to_local(adjusted_end, TZ).date()
        )

        # Measurands, through the DC (back-filled like the load profile) or from the meter:
        # L1 voltage and current per interval.
        for serial in serials:
            for day in days:
                rows = models[serial].measurands(*local_day_bounds(day, TZ))
                volts = _stored_intervals(db, ids[serial], AVERAGE_VOLTAGE.id, day)
                amps = _stored_intervals(db, ids[serial], AVERAGE_CURRENT.id, day)
                assert len(volts) == len(amps) == len(rows)
                for row in rows:
                    end = row.clock.astimezone(dt.UTC)
                    assert volts[end][0] == pytest.approx(round(row.voltages[0] * 10) / 10)
                    assert amps[end][0] == pytest.approx(round(row.currents[0] * 100) / 100)

        # Daily closures: the simulator's registers; violations flagged and evented once.
        violations: dict[str, set[dt.datetime]] = {}
        closing: dict[str, frozenset[Energy]] = {}
        for serial in serials:
            # Through the DC or from the meter: every energy the profile asks for.
            closing[serial] = DAILY_CLOSURE_ENERGY_PROFILE.energies(_meter_type(db, ids[serial]))
            assert closing[serial] >= {Energy.ACTIVE_FORWARD, Energy.ACTIVE_REVERSE}
            for energy in closing[serial]:
                stored_sets = _closures(db, ids[serial], energy)
                for day in [first_day - DAY, *days]:
                    billing = models[serial].billing_row(day)
                    assert billing is not None
                    registers = getattr(billing.registers, REGISTERS[energy])
                    row = stored_sets[billing.captured_utc]
                    assert [row[f"t{n}"] for n in range(1, 7)] == list(registers.tiers)
                    assert row["total"] == registers.total
                    flagged = bool(row["quality"] & QualityFlag.TIER_SUM_VIOLATION)
                    assert flagged == (sum(registers.tiers) != registers.total)
                    if flagged:
                        violations.setdefault(serial, set()).add(billing.captured_utc)
        assert closing[gateway[0]] == frozenset(Energy)
        assert set(violations) == {gateway[1], p2p[1]}
        assert all(len(found) == 2 for found in violations.values())
        e = t.events.c
        with db.connect() as conn:
            events = Counter(
                conn.execute(
                    sa.select(e.device, e.opened_at).where(e.code == TIER_EVENT_CODE)
                ).all()
            )
        assert set(events.values()) == {1}
        assert {(d, at) for d, at in events} == {
            (serial, at) for serial, found in violations.items() for at in found
        }

        # The local-day files of the DST day.
        written = write_day_files(db, dst_day, tmp_path / "h7a-files")
        with written["S"][0].open(newline="", encoding="utf-8") as handle:
            s_rows = list(csv.DictReader(handle, delimiter=";"))
        per_series = Counter((row["serialnumber"], row["cimcode"]) for row in s_rows)
        for energy in Energy:
            assert per_series[(gateway[0], interval_type(energy).code)] == length
        assert per_series[(p2p[0], A_MINUS_15.code)] == length
        assert all(per_series[(serial, A_PLUS_15.code)] == length for serial in serials)
        assert not [row for row in s_rows if int(row["state"]) & QualityFlag.MISSING]
        with written["DC"][0].open(newline="", encoding="utf-8") as handle:
            dc_rows = list(csv.DictReader(handle, delimiter=";"))
        assert Counter(row["serialnumber"] for row in dc_rows) == {
            serial: len(closing[serial]) for serial in serials
        }


def find_gaps_by_id(db: Engine, day: dt.date, meter_ids: list[int]) -> set[int]:
    """Meters with an interval of ``day`` missing for active import."""
    with db.connect() as conn:
        return set(find_gaps(conn, day, A_PLUS_15, meter_ids))
