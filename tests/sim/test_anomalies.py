"""Each injected anomaly shows in the meter's values and in the labels file."""

from __future__ import annotations

import csv
import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from smmc.sim.anomalies import (
    LABEL_COLUMNS,
    Anomaly,
    AnomalyKind,
    AnomalyRates,
    assign_anomalies,
    write_labels,
)
from smmc.sim.fleet import ConcentratorsSection, Fleet, FleetPlan, PointToPointSection
from smmc.sim.meter_model import ExtendedWord1, ExtendedWord2, MeterModel, NormalWord1

NOW = datetime(2026, 6, 10, 15, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)
NO_ANOMALIES = AnomalyRates(**{kind.value: 0.0 for kind in AnomalyKind})


def plan_with(kind: AnomalyKind, meters: int = 3) -> FleetPlan:
    rates = dataclasses.replace(NO_ANOMALIES, **{kind.value: 1.0})
    fleet = Fleet(
        concentrators=ConcentratorsSection(count=1, meters_per_concentrator=meters),
        point_to_point=PointToPointSection(count=0),
        anomalies=rates,
    )
    return fleet.build(NOW)


def labelled(plan: FleetPlan, tmp_path: Path) -> list[dict[str, str]]:
    path = tmp_path / "labels.csv"
    count = write_labels(path, plan.labels())
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert count == len(rows)
    assert tuple(rows[0]) == LABEL_COLUMNS
    return rows


def only(meter: MeterModel, kind: AnomalyKind) -> Anomaly:
    (found,) = [a for a in meter.anomalies if a.kind is kind]
    return found


def check_labels(plan: FleetPlan, kind: AnomalyKind, tmp_path: Path) -> list[dict[str, str]]:
    rows = labelled(plan, tmp_path)
    expected = {plan.meter(i).serial for i in range(len(plan))}
    assert {r["serialnumber"] for r in rows if r["anomaly"] == kind.value} == expected
    for row in rows:
        start = datetime.fromisoformat(row["start_utc"])
        assert start.utcoffset() == timedelta(0)
        if row["end_utc"]:
            assert datetime.fromisoformat(row["end_utc"]) > start
        assert row["details"]
    return rows


def test_backward_register(tmp_path: Path) -> None:
    plan = plan_with(AnomalyKind.BACKWARD_REGISTER)
    check_labels(plan, AnomalyKind.BACKWARD_REGISTER, tmp_path)
    for index in range(len(plan)):
        meter = plan.meter_model(index)
        start = only(meter, AnomalyKind.BACKWARD_REGISTER).start
        before = meter.registers(start - SECOND).active_import
        after = meter.registers(start + SECOND).active_import
        assert after.total < before.total
        assert sum(after.tiers) == after.total


def test_tier_total_mismatch(tmp_path: Path) -> None:
    plan = plan_with(AnomalyKind.TIER_TOTAL_MISMATCH)
    check_labels(plan, AnomalyKind.TIER_TOTAL_MISMATCH, tmp_path)
    for index in range(len(plan)):
        meter = plan.meter_model(index)
        anomaly = only(meter, AnomalyKind.TIER_TOTAL_MISMATCH)
        assert anomaly.end is not None
        inside = meter.registers(anomaly.start + SECOND).active_import
        assert inside.total - sum(inside.tiers) == anomaly.magnitude
        assert meter.status_words(anomaly.start + SECOND).extended1 & ExtendedWord1.DRAM
        for outside in (anomaly.start - SECOND, anomaly.end):
            values = meter.registers(outside).active_import
            assert sum(values.tiers) == values.total
            assert not meter.status_words(outside).extended1 & ExtendedWord1.DRAM


def test_tiers_and_total_at_zero(tmp_path: Path) -> None:
    plan = plan_with(AnomalyKind.TIERS_AND_TOTAL_ZERO)
    check_labels(plan, AnomalyKind.TIERS_AND_TOTAL_ZERO, tmp_path)
    for index in range(len(plan)):
        meter = plan.meter_model(index)
        anomaly = only(meter, AnomalyKind.TIERS_AND_TOTAL_ZERO)
        assert anomaly.end is not None
        inside = meter.registers(anomaly.start + SECOND).active_import
        assert inside.total == 0
        assert inside.tiers == (0,) * 6
        assert meter.registers(anomaly.start - SECOND).active_import.total > 0
        assert meter.registers(anomaly.end).active_import.total > 0


def test_export_without_net_billing(tmp_path: Path) -> None:
    plan = plan_with(AnomalyKind.EXPORT_WITHOUT_NET_BILLING, meters=10)
    rows = labelled(plan, tmp_path)
    contracted = {plan.meter(i).serial for i in range(len(plan)) if plan.meter(i).net_billing}
    assert {r["serialnumber"] for r in rows}.isdisjoint(contracted)
    assert len(rows) == len(plan) - len(contracted) > 0
    for index in range(len(plan)):
        spec = plan.meter(index)
        if spec.net_billing:
            continue
        assert spec.pv_kwp == 0
        meter = plan.meter_model(index)
        start = only(meter, AnomalyKind.EXPORT_WITHOUT_NET_BILLING).start
        assert meter.registers(start).active_export.total == 0
        later = meter.registers(start + timedelta(days=3)).active_export.total
        assert later > 0


