"""Interface class 20, Activity calendar: time-of-use seasons, weeks and day schedules.

Besides the COSEM attributes, ``active_action(local)`` answers "which script and script
selector (tariff T1..T6) is in force at this local time", and ``apply(local)`` runs the
selected script on the device when it changes, which is how a meter model switches tariffs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, TypeVar

from smmc.dlms.axdr import Data, DataTag
from smmc.dlms.cosem.base import (
    AccessResult,
    CosemAccessError,
    CosemObject,
    SelectiveAccessDescriptor,
    expect_bytes,
    expect_int,
    expect_items,
    obis_from,
)
from smmc.dlms.cosem.extended_register import (
    UNSPECIFIED_DATE_TIME,
    date_time_value,
    decode_date_time,
)
from smmc.dlms.cosem_time import NOT_SPECIFIED, YEAR_NOT_SPECIFIED, CosemDateTime, CosemTime
from smmc.dlms.errors import DecodeError
from smmc.dlms.obis import Obis

__all__ = [
    "ACTIVITY_CALENDAR_OBIS",
    "ActivityCalendar",
    "Calendar",
    "DayAction",
    "DayProfile",
    "Season",
    "WeekProfile",
]

ACTIVITY_CALENDAR_OBIS = Obis(0, 0, 13, 0, 0, 255)

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Season:
    """A season: from ``start`` (year may be unspecified: every year) it uses ``week``."""

    name: bytes
    start: CosemDateTime
    week: bytes

    def to_data(self) -> Data:
        """season_profile element."""
        return Data.structure(
            (
                Data.octet_string(self.name),
                date_time_value(self.start),
                Data.octet_string(self.week),
            )
        )

    @classmethod
    def from_data(cls, value: Data) -> Season:
        """Parse a season_profile element."""
        name, start, week = expect_items(value, DataTag.STRUCTURE, 3, "season_profile")
        return cls(
            expect_bytes(name, "season_profile_name"),
            decode_date_time(start),
            expect_bytes(week, "week_name"),
        )

    def start_in(self, year: int) -> dt.datetime | None:
        """The naive local start of this season in ``year`` (None if it has a fixed other year)."""
        s = self.start
        if s.year not in (YEAR_NOT_SPECIFIED, year):
            return None

        def field_or(value: int, default: int) -> int:
            return default if value == NOT_SPECIFIED else value

        try:
            return dt.datetime(
                year,
                field_or(s.month, 1),
                field_or(s.day, 1),
                field_or(s.hour, 0),
                field_or(s.minute, 0),
                field_or(s.second, 0),
            )
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class WeekProfile:
    """A week: the day_id used on each weekday, Monday first."""

    name: bytes
    days: tuple[int, int, int, int, int, int, int]

    def to_data(self) -> Data:
        """week_profile element."""
        return Data.structure(
            (Data.octet_string(self.name), *(Data.unsigned(d) for d in self.days))
        )

    @classmethod
    def from_data(cls, value: Data) -> WeekProfile:
        """Parse a week_profile element."""
        name, *days = expect_items(value, DataTag.STRUCTURE, 8, "week_profile")
        d = [expect_int(x, DataTag.UNSIGNED, what="day_id") for x in days]
        return cls(
            expect_bytes(name, "week_profile_name"), (d[0], d[1], d[2], d[3], d[4], d[5], d[6])
        )


@dataclass(frozen=True, slots=True)
class DayAction:
    """From ``start`` on, run ``script`` with ``selector`` (the tariff number)."""

    start: CosemTime
    script: Obis
    selector: int

    def to_data(self) -> Data:
        """day_profile_action element."""
        return Data.structure(
            (
                Data.octet_string(self.start.to_bytes()),
                Data.octet_string(self.script.to_bytes()),
                Data.long_unsigned(self.selector),
            )
        )

    @classmethod
    def from_data(cls, value: Data) -> DayAction:
        """Parse a day_profile_action element."""
        start, script, selector = expect_items(value, DataTag.STRUCTURE, 3, "day_profile_action")
        if start.tag is DataTag.TIME and isinstance(start.value, CosemTime):
            at = start.value
        else:
            at = CosemTime.from_bytes(expect_bytes(start, "start_time", 4))
        return cls(at, obis_from(script), expect_int(selector, DataTag.LONG_UNSIGNED))

    def seconds(self) -> int:
        """Seconds after midnight (unspecified fields count as 0)."""
        t = self.start

        def f(v: int) -> int:
            return 0 if v == NOT_SPECIFIED else v

        return f(t.hour) * 3600 + f(t.minute) * 60 + f(t.second)


@dataclass(frozen=True, slots=True)
class DayProfile:
    """A day schedule."""

    day_id: int
    actions: tuple[DayAction, ...]

    def to_data(self) -> Data:
        """day_profile element."""
        return Data.structure(
            (Data.unsigned(self.day_id), Data.array(a.to_data() for a in self.actions))
        )

    @classmethod
    def from_data(cls, value: Data) -> DayProfile:
        """Parse a day_profile element."""
        day_id, actions = expect_items(value, DataTag.STRUCTURE, 2, "day_profile")
        return cls(
            expect_int(day_id, DataTag.UNSIGNED, what="day_id"),
            tuple(
                DayAction.from_data(a)
                for a in expect_items(actions, DataTag.ARRAY, None, "day_schedule")
            ),
        )


@dataclass(frozen=True, slots=True)
class Calendar:
    """One calendar (the active or the passive one)."""

    name: bytes = b""
    seasons: tuple[Season, ...] = ()
    weeks: tuple[WeekProfile, ...] = ()
    days: tuple[DayProfile, ...] = ()

    def _season(self, local: dt.datetime) -> Season | None:
        best: tuple[dt.datetime, Season] | None = None
        for year in (local.year - 1, local.year):
            for season in self.seasons:
                start = season.start_in(year)
                if start is not None and start <= local and (best is None or start >= best[0]):
                    best = (start, season)
        return None if best is None else best[1]

    def _day(self, local: dt.datetime) -> DayProfile | None:
        season = self._season(local)
        if season is None:
            return None
        week = next((w for w in self.weeks if w.name == season.week), None)
        if week is None:
            return None
        day_id = week.days[local.weekday()]
        return next((d for d in self.days if d.day_id == day_id), None)

    def action_at(self, local: dt.datetime) -> DayAction | None:
        """The day action in force at naive local time ``local``.

        Before the first action of a day the previous day's last action still applies.
        """
        local = local.replace(tzinfo=None)
        day = self._day(local)
        seconds = local.hour * 3600 + local.minute * 60 + local.second
        if day is not None:
            started = [a for a in day.actions if a.seconds() <= seconds]
            if started:
                return max(started, key=DayAction.seconds)
        before = self._day(local.replace(hour=0, minute=0, second=0) - dt.timedelta(seconds=1))
        if before is None or not before.actions:
            return None
        return max(before.actions, key=DayAction.seconds)


class ActivityCalendar(CosemObject):
    """IC 20 v0: calendar_name/season_profile/week_profile_table/day_profile_table, active
    (2-5) and passive (6-9); activate_passive_calendar_time (10); method
    activate_passive_calendar (1).
    """

    CLASS_ID: ClassVar[int] = 20
    VERSION: ClassVar[int] = 0
    ATTRIBUTE_COUNT: ClassVar[int] = 10
    METHOD_COUNT: ClassVar[int] = 1

    def __init__(
        self,
        logical_name: Obis = ACTIVITY_CALENDAR_OBIS,
        active: Calendar | None = None,
        passive: Calendar | None = None,
        activation_time: CosemDateTime | None = None,
    ) -> None:
        super().__init__(logical_name)
        self.active = active or Calendar()
        self.passive = passive or Calendar()
        self.activation_time = activation_time or UNSPECIFIED_DATE_TIME
        self._applied: tuple[Obis, int] | None = None

    def active_action(self, local: dt.datetime) -> DayAction | None:
        """The script and selector the active calendar selects at this local time."""
        return self.active.action_at(local)

    def active_tariff(self, local: dt.datetime) -> int | None:
        """The script selector (tariff number) in force at this local time."""
        action = self.active_action(local)
        return None if action is None else action.selector

    def apply(self, local: dt.datetime) -> DayAction | None:
        """Activate the passive calendar if due, then run the script in force if it changed."""
        self._activate_if_due(local)
        action = self.active_action(local)
        selected = None if action is None else (action.script, action.selector)
        if action is not None and selected != self._applied and self.device is not None:
            self.device.action(9, action.script, 1, Data.long_unsigned(action.selector))
        self._applied = selected
        return action

    def _activate_if_due(self, local: dt.datetime) -> None:
        try:
            due = self.activation_time.to_datetime().replace(tzinfo=None)
        except DecodeError:
            return
        if due <= local.replace(tzinfo=None):
            self.activate_passive()

    def activate_passive(self) -> None:
        """Method 1: the passive calendar becomes active (the passive one is kept)."""
        self.active = self.passive
        self.activation_time = UNSPECIFIED_DATE_TIME
        self._applied = None

    def _get(self, attribute: int, selective_access: SelectiveAccessDescriptor | None) -> Data:
        if attribute == 10:
            return date_time_value(self.activation_time)
        calendar = self.active if attribute <= 5 else self.passive
        part = (attribute - 2) % 4
        if part == 0:
            return Data.octet_string(calendar.name)
        if part == 1:
            return Data.array(s.to_data() for s in calendar.seasons)
        if part == 2:
            return Data.array(w.to_data() for w in calendar.weeks)
        return Data.array(d.to_data() for d in calendar.days)

    def _set(self, attribute: int, value: Data) -> None:
        if attribute <= 5:
            raise CosemAccessError(
                AccessResult.READ_WRITE_DENIED, "the active calendar changes by activation only"
            )
        if attribute == 10:
            self.activation_time = decode_date_time(value, "activate_passive_calendar_time")
            return
        p = self.passive
        if attribute == 6:
            self.passive = Calendar(
                expect_bytes(value, "calendar_name"), p.seasons, p.weeks, p.days
            )
        elif attribute == 7:
            seasons = _items(value, Season.from_data, "season_profile")
            self.passive = Calendar(p.name, seasons, p.weeks, p.days)
        elif attribute == 8:
            weeks = _items(value, WeekProfile.from_data, "week_profile_table")
            self.passive = Calendar(p.name, p.seasons, weeks, p.days)
        else:
            days = _items(value, DayProfile.from_data, "day_profile_table")
            self.passive = Calendar(p.name, p.seasons, p.weeks, days)

    def _action(self, method: int, parameters: Data | None) -> Data | None:
        self.activate_passive()
        return None


def _items(value: Data, parse: Callable[[Data], _T], what: str) -> tuple[_T, ...]:
    return tuple(parse(v) for v in expect_items(value, DataTag.ARRAY, None, what))
