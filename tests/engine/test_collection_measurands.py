"""The concentrators' collected measurands (issue 7) over real TCP against the simulator.

A DC's collected measurand profile ``0.128.99.2.0.255`` gives every meter behind it the
average L1 voltage and current of each interval: the meter's own values (what a
MeterCollection of the same meter through the gateway stores), kept once when offered
again, back-filled from the first missing interval, written to the ``M_`` file; a DC
without the profile (older firmware) completes the order and says so.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "field"))  # the shared harness

from field_sim import SimFleet, sim_fleet

from smmc.domain.readings import AVERAGE_CURRENT, AVERAGE_VOLTAGE
from smmc.domain.time import local_day_bounds
from smmc.domain.work_orders import ActivityType, State, load_policies
from smmc.engine.activities import FieldContext, register_field_executors
from smmc.engine.executors import ExecutorRegistry
from smmc.engine.worker import Worker, WorkerConfig
from smmc.reports.readings_files import write_day_files
from smmc.store import tables as t
from smmc.store.secrets import SecretBox
from smmc.store.work_orders import TargetRef, WorkOrderQueue

TZ = "America/Santiago"
DAY = dt.date(2026, 4, 9)  # the local day before the harness's "now", whole in the lookback
LOOKBACK_DAYS = 2
Stored = dict[tuple[int, dt.datetime], tuple[float, int]]


class Run:
    """A queue and a worker with the field executors, on the fleet's simulated time."""

    def __init__(self, fleet: SimFleet) -> None:
        self.fleet = fleet
        self.queue = WorkOrderQueue(fleet.engine, load_policies(), clock=fleet.clock.now)
        registry = ExecutorRegistry()
        drivers = fleet.drivers(gateway_timeout=5.0, timeout=5.0)
        register_field_executors(registry, FieldContext(drivers, now=fleet.clock.now))
        self.worker = Worker(self.queue, registry, WorkerConfig(name="h5-meas", poll_interval=0.05))

    async def collect(
        self, activity: ActivityType, target: TargetRef, kinds: list[str]
    ) -> dict[str, Any]:
        """One order to its end; answers its result."""
        payload = {"collect": kinds, "lookback_days": LOOKBACK_DAYS}
        submitted = self.queue.submit(activity, [target], special=True, payload=payload)
        assert submitted.accepted == 1, submitted.rejected
        w = t.work_orders.c
        for _ in range(400):
            await self.worker.run_until_idle()
            with self.fleet.engine.connect() as conn:
                row = (
                    conn.execute(
                        sa.select(w.state, w.result, w.error_text).where(
                            w.batch_id == submitted.batch_id
                        )
                    )
                    .mappings()
                    .one()
                )
            if row["state"] not in (State.NEW.value, State.PENDING.value, State.RUNNING.value):
                break
            await asyncio.sleep(0.05)
        assert row["state"] == State.COMPLETED.value, row
        result: dict[str, Any] = json.loads(row["result"])
        return result


def _stored(db: Engine, meter_id: int) -> Stored:
    """A meter's stored measurands by (reading type, interval end in UTC)."""
    r = t.interval_readings.c
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(r.reading_type_id, r.interval_end, r.value, r.quality).where(
                r.meter_id == meter_id,
                r.reading_type_id.in_([AVERAGE_VOLTAGE.id, AVERAGE_CURRENT.id]),
            )
        )
        return {(kind, _utc(end)): (value, quality) for kind, end, value, quality in rows.all()}


def _utc(moment: dt.datetime) -> dt.datetime:
    """SQLite gives naive UTC back, PostgreSQL aware."""
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _forget(db: Engine, meter_id: int, after: dt.datetime | None = None) -> None:
    """Delete a meter's stored measurands (those ending after ``after``, if given)."""
    r = t.interval_readings.c
    where = [
        r.meter_id == meter_id,
        r.reading_type_id.in_([AVERAGE_VOLTAGE.id, AVERAGE_CURRENT.id]),
    ]
    if after is not None:
        where.append(r.interval_end > after)
    with db.begin() as conn:
        conn.execute(t.interval_readings.delete().where(*where))


def _index(fleet: SimFleet, serial: str) -> int:
    return next(i for i in range(len(fleet.plan)) if fleet.plan.meter(i).serial == serial)


