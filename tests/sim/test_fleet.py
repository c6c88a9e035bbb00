"""Fleet YAML: loading, defaults, validation errors naming the field, and the built plan."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from smmc.sim.anomalies import AnomalyKind
from smmc.sim.clock import TimeMode
from smmc.sim.fleet import (
    ConcentratorsSection,
    Fleet,
    FleetError,
    default_fleet,
    load_fleet,
    meter_serial,
)
from smmc.sim.meter_model import NormalWord1

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_default_fleet_is_5_by_20_plus_5_point_to_point() -> None:
    fleet = default_fleet()
    assert fleet.concentrators.count == 5
    assert fleet.concentrators.meters_per_concentrator == 20
    assert fleet.point_to_point.count == 5
    assert fleet.meter_count == 105
    plan = fleet.build(NOW)
    assert len(plan) == 105
    assert len(plan.concentrators) == 5
    assert [m.concentrator for m in plan.meters()].count(None) == 5


def test_yaml_defaults_equal_the_dataclass_defaults() -> None:
    assert Fleet.from_yaml("") == Fleet()
    assert Fleet.from_yaml("name: default") == default_fleet()
    assert load_fleet(None) == default_fleet()


def test_yaml_sets_every_section(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(
        """
name: lab
concentrators: {count: 2, meters_per_concentrator: 3, first_port: 21000}
point_to_point: {count: 1, first_host: 127.0.2.10, port: 4060}
comunas:
  - {name: Maipú, latitude: -33.511, longitude: -70.758}
