"""Time-of-use calendar of the simulated meters, kept as data.

The structure mirrors the COSEM activity calendar (IC 20): seasons select a week profile,
a week profile names a day profile per weekday, a day profile lists switch times and the
tier that starts at each one, and a special-days table (Chilean holidays) overrides the
weekday. Keeping it as data is what lets the DLMS server build the activity calendar from
the very schedule that drives the simulated registers.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime

from smmc.domain.calendar import WorkingDayCalendar

__all__ = [
    "CHILEAN_TOU",
    "TIER_COUNT",
    "DayProfile",
    "Season",
    "TariffError",
    "TouCalendar",
]

TIER_COUNT = 6


class TariffError(ValueError):
    """A TOU calendar that cannot be used: bad switch times, tiers or seasons."""


@dataclass(frozen=True, slots=True)
class DayProfile:
    """Switch points of one day: ``(minute of the local day, tier 1..6)``, first at 0."""

    name: str
    switches: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        if not self.switches or self.switches[0][0] != 0:
            raise TariffError(f"day profile {self.name!r} must start with a switch at minute 0")
        previous = -1
        for minute, tier in self.switches:
            if not previous < minute < 1440:
                raise TariffError(
                    f"day profile {self.name!r}: switch minutes must increase within 0..1439, "
                    f"got {minute}"
                )
            if not 1 <= tier <= TIER_COUNT:
                raise TariffError(f"day profile {self.name!r}: tier {tier} is not in 1..6")
            previous = minute

    def tier_at(self, minute: int) -> int:
        """Tier in force at ``minute`` (0..1439) of the local day."""
        tier = self.switches[0][1]
        for start, candidate in self.switches:
            if start > minute:
                break
            tier = candidate
        return tier


@dataclass(frozen=True, slots=True)
class Season:
    """A season starts on ``(month, day)`` every year and lasts until the next one starts.

    ``week`` holds the day-profile names for Monday..Sunday.
    """

    name: str
    start: tuple[int, int]
    week: tuple[str, str, str, str, str, str, str]


@dataclass(frozen=True, slots=True, eq=False)
class TouCalendar:
    """Seasons, week profiles, day profiles and the holiday profile of one tariff.

    Compared and hashed by identity, so the per-day profile cache stays cheap.
    """

    name: str
    seasons: tuple[Season, ...]
    day_profiles: tuple[DayProfile, ...]
    holiday_profile: str

    def __post_init__(self) -> None:
        names = {profile.name for profile in self.day_profiles}
        if len(names) != len(self.day_profiles):
            raise TariffError(f"calendar {self.name!r} repeats a day-profile name")
        if not self.seasons:
            raise TariffError(f"calendar {self.name!r} has no season")
        used = {self.holiday_profile} | {day for s in self.seasons for day in s.week}
        unknown = sorted(used - names)
        if unknown:
            raise TariffError(f"calendar {self.name!r} uses unknown day profiles {unknown}")

    def season_on(self, day: date) -> Season:
        """The season in force on ``day`` (the last one started, wrapping over New Year)."""
        ordered = sorted(self.seasons, key=lambda s: s.start)
        current = ordered[-1]
        for season in ordered:
            if season.start <= (day.month, day.day):
                current = season
        return current

    def day_profile_on(self, day: date) -> DayProfile:
        """Day profile of a local date: the holiday profile on Chilean holidays."""
        return _day_profile_on(self, day)

    def tier_at(self, local: datetime) -> int:
        """Tier 1..6 in force at a local wall time."""
        return self.day_profile_on(local.date()).tier_at(local.hour * 60 + local.minute)


@functools.cache
def _holidays() -> WorkingDayCalendar:
    return WorkingDayCalendar()


@functools.lru_cache(maxsize=4096)
def _day_profile_on(calendar: TouCalendar, day: date) -> DayProfile:
    by_name = {profile.name: profile for profile in calendar.day_profiles}
    if _holidays().is_holiday(day):
        return by_name[calendar.holiday_profile]
    return by_name[calendar.season_on(day).week[day.weekday()]]


_WORKDAY = ("working",) * 5

# A Chilean-style schedule: the regulated peak ("horas de punta") is 18:00-23:00 on working
# days from April to September. T1 peak, T2 working-day daytime, T3 night (also the tier a
# meter falls back to without a time reference, ONSI), T4 weekend/holiday daytime, T5
# summer working-day evening, T6 weekend/holiday evening.
CHILEAN_TOU = TouCalendar(
    name="CL-BT-TOU",
    seasons=(
        Season("summer", (1, 1), (*_WORKDAY, "weekend", "weekend")),
        Season("winter", (4, 1), (*("peak_working",) * 5, "weekend", "weekend")),
        Season("summer", (10, 1), (*_WORKDAY, "weekend", "weekend")),
    ),
    day_profiles=(
        DayProfile("working", ((0, 3), (8 * 60, 2), (18 * 60, 5), (23 * 60, 3))),
        DayProfile("peak_working", ((0, 3), (8 * 60, 2), (18 * 60, 1), (23 * 60, 3))),
        DayProfile("weekend", ((0, 3), (8 * 60, 4), (18 * 60, 6), (23 * 60, 3))),
    ),
    holiday_profile="weekend",
)
