"""Reading types (corrected codes, the seed's literal forms), tier sum, gaps, energy
profiles."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smmc.domain.readings import (
    AVERAGE_CURRENT,
    AVERAGE_VOLTAGE,
    DAILY_CLOSURE_ENERGY_PROFILE,
    LP_ACTIVE,
    LP_ACTIVE_EXPORT,
    READING_TYPES,
    DailyClosureProfile,
    Energy,
    QualityFlag,
    ReadingKind,
    UnknownReadingType,
    daily_closure_type,
    energy_type_code,
    interval_type,
    is_dst_day,
    missing_interval_ends,
    reading_type,
    reading_type_by_id,
    tier_sum_violated,
)
from smmc.domain.time import interval_ends

TZ = "America/Santiago"
FALL_BACK = date(2026, 4, 4)
SPRING_FORWARD = date(2026, 9, 6)

# DOMAIN.md §6, verbatim.
CORRECTED = {
    "0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.3.72.0": interval_type(Energy.ACTIVE_FORWARD, 15),
    "0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.3.73.0": interval_type(Energy.REACTIVE_FORWARD, 15),
    "0.0.2.4.19.1.12.0.0.0.0.0.0.0.0.3.72.0": interval_type(Energy.ACTIVE_REVERSE, 15),
    "0.0.7.4.1.1.12.0.0.0.0.0.0.0.0.3.72.0": interval_type(Energy.ACTIVE_FORWARD, 60),
    "11.0.0.1.1.1.12.0.0.0.0.0.0.0.0.3.72.0": daily_closure_type(Energy.ACTIVE_FORWARD),
    "11.0.0.1.1.1.12.0.0.0.0.4.0.0.0.3.72.0": daily_closure_type(Energy.ACTIVE_FORWARD, 4),
    "0.2.2.6.0.1.4.0.0.0.0.0.0.0.128.0.5.0": AVERAGE_CURRENT,
    "0.2.2.6.0.1.54.0.0.0.0.0.0.0.129.0.29.0": AVERAGE_VOLTAGE,
}

# The seed's literal (garbled) codes, copied from its S_/M_ examples and code tables.
LITERAL = {
    "0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.72.0": interval_type(Energy.ACTIVE_FORWARD),
    "0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.0.72.0": interval_type(Energy.ACTIVE_FORWARD),
    "0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.0.0.73.0": interval_type(Energy.REACTIVE_FORWARD),
    "0.0.2.4.1.19.12.0.0.0.0.0.0.0.0.0.72.0": interval_type(Energy.ACTIVE_REVERSE),
    "0.0.2.4.1.19.12.0.0.0.0.0.0.0.0.0.73.0": interval_type(Energy.REACTIVE_REVERSE),
    "0.0.2.4.1.19.12.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.72.0": interval_type(
        Energy.ACTIVE_REVERSE
    ),
    "0.0.7.4.1.1.12.0.0.0.0.0.0.0.0.0.0.72.0": interval_type(Energy.ACTIVE_FORWARD, 60),
    "0.0.7.4.1.1.12.0.0.0.0.0.0.0.0.0.0.73.0": interval_type(Energy.REACTIVE_FORWARD, 60),
    "0.0.7.4.1.19.12.0.0.0.0.0.0.0.0.0.0.72.0": interval_type(Energy.ACTIVE_REVERSE, 60),
    "0.0.7.4.1.19.12.0.0.0.0.0.0.0.0.0.0.73.0": interval_type(Energy.REACTIVE_REVERSE, 60),
    "0.0.16.1.1.1.12.0.0.0.0.0.0.0.0.0.72.0": daily_closure_type(Energy.ACTIVE_FORWARD),
    "0.0.16.1.19.1.12.0.0.0.0.0.0.0.0.0.72.0": daily_closure_type(Energy.ACTIVE_REVERSE),
    "0.0.16.1.1.1.12.0.0.0.0.0.0.0.0.0.73.0": daily_closure_type(Energy.REACTIVE_FORWARD),
    "0.0.16.9.1.1.12.0.0.0.0.3.0.0.0.0.72.0": daily_closure_type(Energy.ACTIVE_FORWARD, 3),
    "0.0.16.9.1.1.12.0.0.0.0.6.0.0.0.0.73.0": daily_closure_type(Energy.REACTIVE_FORWARD, 6),
    "0.0.16.9.19.1.12.0.0.0.0.1.0.0.0.0.72.0": daily_closure_type(Energy.ACTIVE_REVERSE, 1),
    "0.0.2.6.0.1.5.0.0.0.0.0.0.0.224.0.0.0": AVERAGE_CURRENT,
    "0.0.2.6.0.1.5.0.0.0.0.0.0.0.0.224.0.0.0": AVERAGE_CURRENT,
}


def test_corrected_codes_are_domain_md_verbatim() -> None:
    for code, kind in CORRECTED.items():
        assert kind.code == code
        assert reading_type(code) is kind


def test_every_type_has_18_fields_a_unique_code_and_id() -> None:
    assert len({t.code for t in READING_TYPES}) == len(READING_TYPES)
    assert [t.id for t in READING_TYPES] == list(range(1, len(READING_TYPES) + 1))
    for kind in READING_TYPES:
        assert len(kind.code.split(".")) == 18
        assert reading_type(kind.code) is kind
        assert reading_type_by_id(kind.id) is kind


def test_register_types_cover_total_and_six_tiers_per_energy() -> None:
    registers = [t for t in READING_TYPES if t.kind is ReadingKind.REGISTER]
    assert len(registers) == 4 * 7
    for energy in Energy:
        for tier in range(1, 7):
            fields = daily_closure_type(energy, tier).code.split(".")
            assert fields[11] == str(tier)
            assert fields[0] == "11"


@pytest.mark.parametrize(("literal", "expected"), list(LITERAL.items()))
def test_seed_literal_codes_map_to_the_corrected_form(literal: str, expected: object) -> None:
    assert reading_type(literal) is expected


@pytest.mark.parametrize(
    "code",
    [
        "",
        "0.0.2.4.1.18.12.0.0.0.0.0.0.0.0.0.73.0",  # capacitive: not collected
        "0.0.15.1.1.12.0.0.0.0.0.0.0.0.72.0",  # instantaneous total, not a daily closure
        "0.0.16.9.1.1.12.0.0.0.0.7.0.0.0.0.72.0",  # tier 7
        "0.0.2.4.1.1.12.0.0.0.0.0.0.0.0.72.1",
        "a.b.c",
        "0..2",
    ],
)
def test_unknown_codes_are_refused(code: str) -> None:
    with pytest.raises(UnknownReadingType):
        reading_type(code)


@given(
    period=st.sampled_from([(2, 15), (7, 60)]),
    flow=st.sampled_from([(1, "forward"), (19, "reverse")]),
    unit=st.sampled_from([(72, "active"), (73, "reactive")]),
    zeros=st.integers(min_value=0, max_value=30),
)
def test_garbled_load_profile_codes_with_any_run_of_zeros(
    period: tuple[int, int], flow: tuple[int, str], unit: tuple[int, str], zeros: int
) -> None:
    code = ".".join(["0", "0", str(period[0]), "4", "1", str(flow[0]), "12", *["0"] * zeros])
    code += f".{unit[0]}.0"
    kind = reading_type(code)
    assert kind.minutes == period[1]
    assert kind.energy == Energy(f"{unit[1]}_{flow[1]}")


@given(st.lists(st.integers(min_value=0, max_value=300), min_size=1, max_size=25))
def test_any_dotted_integers_give_a_type_or_a_typed_error(fields: list[int]) -> None:
    code = ".".join(str(f) for f in fields)
    try:
        kind = reading_type(code)
    except UnknownReadingType:
        return
    assert kind in READING_TYPES


@given(
    st.lists(st.integers(min_value=0, max_value=10**12), min_size=6, max_size=6),
    st.integers(min_value=-5, max_value=5),
)
def test_tier_sum(tiers: list[int], delta: int) -> None:
    assert tier_sum_violated(tiers, sum(tiers) + delta) is (delta != 0)


def test_tier_sum_needs_six_tiers() -> None:
    with pytest.raises(ValueError, match="6 tiers"):
        tier_sum_violated([1, 2, 3], 6)


def test_dst_days() -> None:
    assert is_dst_day(FALL_BACK, TZ)
    assert is_dst_day(SPRING_FORWARD, TZ)
    assert not is_dst_day(date(2026, 4, 5), TZ)
    assert not is_dst_day(FALL_BACK, "America/Punta_Arenas")


@given(
    day=st.sampled_from([FALL_BACK, SPRING_FORWARD, date(2026, 1, 15)]),
    keep=st.sets(st.integers(min_value=0, max_value=99)),
)
def test_gaps_are_the_expected_ends_not_stored(day: date, keep: set[int]) -> None:
    ends = interval_ends(day, TZ)
    stored = [ends[i] for i in sorted(keep) if i < len(ends)]
    missing = missing_interval_ends(day, TZ, stored)
    assert sorted(missing + stored) == ends
    assert missing == sorted(missing)
    assert not set(missing) & set(stored)


def test_gap_counts_on_dst_days_and_hourly() -> None:
    assert len(missing_interval_ends(FALL_BACK, TZ, [])) == 100
    assert len(missing_interval_ends(SPRING_FORWARD, TZ, [])) == 92
    assert len(missing_interval_ends(FALL_BACK, TZ, [], minutes=60)) == 25
    # The repeated April hour: both occurrences of 23:15 are distinct instants.
    ends = interval_ends(FALL_BACK, TZ)
    assert missing_interval_ends(FALL_BACK, TZ, ends[:-5]) == ends[-5:]


def test_quality_flags_are_distinct_bits() -> None:
    assert int(QualityFlag.ACTUAL) == 0
    bits = [QualityFlag.MISSING, QualityFlag.DST_DAY, QualityFlag.CLOCK_ADJUSTED]
    bits.append(QualityFlag.TIER_SUM_VIOLATION)
    assert sum(int(b) for b in bits) == int(QualityFlag(sum(int(b) for b in bits)))
    assert len({int(b) for b in bits}) == 4


def test_energy_types_of_the_dc_file() -> None:
    assert energy_type_code(Energy.ACTIVE_FORWARD) == (8, "8 Active Energy Import Previous")
    assert energy_type_code(Energy.ACTIVE_REVERSE) == (9, "9 Active Energy Export Previous")


def test_energy_profiles() -> None:
    profile = DAILY_CLOSURE_ENERGY_PROFILE
    assert profile.energies("polyphase") == frozenset(Energy)
    assert profile.energies("monophase") == {Energy.ACTIVE_FORWARD, Energy.ACTIVE_REVERSE}
    with pytest.raises(ValueError, match="meter type"):
        profile.energies("triphase")
    off = DailyClosureProfile("off", False, frozenset(Energy), frozenset(Energy))
    assert off.energies("polyphase") == frozenset()
    assert LP_ACTIVE.reading_types() == (interval_type(Energy.ACTIVE_FORWARD),)
    assert LP_ACTIVE_EXPORT.reading_types() == (
        interval_type(Energy.ACTIVE_FORWARD),
        interval_type(Energy.ACTIVE_REVERSE),
    )
    assert LP_ACTIVE_EXPORT.name == "LP Active + Active Export"
