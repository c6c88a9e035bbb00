"""The TOU calendar: Chilean-style peak in April-September, weekends and holidays."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smmc.sim.tariff import CHILEAN_TOU, DayProfile, Season, TariffError, TouCalendar


def test_winter_working_day_peak_is_t1_from_18_to_23() -> None:
    day = date(2026, 6, 10)  # a Wednesday in June
    assert CHILEAN_TOU.tier_at(datetime(day.year, day.month, day.day, 17, 59)) == 2
    assert CHILEAN_TOU.tier_at(datetime(2026, 6, 10, 18, 0)) == 1
    assert CHILEAN_TOU.tier_at(datetime(2026, 6, 10, 22, 59)) == 1
    assert CHILEAN_TOU.tier_at(datetime(2026, 6, 10, 23, 0)) == 3
    assert CHILEAN_TOU.tier_at(datetime(2026, 6, 10, 3, 0)) == 3


def test_summer_evening_is_not_peak() -> None:
    assert CHILEAN_TOU.tier_at(datetime(2026, 1, 14, 19, 0)) == 5
    assert CHILEAN_TOU.tier_at(datetime(2026, 12, 2, 19, 0)) == 5
    assert CHILEAN_TOU.tier_at(datetime(2026, 10, 1, 19, 0)) == 5
    assert CHILEAN_TOU.tier_at(datetime(2026, 9, 30, 19, 0)) == 1


def test_weekends_and_holidays_use_the_weekend_profile() -> None:
    assert CHILEAN_TOU.tier_at(datetime(2026, 6, 13, 19, 0)) == 6  # Saturday
    assert CHILEAN_TOU.tier_at(datetime(2026, 6, 14, 12, 0)) == 4  # Sunday
    # 18 September (Fiestas Patrias) 2026 is a Friday, a national holiday.
    assert CHILEAN_TOU.tier_at(datetime(2026, 9, 18, 19, 0)) == 6
    assert CHILEAN_TOU.tier_at(datetime(2026, 9, 17, 19, 0)) == 1


@given(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31)))
def test_every_local_time_has_a_tier_in_1_to_6(moment: datetime) -> None:
    assert 1 <= CHILEAN_TOU.tier_at(moment) <= 6


@given(st.integers(min_value=0, max_value=1439))
def test_day_profile_tier_is_the_last_switch_not_after_the_minute(minute: int) -> None:
    profile = DayProfile("p", ((0, 3), (480, 2), (1080, 1), (1380, 3)))
    expected = [tier for start, tier in profile.switches if start <= minute][-1]
    assert profile.tier_at(minute) == expected


def test_bad_day_profiles_are_refused() -> None:
    with pytest.raises(TariffError, match="minute 0"):
        DayProfile("late", ((60, 1),))
    with pytest.raises(TariffError, match="increase"):
        DayProfile("order", ((0, 1), (600, 2), (500, 3)))
    with pytest.raises(TariffError, match="tier 7"):
        DayProfile("tier", ((0, 7),))


def test_calendar_refuses_unknown_day_profiles() -> None:
    with pytest.raises(TariffError, match="unknown day profiles"):
        TouCalendar(
            "x",
            (Season("all", (1, 1), ("a",) * 7),),
            (DayProfile("a", ((0, 1),)),),
            holiday_profile="missing",
        )


def test_season_wraps_over_new_year() -> None:
    calendar = TouCalendar(
        "wrap",
        (Season("summer", (10, 1), ("s",) * 7), Season("winter", (4, 1), ("w",) * 7)),
        (DayProfile("s", ((0, 1),)), DayProfile("w", ((0, 2),))),
        holiday_profile="s",
    )
    assert calendar.season_on(date(2026, 2, 1)).name == "summer"
    assert calendar.season_on(date(2026, 5, 1)).name == "winter"
    assert calendar.season_on(date(2026, 12, 31) + timedelta(days=1)).name == "summer"
