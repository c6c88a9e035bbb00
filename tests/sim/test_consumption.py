"""Consumption model: reproducible, shaped by household, weekday, season; PV and measurands."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from smmc.domain.time import interval_ends, zone
from smmc.sim.consumption import (
    HOUSEHOLD_TYPES,
    SLOT_SECONDS,
    ConsumptionModel,
    mix,
    unit_interval,
)

TZ = "America/Santiago"
FAMILY = HOUSEHOLD_TYPES["family_house"]
SLOTS = st.integers(
    min_value=1_577_836_800 // SLOT_SECONDS, max_value=2_082_758_400 // SLOT_SECONDS
)


def slot_of(moment: datetime) -> int:
    return int(moment.timestamp()) // SLOT_SECONDS


def local_day_slots(day: date) -> list[int]:
    return [slot_of(end) - 1 for end in interval_ends(day, TZ)]


def day_wh(model: ConsumptionModel, day: date) -> int:
    return sum(model.slot_energy(slot).import_wh for slot in local_day_slots(day))


@given(st.integers(min_value=0, max_value=2**63), SLOTS)
def test_same_seed_same_energy(seed: int, slot: int) -> None:
    first = ConsumptionModel(seed, FAMILY).slot_energy(slot)
    assert ConsumptionModel(seed, FAMILY).slot_energy(slot) == first
    assert first.import_wh >= 0
    assert first.export_wh >= 0


@given(st.integers(min_value=0, max_value=2**63), SLOTS)
def test_different_seeds_differ_over_a_day(seed: int, slot: int) -> None:
    day = [slot + n for n in range(96)]
    one = [ConsumptionModel(seed, FAMILY).slot_energy(s).import_wh for s in day]
    other = [ConsumptionModel(seed + 1, FAMILY).slot_energy(s).import_wh for s in day]
    assert one != other


def test_unit_interval_is_stable_and_in_range() -> None:
    assert mix(1, 2, 3) == mix(1, 2, 3) != mix(1, 2, 4)
    values = [unit_interval(7, n) for n in range(2000)]
    assert all(0.0 <= v < 1.0 for v in values)
    assert 0.45 < sum(values) / len(values) < 0.55


def test_daily_energy_matches_the_household_scale() -> None:
    for name, household in HOUSEHOLD_TYPES.items():
        totals = []
        for seed in range(20):
            model = ConsumptionModel(seed, household)
            totals.append(day_wh(model, date(2026, 10, 14)) / model.scale)
        mean_kwh = sum(totals) / len(totals) / 1000
        assert 0.7 * household.daily_kwh < mean_kwh < 1.3 * household.daily_kwh, name


def test_winter_consumes_more_than_summer_with_an_evening_peak() -> None:
    winter = summer = 0
    winter_evening = winter_midday = 0
    for seed in range(10):
        model = ConsumptionModel(seed, FAMILY)
        winter += day_wh(model, date(2026, 7, 8))
        summer += day_wh(model, date(2026, 1, 14))
        for slot in local_day_slots(date(2026, 7, 8)):
            local = datetime.fromtimestamp(slot * SLOT_SECONDS, UTC).astimezone(zone(TZ))
            energy = model.slot_energy(slot).import_wh
            if 19 <= local.hour < 22:
                winter_evening += energy
            elif 10 <= local.hour < 13:
                winter_midday += energy
    assert winter > 1.2 * summer
    assert winter_evening > 2 * winter_midday


def test_polyphase_meters_consume_more() -> None:
    day = date(2026, 5, 6)
    single = sum(day_wh(ConsumptionModel(s, FAMILY), day) for s in range(10))
    poly = sum(day_wh(ConsumptionModel(s, FAMILY, polyphase=True), day) for s in range(10))
    assert poly > 2 * single


def test_weekend_and_holidays_differ_from_weekdays() -> None:
    shop = sum(
        day_wh(ConsumptionModel(s, HOUSEHOLD_TYPES["commercial"]), date(2026, 10, 14))
        for s in range(5)
    )
    shop_sunday = sum(
        day_wh(ConsumptionModel(s, HOUSEHOLD_TYPES["commercial"]), date(2026, 10, 18))
        for s in range(5)
    )
    assert shop_sunday < 0.7 * shop
    home = sum(day_wh(ConsumptionModel(s, FAMILY), date(2026, 9, 16)) for s in range(5))
    # 18 September is a holiday: homes consume more, like on a weekend.
    home_holiday = sum(day_wh(ConsumptionModel(s, FAMILY), date(2026, 9, 18)) for s in range(5))
    assert home_holiday > home


def test_pv_exports_only_in_daylight_and_more_in_summer() -> None:
    model = ConsumptionModel(11, HOUSEHOLD_TYPES["small_apartment"], pv_kwp=4.0)
    no_pv = ConsumptionModel(11, HOUSEHOLD_TYPES["small_apartment"])
    summer = winter = 0
    for day, bucket in ((date(2026, 1, 14), "summer"), (date(2026, 6, 24), "winter")):
        for slot in local_day_slots(day):
            exported = model.slot_energy(slot).export_wh
            utc_hour = (slot * SLOT_SECONDS % 86400) / 3600
            if utc_hour < 8:  # 04:00-05:00 local at the latest: night all year in Santiago
                assert exported == 0
            if exported:
                assert model.pv_wh(slot) > 0
            if bucket == "summer":
                summer += exported
            else:
                winter += exported
            assert no_pv.slot_energy(slot).export_wh == 0
    night = slot_of(datetime(2026, 1, 14, 7, 0, tzinfo=UTC))  # 04:00 local
    assert model.pv_wh(night) == 0
    assert summer > winter > 0


def test_reactive_energy_follows_the_power_factor() -> None:
    model = ConsumptionModel(5, FAMILY)
    slots = local_day_slots(date(2026, 3, 3))
    active = sum(model.slot_energy(s).import_wh for s in slots)
    reactive = sum(model.slot_energy(s).reactive_import_varh for s in slots)
    ratio = reactive / active
    assert math.isclose(ratio, math.tan(math.acos(model.power_factor)), rel_tol=0.05)


def test_measurands_voltage_near_220_and_current_from_power() -> None:
    model = ConsumptionModel(9, FAMILY)
    slot = slot_of(datetime(2026, 3, 3, 22, 0, tzinfo=UTC))
    values = model.measurands(slot, 2200.0)
    assert len(values.voltages) == len(values.currents) == 1
    assert 210 < values.voltages[0] < 230
    expected = 2200.0 / (values.voltages[0] * model.power_factor)
    assert abs(values.currents[0] - expected) < 0.02
    poly = ConsumptionModel(9, FAMILY, polyphase=True).measurands(slot, 6600.0)
    assert len(poly.voltages) == len(poly.currents) == 3
    assert all(c > 0 for c in poly.currents)
    half = model.measurands(slot, 0.0, 0.5)
    assert abs(half.voltages[0] - values.voltages[0] / 2) <= 0.1
    dark = model.measurands(slot, 0.0, 0.0)
    assert dark.voltages == (0.0,)
    assert dark.currents == (0.0,)


def test_any_interval_is_computed_without_history() -> None:
    model = ConsumptionModel(21, FAMILY)
    far = slot_of(datetime(2031, 5, 5, 12, tzinfo=UTC))
    near = slot_of(datetime(2026, 5, 5, 12, tzinfo=UTC))
    assert model.slot_energy(far) == ConsumptionModel(21, FAMILY).slot_energy(far)
    assert model.slot_energy(near + 1) == model.slot_energy(near + 1)
    assert timedelta(seconds=SLOT_SECONDS) == timedelta(minutes=15)