def test_consumption_with_breaker_open(tmp_path: Path) -> None:
    plan = plan_with(AnomalyKind.CONSUMPTION_WITH_BREAKER_OPEN)
    check_labels(plan, AnomalyKind.CONSUMPTION_WITH_BREAKER_OPEN, tmp_path)
    for index in range(len(plan)):
        meter = plan.meter_model(index)
        anomaly = only(meter, AnomalyKind.CONSUMPTION_WITH_BREAKER_OPEN)
        assert anomaly.end is not None
        assert not meter.breaker_closed(anomaly.start + SECOND)
        used = (
            meter.registers(anomaly.end).active_import.total
            - meter.registers(anomaly.start).active_import.total
        )
        assert used > 10
        assert meter.status_words(anomaly.start + SECOND).extended1 & ExtendedWord1.INTA
        assert not meter.status_words(anomaly.start - SECOND).extended1 & ExtendedWord1.INTA


@pytest.mark.parametrize(
    ("kind", "word", "bit"),
    [
        (AnomalyKind.METER_CASE_OPENED, "extended1", ExtendedWord1.CAPE),
        (AnomalyKind.TERMINAL_COVER_REMOVED, "extended2", ExtendedWord2.TC_REM),
    ],
)
def test_case_and_terminal_cover_openings(
    kind: AnomalyKind, word: str, bit: int, tmp_path: Path
) -> None:
    plan = plan_with(kind)
    check_labels(plan, kind, tmp_path)
    for index in range(len(plan)):
        meter = plan.meter_model(index)
        anomaly = only(meter, kind)
        assert not getattr(meter.status_words(anomaly.start - SECOND), word) & bit
        assert getattr(meter.status_words(anomaly.start), word) & bit
        later = anomaly.start + timedelta(days=1)
        assert getattr(meter.status_words(later), word) & bit  # latched
        meter.clear_alarms(later)
        assert not getattr(meter.status_words(later + SECOND), word) & bit


def test_clock_drift_beyond_tolerance(tmp_path: Path) -> None:
    plan = plan_with(AnomalyKind.CLOCK_DRIFT)
    check_labels(plan, AnomalyKind.CLOCK_DRIFT, tmp_path)
    tolerance = plan.fleet.clock_drift.tolerance_s
    for index in range(len(plan)):
        meter = plan.meter_model(index)
        start = only(meter, AnomalyKind.CLOCK_DRIFT).start
        hour = timedelta(hours=1)
        assert abs(meter.clock_error(start - hour).total_seconds()) < tolerance
        assert abs(meter.clock_error(start + hour).total_seconds()) > tolerance
        assert not meter.status_words(start - hour).normal1 & NormalWord1.ORD
        assert meter.status_words(start + hour).normal1 & NormalWord1.ORD


def test_repeated_outages(tmp_path: Path) -> None:
    plan = plan_with(AnomalyKind.REPEATED_OUTAGES)
    rows = check_labels(plan, AnomalyKind.REPEATED_OUTAGES, tmp_path)
    for index in range(len(plan)):
        meter = plan.meter_model(index)
        outages = [a for a in meter.anomalies if a.kind is AnomalyKind.REPEATED_OUTAGES]
        assert 3 <= len(outages) <= 6
        assert sum(r["serialnumber"] == meter.serial for r in rows) == len(outages)
        for outage in outages:
            assert outage.end is not None
            assert (
                meter.registers(outage.end).active_import
                == meter.registers(outage.start).active_import
            )
            assert meter.status_words(outage.start).normal1 & NormalWord1.PUP
            for row in meter.measurands(outage.start, outage.end):
                begin = row.captured_utc - timedelta(minutes=15)
                dark = min(row.captured_utc, outage.end) - max(begin, outage.start)
                supplied = 1 - dark / timedelta(minutes=15)
                assert max(row.voltages) <= 220 * 1.03 * supplied + 0.1
                if supplied == 0:
                    assert row.voltages == (0.0,) * len(row.voltages)


def test_assignment_is_deterministic_and_follows_the_rates() -> None:
    window = (NOW - timedelta(days=7), NOW + timedelta(days=7))
    rates = dataclasses.replace(NO_ANOMALIES, meter_case_opened=0.1)
    first = assign_anomalies(rates, 5000, 42, window, lambda i: False, 60.0)
    assert assign_anomalies(rates, 5000, 42, window, lambda i: False, 60.0) == first
    assert assign_anomalies(rates, 5000, 43, window, lambda i: False, 60.0) != first
    assert 400 < len(first) < 600
    for found in first.values():
        for anomaly in found:
            assert window[0] <= anomaly.start <= window[1]
    assert assign_anomalies(NO_ANOMALIES, 5000, 42, window, lambda i: False, 60.0) == {}