async def test_dc_measurands_are_the_meters_own_backfilled_and_kept_once(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    async with sim_fleet(db, secret_box, tmp_path, per_concentrator=3, point_to_point=0) as fleet:
        run = Run(fleet)
        dc = fleet.dc()
        serials = fleet.gateway_serials(dc)
        ids = {serial: fleet.meter_id(serial) for serial in serials}
        through_dc = TargetRef(concentrator=dc.spec.name)
        result = await run.collect(ActivityType.COLLECTION, through_dc, ["measurands"])
        stored = {serial: _stored(db, ids[serial]) for serial in serials}
        assert result["measurands"] == result["intervals_new"] == result["intervals_offered"]
        assert result["measurands"] == sum(map(len, stored.values()))
        assert result["rejected"] == 0
        assert list(result["ranges"]) == ["measurands"]

        # The meter model's values, with the quality of the load-profile row's status.
        day_start, day_end = local_day_bounds(DAY, TZ)
        now = fleet.clock.now()
        for serial in serials:
            model = fleet.runner.meters.model(_index(fleet, serial))
            rows = model.measurands(now - dt.timedelta(days=LOOKBACK_DAYS + 1), now)
            by_end = {row.clock.astimezone(dt.UTC): row for row in rows}
            mine = stored[serial]
            for (kind, end), (value, _) in mine.items():
                row = by_end[end]
                if kind == AVERAGE_VOLTAGE.id:
                    assert value == pytest.approx(round(row.voltages[0] * 10) / 10)
                else:
                    assert value == pytest.approx(round(row.currents[0] * 100) / 100)
            in_day = [end for kind, end in mine if kind == AVERAGE_VOLTAGE.id]
            assert sum(day_start < end <= day_end for end in in_day) == 96, serial
            assert {end for _, end in mine} == set(in_day)

        # The same meter read directly (through the DC's gateway) stores the same numbers.
        _forget(db, ids[serials[0]])
        direct = TargetRef(meter=serials[0])
        result = await run.collect(ActivityType.METER_COLLECTION, direct, ["measurands"])
        assert result["measurands"] == len(stored[serials[0]])
        assert _stored(db, ids[serials[0]]) == stored[serials[0]]

        # A hole in one meter's measurands: the next run reads from it, for every meter of
        # the DC; what was stored already is offered again and kept once.
        cut = now - dt.timedelta(hours=6)
        _forget(db, ids[serials[1]], after=cut)
        result = await run.collect(ActivityType.COLLECTION, through_dc, ["measurands"])
        holed = sum(end > cut for _, end in stored[serials[1]])
        assert holed > 0
        assert result["intervals_new"] == holed
        assert result["intervals_offered"] > holed
        assert {serial: _stored(db, ids[serial]) for serial in serials} == stored

        # Nothing missing: nothing read, nothing new.
        result = await run.collect(ActivityType.COLLECTION, through_dc, ["measurands"])
        assert result["ranges"] == {}
        assert result["measurands"] == result["intervals_new"] == 0

        # The M_ file of the local day carries the DC meters' measurands as stored.
        path, _ = write_day_files(db, DAY, tmp_path / "files")["M"]
        with path.open(newline="", encoding="utf-8") as handle:
            written = list(csv.DictReader(handle, delimiter=";"))
        for serial in serials:
            for reading in (AVERAGE_VOLTAGE, AVERAGE_CURRENT):
                values = [
                    float(row["value"])
                    for row in written
                    if row["serialnumber"] == serial and row["cimcode"] == reading.code
                ]
                expected = [
                    value
                    for (kind, end), (value, _) in sorted(stored[serial].items())
                    if kind == reading.id and day_start < end <= day_end
                ]
                assert len(values) == 96
                assert values == pytest.approx(expected)


async def test_dc_without_the_measurand_profile_completes_saying_so(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    async with sim_fleet(
        db, secret_box, tmp_path, per_concentrator=2, point_to_point=0, collects_measurands=False
    ) as fleet:
        run = Run(fleet)
        dc = fleet.dc()
        result = await run.collect(
            ActivityType.COLLECTION,
            TargetRef(concentrator=dc.spec.name),
            ["load_profile", "measurands"],
        )
        assert result["measurands"] == "not offered by the concentrator"
        assert result["intervals_new"] > 0  # the load profile is read all the same
        for serial in fleet.gateway_serials(dc):
            assert _stored(db, fleet.meter_id(serial)) == {}
