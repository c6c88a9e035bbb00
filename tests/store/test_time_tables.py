from datetime import UTC, date, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from smmc.store import tables as t
from smmc.store.time_tables import refresh_time_tables, working_day_calendar


def test_time_tables_hold_the_chilean_rules(db: Engine) -> None:
    with db.begin() as conn:
        conn.execute(t.concentrators.insert().values(name="TD-1", time_zone="Europe/Madrid"))
    stored = refresh_time_tables(db, first_year=2022, last_year=2025)
    assert refresh_time_tables(db, first_year=2022, last_year=2025) == stored
    with db.connect() as conn:
        zones = {row.name: row for row in conn.execute(sa.select(t.time_zones))}
        santiago = conn.execute(
            sa.select(t.dst_transitions)
            .where(t.dst_transitions.c.time_zone == "America/Santiago")
            .order_by(t.dst_transitions.c.at_utc)
        ).all()
    assert zones["America/Santiago"].has_dst
    assert zones["America/Santiago"].standard_offset_minutes == -240
    assert not zones["America/Punta_Arenas"].has_dst
    assert "Europe/Madrid" in zones, "a concentrator's zone gets its rows too"
    # 2022: clocks went forward on 11 September (not the usual first Sunday, 4 September).
    spring_2022 = [r for r in santiago if r.at_utc.year == 2022 and r.at_utc.month == 9]
    assert [(r.at_utc, r.offset_before_minutes, r.offset_after_minutes) for r in spring_2022] == [
        (datetime(2022, 9, 11, 4, 0, tzinfo=UTC), -240, -180)
    ]
    assert len(santiago) == 8


def test_calendar_applies_the_override_table(db: Engine) -> None:
    decree = date(2025, 6, 10)
    with db.begin() as conn:
        conn.execute(
            t.holiday_overrides.insert(),
            [
                {"day": decree, "subdivision": None, "is_holiday": True, "name": "Decreto"},
                {"day": date(2025, 12, 25), "subdivision": None, "is_holiday": False, "name": None},
                {"day": date(2025, 6, 11), "subdivision": "AP", "is_holiday": True, "name": None},
            ],
        )
    national = working_day_calendar(db)
    assert not national.is_working_day(decree)
    assert national.holiday_name(decree) == "Decreto"
    assert national.is_working_day(date(2025, 12, 25))
    assert national.is_working_day(date(2025, 6, 11))
    assert not working_day_calendar(db, "AP").is_working_day(date(2025, 6, 11))
