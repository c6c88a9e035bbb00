"""The readings store on SQLite and PostgreSQL: idempotent bulk ingest, day partitions,
tier-sum flags, gaps and their back-fill, energy profiles, KPI and the unread worklist.

Values come from the simulator's MeterModel, the independent ground truth of what a meter
records."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from smmc.domain.readings import (
    Energy,
    QualityFlag,
    daily_closure_type,
    interval_type,
    reading_type,
)
from smmc.domain.time import interval_ends, local_day_bounds
from smmc.sim.anomalies import Anomaly, AnomalyKind
from smmc.sim.meter_model import MeterModel
from smmc.store.readings import (
    IntervalValue,
    RegisterRead,
    UnknownMeter,
    UnknownProfile,
    assign_energy_profiles,
    find_gaps,
    ingest_daily_closure,
    ingest_intervals,
    ingest_load_profile,
    ingest_register_reads,
    interval_partitions,
    meter_list,
    read_success,
    unread_meters,
)
from smmc.store.tables import (
    concentrators,
    interval_readings,
    meter_links,
    meters,
    register_reads,
    service_points,
)

TZ = "America/Santiago"
INSTALLED = datetime(2026, 1, 1, tzinfo=UTC)
FALL_BACK = date(2026, 4, 4)  # 100 quarter hours
SPRING_FORWARD = date(2026, 9, 6)  # 92 quarter hours
A15 = interval_type(Energy.ACTIVE_FORWARD)


def _fleet(db: Engine, serials: list[str], *, tz: str = TZ, comuna: str = "Santiago") -> list[int]:
    with db.begin() as conn:
        dc = conn.execute(
            concentrators.insert()
            .values(name=f"TD-{comuna}", time_zone=tz, comuna=comuna)
            .returning(concentrators.c.id)
        ).scalar_one()
        ids = []
        for n, serial in enumerate(serials):
            meter_id = conn.execute(
                meters.insert()
                .values(
                    serial_number=serial,
                    concentrator_id=dc,
                    commissioned=True,
                    reachable=True,
                    node_address=n + 1,
                    phase="T",
                )
                .returning(meters.c.id)
            ).scalar_one()
            sp = conn.execute(
                service_points.insert()
                .values(name=f"POD-{serial}", comuna=comuna)
                .returning(service_points.c.id)
            ).scalar_one()
            conn.execute(
                meter_links.insert().values(
                    meter_id=meter_id, service_point_id=sp, valid_from=INSTALLED
                )
            )
            ids.append(int(meter_id))
    return ids


def _model(serial: str, seed: int = 7, **kwargs: object) -> MeterModel:
    return MeterModel(serial, seed, installed_at=INSTALLED, **kwargs)  # type: ignore[arg-type]


def _lp_values(meter_id: int, model: MeterModel, day: date) -> list[IntervalValue]:
    return [
        IntervalValue(meter_id, A15.id, row.captured_utc, float(row.active_import_wh))
        for row in model.load_profile_day(day)
    ]


def _stored(db: Engine, meter_id: int) -> dict[datetime, tuple[float, int]]:
    with db.connect() as conn:
        rows = conn.execute(
            sa.select(
                interval_readings.c.interval_end,
                interval_readings.c.value,
                interval_readings.c.quality,
            ).where(interval_readings.c.meter_id == meter_id)
        )
        return {end: (value, quality) for end, value, quality in rows}


@pytest.mark.parametrize(("day", "count"), [(FALL_BACK, 100), (SPRING_FORWARD, 92)])
def test_dst_day_stored_once_with_simulator_values_and_dst_flag(
    db: Engine, day: date, count: int
) -> None:
    (meter_id,) = _fleet(db, ["UAAEEDN00000000001"])
    model = _model("UAAEEDN00000000001")
    values = _lp_values(meter_id, model, day)
    assert len(values) == count
    with db.begin() as conn:
        first = ingest_intervals(conn, values)
    assert (first.offered, first.inserted) == (count, count)
    stored = _stored(db, meter_id)
    assert sorted(stored) == interval_ends(day, TZ)
    for row in model.load_profile_day(day):
        value, quality = stored[row.captured_utc]
        assert value == row.active_import_wh
        assert quality & QualityFlag.DST_DAY


def test_ordinary_day_has_no_dst_flag(db: Engine) -> None:
    (meter_id,) = _fleet(db, ["UAAEEDN00000000002"])
    values = _lp_values(meter_id, _model("UAAEEDN00000000002"), date(2026, 5, 12))
    with db.begin() as conn:
        ingest_intervals(conn, values)
    stored = _stored(db, meter_id)
    assert len(stored) == 96
    assert {q for _, q in stored.values()} == {int(QualityFlag.ACTUAL)}


def test_late_and_duplicate_data_are_idempotent(db: Engine) -> None:
    (meter_id,) = _fleet(db, ["UAAEEDN00000000003"])
    values = _lp_values(meter_id, _model("UAAEEDN00000000003"), date(2026, 5, 12))
    with db.begin() as conn:
        ingest_intervals(conn, values[:50])
    before = _stored(db, meter_id)
    # The whole day arrives later, with the first 50 repeated and one of them altered: the
    # value stored first is kept.
    altered = [values[0]._replace(value=values[0].value + 999), *values[1:], *values[10:20]]
    with db.begin() as conn:
        again = ingest_intervals(conn, altered)
    assert again.offered == len(altered)
    assert again.inserted == 46
    after = _stored(db, meter_id)
    assert len(after) == 96
    assert after[values[0].interval_end] == before[values[0].interval_end]
    with db.begin() as conn:
        assert ingest_intervals(conn, values).inserted == 0
    assert _stored(db, meter_id) == after


def test_gaps_found_and_filled_by_a_later_ingest(db: Engine) -> None:
    ids = _fleet(db, ["UAAEEDN00000000004", "UAAEEDN00000000005"])
    models = [_model(f"UAAEEDN0000000000{n}", seed=n) for n in (4, 5)]
    values = {m: _lp_values(m, model, FALL_BACK) for m, model in zip(ids, models, strict=True)}
    hole = values[ids[0]][40:52]  # three hours lost to a communication failure
    with db.begin() as conn:
        ingest_intervals(conn, values[ids[0]][:40] + values[ids[0]][52:] + values[ids[1]])
        gaps = find_gaps(conn, FALL_BACK, A15, ids)
    assert gaps == {ids[0]: [v.interval_end for v in hole]}
    with db.begin() as conn:
        filled = ingest_intervals(conn, values[ids[0]])  # the back-fill reads the day again
        assert filled.inserted == len(hole)
        assert find_gaps(conn, FALL_BACK, A15, ids) == {}


def test_gaps_of_a_meter_without_data_cover_its_whole_day(db: Engine) -> None:
    (meter_id,) = _fleet(db, ["UAAEEDN00000000006"])
    with db.connect() as conn:
        gaps = find_gaps(conn, SPRING_FORWARD, A15, [meter_id])
    assert gaps == {meter_id: interval_ends(SPRING_FORWARD, TZ)}


def test_gaps_follow_the_meters_zone(db: Engine) -> None:
    (meter_id,) = _fleet(db, ["UAAEEDN00000000007"], tz="America/Punta_Arenas", comuna="PA")
    with db.connect() as conn:
        gaps = find_gaps(conn, FALL_BACK, A15, [meter_id])
    assert len(gaps[meter_id]) == 96  # Magallanes has no DST


def test_day_partitions_created_on_demand(db: Engine) -> None:
    if db.dialect.name != "postgresql":
        pytest.skip("partitions are PostgreSQL's")
    (meter_id,) = _fleet(db, ["UAAEEDN00000000008"])
    values = _lp_values(meter_id, _model("UAAEEDN00000000008"), SPRING_FORWARD)
    with db.begin() as conn:
        ingest_intervals(conn, values)
        names = interval_partitions(conn)
        # A local day in Santiago spans two UTC days.
        assert {"interval_readings_p20260906", "interval_readings_p20260907"} <= set(names)
        kind = conn.exec_driver_sql(
            "SELECT relkind FROM pg_class WHERE relname = 'interval_readings'"
        ).scalar()
        assert kind == "p"
        in_first = conn.exec_driver_sql("SELECT count(*) FROM interval_readings_p20260906").scalar()
        in_second = conn.exec_driver_sql(
            "SELECT count(*) FROM interval_readings_p20260907"
        ).scalar()
    start, _ = local_day_bounds(SPRING_FORWARD, TZ)
    expected_first = sum(1 for v in values if v.interval_end.date() == date(2026, 9, 6))
    assert start.date() == date(2026, 9, 6)
    assert (in_first, in_second) == (expected_first, len(values) - expected_first)


def test_load_profile_entry_point_takes_serial_and_literal_code(db: Engine) -> None:
    (meter_id,) = _fleet(db, ["UAAEEDN00000000009"])
    model = _model("UAAEEDN00000000009")
    rows = [(r.captured_utc, r.active_export_wh) for r in model.load_profile_day(FALL_BACK)]
    literal = "0.0.2.4.1.19.12.0.0.0.0.0.0.0.0.0.72.0"
    with db.begin() as conn:
        result = ingest_load_profile(conn, "UAAEEDN00000000009", literal, rows)
        with pytest.raises(UnknownMeter):
            ingest_load_profile(conn, "NOPE", literal, rows)
    assert result.inserted == 100
    with db.connect() as conn:
        types = set(
            conn.execute(
                sa.select(interval_readings.c.reading_type_id).where(
                    interval_readings.c.meter_id == meter_id
                )
            ).scalars()
        )
    assert types == {reading_type(literal).id}
    assert reading_type(literal) == interval_type(Energy.ACTIVE_REVERSE)


def test_tier_sum_violation_injected_by_the_simulator_is_stored_and_flagged(db: Engine) -> None:
    ids = _fleet(db, ["UAAEEDN00000000010", "UAAEEDN00000000011"])
    start = datetime(2026, 5, 10, tzinfo=UTC)
    faulty = _model(
        "UAAEEDN00000000010",
        anomalies=(Anomaly(AnomalyKind.TIER_TOTAL_MISMATCH, start, None, 1234),),
    )
    healthy = _model("UAAEEDN00000000011", seed=11)
    reads = []
    for meter_id, model in zip(ids, (faulty, healthy), strict=True):
        billing = model.billing_row(date(2026, 5, 12))
        assert billing is not None
        registers = billing.registers.active_import
        reads.append(
            RegisterRead(
                meter_id,
                Energy.ACTIVE_FORWARD,
                billing.captured_utc,
                registers.tiers,
                registers.total,
            )
        )
    with db.begin() as conn:
        result = ingest_register_reads(conn, reads)
        again = ingest_register_reads(conn, reads)
    assert result.inserted == 2
    assert again.inserted == 0
    assert [r.meter_id for r in result.tier_sum_violations] == [ids[0]]
    with db.connect() as conn:
        stored = {
            row["meter_id"]: row for row in conn.execute(sa.select(register_reads)).mappings()
        }
    bad, good = stored[ids[0]], stored[ids[1]]
    assert bad["quality"] & QualityFlag.TIER_SUM_VIOLATION
    assert bad["total"] == sum(bad[f"t{n}"] for n in range(1, 7)) + 1234
    assert not good["quality"] & QualityFlag.TIER_SUM_VIOLATION
    assert good["total"] == sum(good[f"t{n}"] for n in range(1, 7))
    assert good["reading_type_id"] == daily_closure_type(Energy.ACTIVE_FORWARD).id
    assert good["energy_type"] == 8


def test_daily_closure_entry_point(db: Engine) -> None:
    (meter_id,) = _fleet(db, ["UAAEEDN00000000012"])
    at = datetime(2026, 5, 13, 4, tzinfo=UTC)
    with db.begin() as conn:
        result = ingest_daily_closure(
            conn, meter_id, Energy.ACTIVE_REVERSE, at, (5, 0, 0, 0, 0, 0), 5
        )
        with pytest.raises(ValueError, match="6 tiers"):
            ingest_daily_closure(conn, meter_id, Energy.ACTIVE_REVERSE, at, (5,), 5)
    assert result.inserted == 1
    assert result.tier_sum_violations == []
    with db.connect() as conn:
        row = conn.execute(sa.select(register_reads)).mappings().one()
    assert (row["energy_type"], row["captured_at"], row["t1"]) == (9, at, 5)


def test_energy_profiles_and_meter_list(db: Engine) -> None:
    ids = _fleet(db, ["UAAEEDN00000000013", "UAAEEDN00000000014"])
    with db.begin() as conn:
        assign_energy_profiles(
            conn,
            ids[0],
            daily_closure="DailyClosure Energy Profile",
            load_profile="LP Active + Active Export",
        )
        assign_energy_profiles(
            conn, ids[0], daily_closure="DailyClosure Energy Profile", load_profile="LP Active"
        )
        with pytest.raises(UnknownProfile):
            assign_energy_profiles(conn, ids[1], daily_closure=None, load_profile="LP Nothing")
        listed = meter_list(conn)
    assert [m["serialnumber"] for m in listed] == ["UAAEEDN00000000013", "UAAEEDN00000000014"]
    first, second = listed
    assert list(first) == [
        "concentrator",
        "pod",
        "serialnumber",
        "commissioned",
        "reachable",
        "errorinst",
        "row",
        "phase",
        "isupload",
        "isdailyclosure",
        "energydailyclosureprofile",
        "energyfastloadprofile",
    ]
    assert first["energyfastloadprofile"] == "LP Active"
    assert first["energydailyclosureprofile"] == "DailyClosure Energy Profile"
    assert (first["concentrator"], first["pod"], first["row"], first["phase"]) == (
        "TD-Santiago",
        "POD-UAAEEDN00000000013",
        1,
        "Phase T",
    )
    assert second["energyfastloadprofile"] is None
    assert second["isupload"] is False


def test_read_success_kpi_and_unread_worklist(db: Engine) -> None:
    santiago = _fleet(db, [f"UAAEEDN0000000010{n}" for n in range(4)])
    maipu = _fleet(db, ["UAAEEDN00000000200"], comuna="Maipu")
    day = date(2026, 5, 12)
    _, day_end = local_day_bounds(day, TZ)
    ends = interval_ends(day, TZ)
    with db.begin() as conn:
        # Two meters in time, one a day and a half late, one never; Maipú's meter in time.
        for meter_id, received in (
            (santiago[0], day_end + timedelta(hours=1)),
            (santiago[1], day_end + timedelta(hours=24)),
            (santiago[2], day_end + timedelta(hours=36)),
            (maipu[0], day_end + timedelta(hours=2)),
        ):
            ingest_intervals(
                conn, [IntervalValue(meter_id, A15.id, ends[5], 1.0)], received_at=received
            )
        report = read_success(conn, day)
        strict = read_success(conn, day, window=timedelta(hours=12), target=0.5)
        worklist = unread_meters(conn, 3, day + timedelta(days=2))
    groups = {(g.level, g.name): g for g in report.groups}
    assert (
        groups[("concentrator", "TD-Santiago")].expected,
        groups[("concentrator", "TD-Santiago")].read,
    ) == (4, 2)
    assert groups[("comuna", "Maipu")].success == 1.0
    assert groups[("comuna", "Maipu")].meets_target
    company = groups[("company", "company")]
    assert (company.expected, company.read) == (5, 3)
    assert not company.meets_target
    strict_groups = {(g.level, g.name): g for g in strict.groups}
    assert strict_groups[("company", "company")].read == 2
    assert strict_groups[("company", "company")].meets_target is False
    assert [w["serial_number"] for w in worklist] == ["UAAEEDN00000000103"]
    assert worklist[0]["last_read_day"] is None
    with db.connect() as conn:
        later = unread_meters(conn, 1, day + timedelta(days=3))
    assert len(later) == 5
    assert later[0]["serial_number"] == "UAAEEDN00000000103"
    assert {w["last_read_day"] for w in later[1:]} == {day}


def test_unknown_meter_ids_refuse_the_batch(db: Engine) -> None:
    (meter_id,) = _fleet(db, ["UAAEEDN00000000300"])
    at = datetime(2026, 5, 12, 4, tzinfo=UTC)
    values = [
        IntervalValue(meter_id, A15.id, at, 1.0),
        IntervalValue(meter_id + 99, A15.id, at, 2.0),
    ]
    with pytest.raises(UnknownMeter, match=str(meter_id + 99)), db.begin() as conn:
        ingest_intervals(conn, values)
    with pytest.raises(UnknownMeter), db.begin() as conn:
        ingest_register_reads(
            conn, [RegisterRead(meter_id + 99, Energy.ACTIVE_FORWARD, at, (0,) * 6, 0)]
        )
    assert _stored(db, meter_id) == {}


def test_naive_interval_end_is_refused(db: Engine) -> None:
    (meter_id,) = _fleet(db, ["UAAEEDN00000000301"])
    naive = IntervalValue(meter_id, A15.id, datetime(2026, 5, 12, 4), 1.0)
    with pytest.raises(ValueError, match="naive"), db.begin() as conn:
        ingest_intervals(conn, [naive])
