"""The central database's time-zone and DST tables (ID-002 asks the database to hold them),
filled from the pinned tzdata so reports and other systems can read the rules the head-end
applies."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from smmc.domain.calendar import WorkingDayCalendar
from smmc.domain.time import DEFAULT_TIME_ZONE, dst_transitions, time_zone_info
from smmc.store import tables as t

CHILEAN_ZONES = (DEFAULT_TIME_ZONE, "America/Punta_Arenas", "Pacific/Easter")
FIRST_YEAR = 2015
LAST_YEAR = 2040


def refresh_time_tables(
    engine: Engine,
    zones: Iterable[str] = (),
    first_year: int = FIRST_YEAR,
    last_year: int = LAST_YEAR,
) -> int:
    """Rewrite the rows of the Chilean zones, every concentrator's zone and `zones`; returns
    the number of DST transitions stored."""
    with engine.begin() as conn:
        in_use = set(conn.execute(sa.select(t.concentrators.c.time_zone).distinct()).scalars())
        names = sorted({*CHILEAN_ZONES, *zones, *in_use})
        transitions = [
            {
                "time_zone": item.time_zone,
                "at_utc": item.at_utc,
                "offset_before_minutes": item.offset_before_minutes,
                "offset_after_minutes": item.offset_after_minutes,
                "is_dst_after": item.is_dst_after,
            }
            for name in names
            for item in dst_transitions(name, first_year, last_year)
        ]
        conn.execute(t.dst_transitions.delete().where(t.dst_transitions.c.time_zone.in_(names)))
        conn.execute(t.time_zones.delete().where(t.time_zones.c.name.in_(names)))
        conn.execute(
            t.time_zones.insert(),
            [
                {
                    "name": info.name,
                    "standard_offset_minutes": info.standard_offset_minutes,
                    "has_dst": info.has_dst,
                }
                for info in (time_zone_info(name, first_year, last_year) for name in names)
            ],
        )
        if transitions:
            conn.execute(t.dst_transitions.insert(), transitions)
    return len(transitions)


def working_day_calendar(engine: Engine, subdivision: str | None = None) -> WorkingDayCalendar:
    """The calendar with the operator's decree holidays and removals from the override table
    (national rows, plus the region's when a subdivision is given)."""
    extra: dict[date, str] = {}
    removed: list[date] = []
    c = t.holiday_overrides.c
    query = sa.select(c.day, c.is_holiday, c.name).where(
        sa.or_(c.subdivision.is_(None), c.subdivision == subdivision)
    )
    with engine.connect() as conn:
        for day, is_holiday, name in conn.execute(query):
            if is_holiday:
                extra[day] = name or "decree holiday"
            else:
                removed.append(day)
    return WorkingDayCalendar(subdivision, extra, removed)
