"""Chilean working-day calendar: disconnect/connect orders run on working days only.

National and regional holidays come from the ``holidays`` package; decree holidays and moved
holidays come from the operator's override table and are passed in as two arguments.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, timedelta
from types import MappingProxyType

import holidays

__all__ = ["CHILE_SUBDIVISIONS", "WorkingDayCalendar"]

CHILE_SUBDIVISIONS: tuple[str, ...] = tuple(holidays.country_holidays("CL").subdivisions)

_NO_EXTRA_HOLIDAYS: Mapping[date, str] = MappingProxyType({})
_ONE_DAY = timedelta(days=1)


class WorkingDayCalendar:
    """Holidays and working days (Monday to Friday, not a holiday) for Chile or one region.

    ``subdivision`` is a region code such as "AP" (Arica y Parinacota) or "NB" (Ñuble);
    ``extra_holidays`` adds decree holidays (date → name) and ``removed_holidays`` drops
    library holidays (a holiday moved by law is one removal plus one addition). A date may
    not be both added and removed.
    """

    def __init__(
        self,
        subdivision: str | None = None,
        extra_holidays: Mapping[date, str] = _NO_EXTRA_HOLIDAYS,
        removed_holidays: Iterable[date] = (),
    ) -> None:
        if subdivision is not None and subdivision not in CHILE_SUBDIVISIONS:
            raise ValueError(
                f"unknown Chilean subdivision {subdivision!r}; "
                f"expected one of {', '.join(CHILE_SUBDIVISIONS)} or none for national only"
            )
        self.subdivision = subdivision
        self._extra = dict(extra_holidays)
        self._removed = frozenset(removed_holidays)
        both = sorted(self._extra.keys() & self._removed)
        if both:
            listed = ", ".join(day.isoformat() for day in both)
            raise ValueError(f"dates both added and removed as holidays: {listed}")
        self._library = holidays.country_holidays("CL", subdiv=subdivision)

    def holiday_name(self, day: date) -> str | None:
        """Name of the holiday on ``day`` (override first), or None on an ordinary day."""
        if day in self._extra:
            return self._extra[day]
        if day in self._removed:
            return None
        name = self._library.get(day)
        return None if name is None else str(name)

    def is_holiday(self, day: date) -> bool:
        """True on a national, regional or decree holiday that was not removed."""
        return self.holiday_name(day) is not None

    def is_working_day(self, day: date) -> bool:
        """Monday to Friday and not a holiday."""
        return day.weekday() < 5 and not self.is_holiday(day)

    def next_working_day(self, day: date, *, include_today: bool = False) -> date:
        """First working day after ``day`` (or ``day`` itself when allowed and working)."""
        candidate = day if include_today else day + _ONE_DAY
        while not self.is_working_day(candidate):
            candidate += _ONE_DAY
        return candidate

    def working_days_between(self, start: date, end: date) -> int:
        """Working days in ``[start, end)``; negative when ``end`` is before ``start``."""
        if end < start:
            return -self.working_days_between(end, start)
        count = 0
        day = start
        while day < end:
            count += self.is_working_day(day)
            day += _ONE_DAY
        return count
