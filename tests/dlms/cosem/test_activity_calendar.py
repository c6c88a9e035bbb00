"""Interface class 20 (Activity calendar): attributes and "which tariff is active now"."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smmc.dlms.axdr import Data
from smmc.dlms.cosem.activity_calendar import (
    ActivityCalendar,
    Calendar,
    DayAction,
    DayProfile,
    Season,
    WeekProfile,
)
from smmc.dlms.cosem.base import CosemAccessError, LogicalDevice
from smmc.dlms.cosem.script_table import Script, ScriptTable
from smmc.dlms.cosem_time import CosemDateTime, CosemTime
from smmc.dlms.obis import Obis

TARIFFS = Obis.parse("0.0.10.0.100.255")
ANY = 0xFF


def _at(hour: int, minute: int, selector: int) -> DayAction:
    return DayAction(CosemTime(hour, minute, 0, 0), TARIFFS, selector)


def _yearly(month: int, day: int) -> CosemDateTime:
    return CosemDateTime(0xFFFF, month, day, ANY, 0, 0, 0, ANY, None, None)


CALENDAR = Calendar(
    b"TOU-2026",
    (
        Season(b"SUMMER", _yearly(10, 1), b"W-SUMMER"),
        Season(b"WINTER", _yearly(4, 1), b"W-WINTER"),
    ),
    (
        WeekProfile(b"W-SUMMER", (1, 1, 1, 1, 1, 2, 2)),
        WeekProfile(b"W-WINTER", (3, 3, 3, 3, 3, 2, 2)),
    ),
    (
        DayProfile(1, (_at(0, 0, 3), _at(7, 0, 1), _at(18, 0, 2), _at(23, 0, 3))),
        DayProfile(2, (_at(0, 0, 3),)),
        DayProfile(3, (_at(8, 0, 1), _at(18, 0, 2), _at(22, 0, 4))),
    ),
)


@pytest.mark.parametrize(
    ("when", "tariff"),
    [
        (dt.datetime(2026, 1, 14, 10, 0), 1),  # Wednesday, summer season from last October
        (dt.datetime(2026, 1, 14, 6, 59), 3),
        (dt.datetime(2026, 1, 14, 18, 0), 2),
        (dt.datetime(2026, 1, 14, 23, 30), 3),
        (dt.datetime(2026, 1, 17, 12, 0), 3),  # Saturday
        (dt.datetime(2026, 7, 15, 12, 0), 1),  # winter weekday
        (dt.datetime(2026, 7, 15, 22, 15), 4),
        (dt.datetime(2026, 7, 15, 7, 0), 4),  # before 08:00: Tuesday's last action
        (dt.datetime(2026, 7, 13, 7, 0), 3),  # Monday early: Sunday's (day 2) action
        (dt.datetime(2026, 4, 1, 0, 0), 3),  # season switch instant (Wednesday, day 3)
    ],
)
def test_active_tariff(when: dt.datetime, tariff: int) -> None:
    cal = ActivityCalendar(active=CALENDAR)
    assert cal.active_tariff(when) == tariff


def test_aware_time_uses_its_wall_clock() -> None:
    cal = ActivityCalendar(active=CALENDAR)
    local = dt.datetime(2026, 1, 14, 7, 30, tzinfo=dt.timezone(dt.timedelta(hours=-3)))
    assert cal.active_tariff(local) == 1


def test_empty_calendar_has_no_tariff() -> None:
    assert ActivityCalendar().active_tariff(dt.datetime(2026, 1, 1)) is None


def test_apply_runs_script_on_change_only() -> None:
    ran: list[int] = []
    device = LogicalDevice()
    device.add(ScriptTable(TARIFFS, [Script(i) for i in range(1, 5)], on_execute=ran.append))
    cal = device.add(ActivityCalendar(active=CALENDAR))
    for hour in (6, 7, 8, 18, 19):
        cal.apply(dt.datetime(2026, 1, 14, hour, 0))
    assert ran == [3, 1, 2]


def test_attributes_round_trip_through_passive_and_activation() -> None:
    source = ActivityCalendar(active=CALENDAR)
    target = ActivityCalendar()
    for active_attr in range(2, 6):
        target.set(active_attr + 4, source.get(active_attr))
    assert target.passive == CALENDAR
    assert target.active == Calendar()
    target.action(1, Data.integer(0))
    assert target.active == CALENDAR
    assert target.get(3) == source.get(3)


def test_active_calendar_not_writable_and_malformed_rejected() -> None:
    cal = ActivityCalendar()
    with pytest.raises(CosemAccessError) as exc:
        cal.set(2, Data.octet_string(b"x"))
    assert exc.value.result == 3
    with pytest.raises(CosemAccessError) as exc:
        cal.set(8, Data.array((Data.structure((Data.octet_string(b"W"),)),)))
    assert exc.value.result == 12
    with pytest.raises(CosemAccessError):
        cal.set(9, Data.array((Data.structure((Data.unsigned(1), Data.array(
            (Data.structure((Data.octet_string(b"\x00"), Data.octet_string(TARIFFS.to_bytes()),
                             Data.long_unsigned(1))),)
        ))),)))  # fmt: skip


def test_activation_time_activates_passive_when_due() -> None:
    cal = ActivityCalendar(passive=CALENDAR)
    due = CosemDateTime(2026, 3, 1, ANY, 0, 0, 0, 0, None, None)
    cal.set(10, Data.octet_string(due.to_bytes()))
    assert cal.get(10) == Data.octet_string(due.to_bytes())
    assert cal.apply(dt.datetime(2026, 2, 28, 12, 0)) is None
    assert cal.active == Calendar()
    assert cal.apply(dt.datetime(2026, 3, 4, 12, 0)) == _at(7, 0, 1)
    assert cal.active == CALENDAR
    assert cal.get(10).value == b"\xff\xff" + b"\xff" * 7 + b"\x80\x00\xff"


@given(st.datetimes(min_value=dt.datetime(2001, 1, 1), max_value=dt.datetime(2099, 12, 31)))
def test_tariff_is_always_one_of_the_schedules(when: dt.datetime) -> None:
    tariff = ActivityCalendar(active=CALENDAR).active_tariff(when)
    assert tariff in {1, 2, 3, 4}
    if when.weekday() >= 5:
        assert tariff == 3
