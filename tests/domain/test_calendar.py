"""Working days around Chilean national and regional holidays, with operator overrides."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smmc.domain.calendar import CHILE_SUBDIVISIONS, WorkingDayCalendar

NATIONAL = WorkingDayCalendar()


@pytest.mark.parametrize(
    ("day", "name"),
    [
        (date(2025, 1, 1), "New Year's Day"),
        (date(2025, 9, 18), "Independence Day"),
        (date(2025, 9, 19), "Army Day"),
        (date(2025, 12, 25), "Christmas Day"),
    ],
)
def test_national_holidays_are_not_working_days(day: date, name: str) -> None:
    assert day.weekday() < 5  # all fall on weekdays in 2025: only the holiday excludes them
    assert NATIONAL.is_holiday(day)
    assert NATIONAL.holiday_name(day) == name
    assert not NATIONAL.is_working_day(day)


def test_ordinary_days() -> None:
    wednesday = date(2025, 9, 17)
    sunday = date(2025, 9, 21)
    assert NATIONAL.is_working_day(wednesday)
    assert NATIONAL.holiday_name(wednesday) is None
    assert not NATIONAL.is_holiday(sunday)
    assert not NATIONAL.is_working_day(sunday)
    assert not NATIONAL.is_working_day(date(2025, 9, 20))  # Saturday


def test_next_working_day_over_fiestas_patrias() -> None:
    # Wed 17 → (Thu 18, Fri 19 holidays, weekend) → Mon 22.
    assert NATIONAL.next_working_day(date(2025, 9, 17)) == date(2025, 9, 22)
    assert NATIONAL.next_working_day(date(2025, 9, 17), include_today=True) == date(2025, 9, 17)
    assert NATIONAL.next_working_day(date(2025, 9, 18), include_today=True) == date(2025, 9, 22)
    assert NATIONAL.next_working_day(date(2025, 9, 21)) == date(2025, 9, 22)


def test_next_working_day_over_new_year_and_christmas() -> None:
    assert NATIONAL.next_working_day(date(2024, 12, 31)) == date(2025, 1, 2)
    assert NATIONAL.next_working_day(date(2025, 12, 24)) == date(2025, 12, 26)


def test_working_days_between() -> None:
    # 15-19 Sept 2025: Mon, Tue, Wed working; Thu, Fri holidays.
    assert NATIONAL.working_days_between(date(2025, 9, 15), date(2025, 9, 22)) == 3
    assert NATIONAL.working_days_between(date(2025, 9, 22), date(2025, 9, 15)) == -3
    assert NATIONAL.working_days_between(date(2025, 9, 15), date(2025, 9, 15)) == 0
    assert NATIONAL.working_days_between(date(2025, 12, 22), date(2026, 1, 5)) == 8


def test_regional_holiday_arica_7_june() -> None:
    arica = WorkingDayCalendar("AP")
    friday = date(2024, 6, 7)
    assert arica.is_holiday(friday)
    assert arica.holiday_name(friday) == "Assault and Capture of Cape Arica"
    assert not arica.is_working_day(friday)
    assert NATIONAL.is_working_day(friday)
    assert arica.next_working_day(date(2024, 6, 6)) == date(2024, 6, 10)


def test_regional_holiday_nuble_20_august() -> None:
    nuble = WorkingDayCalendar("NB")
    wednesday = date(2025, 8, 20)
    name = nuble.holiday_name(wednesday)
    assert name is not None
    assert "O'Higgins" in name
    assert not nuble.is_working_day(wednesday)
    assert NATIONAL.is_working_day(wednesday)
    assert WorkingDayCalendar("AP").is_working_day(wednesday)


@pytest.mark.parametrize("code", ["XX", "ap", "Santiago", ""])
def test_unknown_subdivision(code: str) -> None:
    with pytest.raises(ValueError, match="unknown Chilean subdivision") as caught:
        WorkingDayCalendar(code)
    assert repr(code) in str(caught.value)
    assert "NB" in str(caught.value)


def test_subdivision_codes_include_the_regions() -> None:
    assert {"AP", "NB", "RM", "MA", "VS"} <= set(CHILE_SUBDIVISIONS)


def test_override_adds_a_decree_holiday() -> None:
    decree = date(2025, 9, 17)
    calendar = WorkingDayCalendar(extra_holidays={decree: "Feriado decretado"})
    assert calendar.holiday_name(decree) == "Feriado decretado"
    assert not calendar.is_working_day(decree)
    assert calendar.next_working_day(date(2025, 9, 16)) == date(2025, 9, 22)
    assert calendar.working_days_between(date(2025, 9, 15), date(2025, 9, 22)) == 2


def test_override_moves_a_holiday() -> None:
    # A holiday moved by law: remove the library date, add the new one.
    original, moved = date(2025, 10, 12), date(2025, 10, 13)
    calendar = WorkingDayCalendar(
        extra_holidays={moved: "Meeting of Two Worlds' Day (moved)"},
        removed_holidays=[original],
    )
    assert NATIONAL.is_holiday(original)
    assert not calendar.is_holiday(original)
    assert calendar.holiday_name(original) is None
    assert calendar.is_holiday(moved)
    assert not calendar.is_working_day(moved)
    removed_weekday = WorkingDayCalendar(removed_holidays=[date(2025, 12, 25)])
    assert removed_weekday.is_working_day(date(2025, 12, 25))


def test_override_cannot_add_and_remove_the_same_day() -> None:
    day = date(2025, 9, 17)
    with pytest.raises(ValueError, match="2025-09-17"):
        WorkingDayCalendar(extra_holidays={day: "x"}, removed_holidays=[day])


def test_overrides_are_copied() -> None:
    extras = {date(2025, 9, 17): "Feriado decretado"}
    calendar = WorkingDayCalendar(extra_holidays=extras)
    extras.clear()
    assert calendar.is_holiday(date(2025, 9, 17))


DAYS = st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31))


@given(day=DAYS)
def test_next_working_day_is_the_first_one(day: date) -> None:
    result = NATIONAL.next_working_day(day)
    assert result > day
    assert NATIONAL.is_working_day(result)
    between = day + timedelta(days=1)
    while between < result:
        assert not NATIONAL.is_working_day(between)
        between += timedelta(days=1)


@given(a=DAYS, b=DAYS, c=DAYS)
def test_working_days_between_adds_up(a: date, b: date, c: date) -> None:
    total = NATIONAL.working_days_between(a, b) + NATIONAL.working_days_between(b, c)
    assert total == NATIONAL.working_days_between(a, c)


@given(day=DAYS)
def test_working_day_counts_one(day: date) -> None:
    expected = 1 if NATIONAL.is_working_day(day) else 0
    assert NATIONAL.working_days_between(day, day + timedelta(days=1)) == expected