shares: {net_billing: 1.0, polyphase: 0.0}
household_mix: {commercial: 1}
faults: {node_unreachable: 1.0}
clock_drift: {mean_ppm: 20, sd_ppm: 0, tolerance_s: 30}
anomalies: {repeated_outages: 1.0, backward_register: 0}
time: {mode: accelerated, factor: 60, history_days: 3, start: "2026-06-01T12:00:00Z"}
seeds: {layout: 9}
""",
        encoding="utf-8",
    )
    fleet = load_fleet(path)
    assert fleet.time.mode is TimeMode.ACCELERATED
    assert fleet.time.start == NOW
    plan = fleet.build()
    assert plan.epoch == NOW
    meters = list(plan.meters())
    assert len(meters) == 7
    assert all(m.net_billing and m.pv_kwp > 0 for m in meters)
    assert not any(m.polyphase for m in meters)
    assert {m.household for m in meters} == {"commercial"}
    assert all(m.unreachable for m in meters)
    assert {m.comuna for m in meters} == {"Maipú"}
    assert all(m.drift_ppm == 20 for m in meters)
    assert [d.port for d in plan.concentrators] == [21000, 21001]
    assert meters[-1].host == "127.0.2.10"
    assert meters[-1].port == 4060
    assert meters[0].node_address == 2
    assert all(any(a.kind is AnomalyKind.REPEATED_OUTAGES for a in m.anomalies) for m in meters)
    assert not any(a.kind is AnomalyKind.BACKWARD_REGISTER for m in meters for a in m.anomalies)
    clock = fleet.clock()
    assert clock.factor == 60


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        ("concentrators: {count: -1}", "concentrators.count", "negative"),
        ("concentrators: {count: many}", "concentrators.count", "integer"),
        ("concentrators: {countt: 3}", "concentrators.countt", "unknown field"),
        ("shares: {net_billing: 1.5}", "shares.net_billing", "between 0 and 1"),
        ("faults: {wrong_key: -0.1}", "faults.wrong_key", "between 0 and 1"),
        ("anomalies: {repeated_outages: 2}", "anomalies.repeated_outages", "between 0 and 1"),
        ("household_mix: {castle: 1}", "household_mix.castle", "unknown household"),
        ("point_to_point: {first_host: localhost}", "point_to_point.first_host", "IPv4"),
        ("point_to_point: {port: 70000}", "point_to_point.port", "1..65535"),
        ("point_to_point: {share: 1.0}", "point_to_point.share", "1 excluded"),
        ("concentrators: {time_zone: Mars/Olympus}", "concentrators.time_zone", "unknown"),
        ("comunas: [{name: Paris, latitude: 48.85, longitude: 2.35}]", "comunas[0]", "Chile"),
        ("comunas: [{name: X, latitude: -33.4}]", "comunas[0].longitude", "required"),
        ("time: {mode: warp}", "time.mode", "real, accelerated, fast_forward"),
        ("time: {factor: 0}", "time.factor", "positive"),
        ("time: {start: 2026-06-01T00:00:00}", "time.start", "UTC offset"),
        ("time: {start: yesterday}", "time.start", "ISO 8601"),
        ("clock_drift: {tolerance_s: 0}", "clock_drift.tolerance_s", "positive"),
        ("seeds: [1, 2]", "seeds", "mapping"),
        ("shares: {polyphase: true}", "shares.polyphase", "got True"),
    ],
)
def test_validation_errors_name_the_field(text: str, field: str, reason: str) -> None:
    with pytest.raises(FleetError, match=reason) as caught:
        Fleet.from_yaml(text)
    assert caught.value.field == field
    assert str(caught.value).startswith(f"{field}:")


def test_point_to_point_share_overrides_the_count() -> None:
    fleet = Fleet.from_yaml(
        "concentrators: {count: 4, meters_per_concentrator: 20}\n"
        "point_to_point: {count: 3, share: 0.2}"
    )
    assert fleet.meter_count == 100
    plan = fleet.build(NOW)
    assert sum(m.concentrator is None for m in plan.meters()) == 20


def test_broken_yaml_and_missing_file_are_reported(tmp_path: Path) -> None:
    with pytest.raises(FleetError, match="not valid YAML"):
        Fleet.from_yaml("concentrators: {count: [", "lab.yaml")
    with pytest.raises(FleetError, match="cannot read"):
        load_fleet(tmp_path / "missing.yaml")
    with pytest.raises(FleetError, match="no meter"):
        Fleet.from_yaml("concentrators: {count: 0}\npoint_to_point: {count: 0}")


def test_build_is_reproducible_and_seeds_matter() -> None:
    fleet = default_fleet()
    one = [fleet.build(NOW).meter(i) for i in (0, 50, 104)]
    assert [fleet.build(NOW).meter(i) for i in (0, 50, 104)] == one
    other = dataclasses.replace(fleet, seeds=dataclasses.replace(fleet.seeds, keys=99, layout=7))
    changed = [other.build(NOW).meter(i) for i in (0, 50, 104)]
    assert [m.encryption_key for m in changed] != [m.encryption_key for m in one]
    assert [m.latitude for m in changed] != [m.latitude for m in one]
    assert [m.serial for m in changed] == [m.serial for m in one]


def test_meter_specs_are_plausible() -> None:
    plan = default_fleet().build(NOW)
    serials = {m.serial for m in plan.meters()}
    assert len(serials) == 105
    for meter in plan.meters():
        assert -33.7 < meter.latitude < -33.3
        assert -70.85 < meter.longitude < -70.45
        assert len(meter.encryption_key) == len(meter.authentication_key) == 16
        assert meter.phase in "RST"
        assert (meter.host is None) == (meter.concentrator is not None)
        if meter.wrong_key:
            assert meter.device_keys != meter.keys
        else:
            assert meter.device_keys == meter.keys
    assert plan.meter(104).serial == meter_serial(104)
    with pytest.raises(IndexError):
        plan.meter(105)


def test_a_100000_meter_fleet_builds() -> None:
    base = default_fleet()
    big = dataclasses.replace(
        base,
        concentrators=ConcentratorsSection(count=1000, meters_per_concentrator=100),
    )
    plan = big.build(NOW)
    assert len(plan) == 100_005
    assert len(plan.concentrators) == 1000
    last = plan.meter(100_004)
    assert last.concentrator is None
    assert plan.meter(99_999).concentrator == 999
    assert plan.meter(99_999).node_address == 101
    shares = sum(plan.meter(i).net_billing for i in range(0, 100_000, 10)) / 10_000
    assert 0.08 < shares < 0.12


def test_meters_on_a_missing_phase_have_no_supply() -> None:
    fleet = Fleet.from_yaml(
        "concentrators: {count: 2, meters_per_concentrator: 30}\n"
        "point_to_point: {count: 0}\n"
        "shares: {polyphase: 0.3}\n"
        "faults: {phase_missing: 1.0}\n"
        "anomalies: {repeated_outages: 0, consumption_with_breaker_open: 0,"
        " tiers_and_total_zero: 0, backward_register: 0}"
    )
    plan = fleet.build(NOW)
    later = NOW + timedelta(days=1)
    dark = lit = 0
    for index in range(len(plan)):
        spec = plan.meter(index)
        missing = plan.concentrators[spec.concentrator or 0].missing_phase
        assert missing in ("R", "S", "T")
        meter = plan.meter_model(index)
        used = meter.registers(later).active_import.total - meter.registers(NOW).active_import.total
        if spec.phase == missing and not spec.polyphase:
            dark += 1
            assert used == 0
            assert meter.status_words(NOW).normal1 & NormalWord1.PUP
        else:
            lit += 1
            assert used > 0
    assert dark > 0
    assert lit > 0


def test_a_fleet_without_faults_keeps_everything_but_its_flaws() -> None:
    base = default_fleet().sized(3, 40, 0)
    quiet = base.without_faults()
    rates = [*dataclasses.astuple(quiet.anomalies), *dataclasses.astuple(quiet.faults)]
    assert rates
    assert all(rate == 0.0 for rate in rates)
    assert dataclasses.replace(quiet, anomalies=base.anomalies, faults=base.faults) == base
    plan = quiet.build(datetime(2026, 4, 10, tzinfo=UTC))
    assert not any(
        meter.anomalies or meter.unreachable or meter.repeater_failure or meter.wrong_key
        for meter in plan.meters()
    )
