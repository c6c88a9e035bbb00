"""Interface class 8 (Clock): time source, drift, zone, adjustments."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smmc.dlms.axdr import Data
from smmc.dlms.cosem.base import CosemAccessError, LogicalDevice
from smmc.dlms.cosem.clock import Clock
from smmc.dlms.cosem_time import ClockStatus, CosemDateTime

SANTIAGO = ZoneInfo("America/Santiago")
# 2026-01-15 is summer in Santiago (UTC-3), 2026-07-15 winter (UTC-4).
SUMMER = dt.datetime(2026, 1, 15, 15, 7, 31, tzinfo=dt.UTC)
WINTER = dt.datetime(2026, 7, 15, 15, 7, 31, tzinfo=dt.UTC)


class FakeTime:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def _clock(now: dt.datetime = WINTER) -> tuple[Clock, FakeTime]:
    source = FakeTime(now)
    return Clock(tz=SANTIAGO, time_source=source), source


def _time(clock: Clock) -> CosemDateTime:
    raw = clock.get(2).value
    assert isinstance(raw, bytes)
    return CosemDateTime.from_bytes(raw)


def test_time_is_local_with_deviation() -> None:
    clock, _ = _clock(WINTER)
    t = _time(clock)
    assert (t.hour, t.minute, t.deviation) == (11, 7, 240)
    assert t.clock_status == ClockStatus.OK
    assert t.to_datetime() == WINTER


def test_summer_time_sets_dst_flag() -> None:
    clock, _ = _clock(SUMMER)
    t = _time(clock)
    assert (t.hour, t.deviation) == (12, 180)
    assert t.clock_status == ClockStatus.DAYLIGHT_SAVING_ACTIVE
    assert clock.get(4) == Data.unsigned(0x80)


def test_time_zone_attribute_is_standard_offset() -> None:
    clock, _ = _clock(SUMMER)
    assert clock.get(3) == Data.long(240)
    assert clock.get(8) == Data.boolean(True)
    assert Clock(time_source=FakeTime(SUMMER)).get(8) == Data.boolean(False)


def test_time_source_advances() -> None:
    clock, source = _clock()
    source.now += dt.timedelta(minutes=5)
    assert _time(clock).minute == 12


@given(st.integers(-86_400, 86_400))
def test_drift_then_set_time_realigns(seconds: int) -> None:
    clock, _ = _clock()
    clock.drift(dt.timedelta(seconds=seconds))
    assert clock.utc_now() == WINTER + dt.timedelta(seconds=seconds)
    clock.set(2, Data.octet_string(CosemDateTime.from_datetime(WINTER).to_bytes()))
    assert clock.utc_now() == WINTER


def test_set_naive_time_is_local() -> None:
    clock, _ = _clock()
    naive = CosemDateTime(2026, 7, 15, 3, 10, 0, 0, 0, None, None)
    clock.set(2, Data.octet_string(naive.to_bytes()))
    assert clock.utc_now() == dt.datetime(2026, 7, 15, 14, 0, tzinfo=dt.UTC)


def test_set_time_clears_invalid_flag() -> None:
    clock, _ = _clock()
    clock.status_flags = ClockStatus.INVALID_VALUE
    assert _time(clock).clock_status == ClockStatus.INVALID_VALUE
    clock.set(2, Data.date_time(CosemDateTime.from_datetime(WINTER)))
    assert _time(clock).clock_status == ClockStatus.OK


def test_set_unspecified_time_rejected() -> None:
    clock, _ = _clock()
    with pytest.raises(CosemAccessError) as exc:
        clock.set(2, Data.octet_string(b"\xff" * 12))
    assert exc.value.result == 250
    with pytest.raises(CosemAccessError) as exc:
        clock.set(2, Data.octet_string(b"\x00" * 3))
    assert exc.value.result == 12


def test_adjust_to_quarter_and_minute() -> None:
    clock, _ = _clock(dt.datetime(2026, 7, 15, 15, 7, 31, tzinfo=dt.UTC))
    clock.action(3, Data.integer(0))
    assert clock.utc_now() == dt.datetime(2026, 7, 15, 15, 8, tzinfo=dt.UTC)
    clock.action(1, Data.integer(0))
    assert clock.utc_now() == dt.datetime(2026, 7, 15, 15, 15, tzinfo=dt.UTC)
    clock.drift(dt.timedelta(minutes=-8))
    clock.action(1, Data.integer(0))
    assert clock.utc_now() == dt.datetime(2026, 7, 15, 15, 0, tzinfo=dt.UTC)


def test_shift_time_bounds() -> None:
    clock, _ = _clock()
    clock.action(6, Data.long(-900))
    assert clock.utc_now() == WINTER - dt.timedelta(minutes=15)
    with pytest.raises(CosemAccessError) as exc:
        clock.action(6, Data.long(901))
    assert exc.value.result == 250
    with pytest.raises(CosemAccessError) as exc:
        clock.action(6, Data.integer(1))
    assert exc.value.result == 12


def test_preset_adjusting_time() -> None:
    clock, _ = _clock()
    with pytest.raises(CosemAccessError):
        clock.action(4, Data.integer(0))
    preset = WINTER + dt.timedelta(hours=1)

    def stamp(when: dt.datetime) -> Data:
        return Data.octet_string(CosemDateTime.from_datetime(when).to_bytes())

    params = Data.structure((stamp(preset), stamp(WINTER - dt.timedelta(minutes=1)), stamp(preset)))
    clock.action(5, params)
    clock.action(4, Data.integer(0))
    assert clock.utc_now() == preset
    clock.action(5, Data.structure((stamp(preset), stamp(preset), stamp(preset))))
    clock.drift(dt.timedelta(hours=2))
    with pytest.raises(CosemAccessError, match="outside"):
        clock.action(4, Data.integer(0))


def test_dst_attributes_stored() -> None:
    clock, _ = _clock()
    begin = CosemDateTime(0xFFFF, 9, 1, 7, 0, 0, 0, 0xFF, None, None)
    clock.set(5, Data.octet_string(begin.to_bytes()))
    assert clock.get(5).value == begin.to_bytes()
    clock.set(7, Data.integer(60))
    with pytest.raises(CosemAccessError):
        clock.set(4, Data.unsigned(0))
    with pytest.raises(CosemAccessError):
        clock.set(3, Data.integer(1))


def test_binds_as_device_time_source() -> None:
    clock, _ = _clock()
    device = LogicalDevice()
    device.add(clock)
    assert device.now() == clock.cosem_now()
