"""COSEM date-time: wire form, "not specified" fields, deviation sign, datetime conversion."""

from __future__ import annotations

import contextlib
import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smmc.dlms.cosem_time import ClockStatus, CosemDate, CosemDateTime, CosemTime
from smmc.dlms.errors import DecodeError, EncodeError

h = bytes.fromhex


def test_known_bytes() -> None:
    value = CosemDateTime(2024, 1, 15, 1, 10, 0, 0, 0, 240, ClockStatus.OK)
    assert value.to_bytes() == h("07e8010f010a00000000f000")
    assert CosemDateTime.from_bytes(value.to_bytes()) == value


def test_not_specified_fields() -> None:
    raw = h("ffffffffffffffffff8000ff")
    value = CosemDateTime.from_bytes(raw)
    assert value.year == 0xFFFF
    assert value.month == value.hour == value.hundredths == 0xFF
    assert value.deviation is None
    assert value.clock_status is None
    assert value.to_bytes() == raw
    with pytest.raises(DecodeError):
        value.to_datetime()


def test_deviation_is_minutes_from_local_to_utc() -> None:
    # UTC−4 local time: deviation +240 (Blue Book convention).
    value = CosemDateTime(2024, 1, 15, 1, 10, 0, 0, 0, 240, ClockStatus.OK)
    as_dt = value.to_datetime()
    assert as_dt.utcoffset() == dt.timedelta(hours=-4)
    assert as_dt.astimezone(dt.UTC) == dt.datetime(2024, 1, 15, 14, 0, tzinfo=dt.UTC)


def test_from_aware_datetime_santiago_dst() -> None:
    santiago = ZoneInfo("America/Santiago")
    summer = dt.datetime(2024, 1, 15, 10, 0, 0, 500_000, tzinfo=santiago)  # UTC−3, DST
    value = CosemDateTime.from_datetime(summer)
    assert value.deviation == 180
    assert value.clock_status == ClockStatus.DAYLIGHT_SAVING_ACTIVE
    assert value.weekday == 1
    assert value.hundredths == 50
    assert value.to_datetime() == summer
    winter = dt.datetime(2024, 7, 15, 10, 0, tzinfo=santiago)  # UTC−4, standard time
    value = CosemDateTime.from_datetime(winter)
    assert value.deviation == 240
    assert value.clock_status == ClockStatus.OK


def test_naive_datetime_has_no_deviation() -> None:
    value = CosemDateTime.from_datetime(dt.datetime(2024, 2, 29, 23, 59, 59))
    assert value.deviation is None
    assert value.to_datetime() == dt.datetime(2024, 2, 29, 23, 59, 59)
    assert value.to_datetime().tzinfo is None
    assert value.to_bytes()[9:11] == b"\x80\x00"


def test_unspecified_hundredths_read_as_zero() -> None:
    value = CosemDateTime(2024, 5, 1, 0xFF, 12, 0, 0, 0xFF, 0)
    assert value.to_datetime() == dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "value",
    [
        CosemDateTime(2024, 2, 30, 0xFF, 0, 0, 0, 0, 0),
        CosemDateTime(2024, 0xFE, 1, 0xFF, 0, 0, 0, 0, 0),  # DST-begin marker
        CosemDateTime(2024, 1, 1, 0xFF, 24, 0, 0, 0, 0),
        CosemDateTime(2024, 1, 1, 0xFF, 0, 0, 0, 150, 0),
        CosemDateTime(2024, 1, 1, 0xFF, 0, 0, 0, 0, 5000),
    ],
)
def test_invalid_fields_raise_decode_error_on_conversion(value: CosemDateTime) -> None:
    with pytest.raises(DecodeError):
        value.to_datetime()


def test_encode_range_checks() -> None:
    with pytest.raises(EncodeError):
        CosemDateTime(70000, 1, 1).to_bytes()
    with pytest.raises(EncodeError):
        CosemDateTime(2024, 256, 1).to_bytes()
    with pytest.raises(EncodeError):
        CosemDateTime(2024, 1, 1, deviation=40000).to_bytes()


def test_truncated() -> None:
    with pytest.raises(DecodeError):
        CosemDateTime.from_bytes(b"\x07\xe8")
    with pytest.raises(DecodeError):
        CosemDate.from_bytes(b"\x07\xe8\x01\x01")
    with pytest.raises(DecodeError):
        CosemTime.from_bytes(b"\x01\x02\x03")


def test_date_and_time() -> None:
    d = CosemDate.from_date(dt.date(2024, 12, 25))
    assert d.to_bytes() == h("07e80c1903")
    assert CosemDate.from_bytes(d.to_bytes()).to_date() == dt.date(2024, 12, 25)
    t = CosemTime.from_time(dt.time(6, 30, 15, 120_000))
    assert t.to_bytes() == h("061e0f0c")
    assert CosemTime.from_bytes(t.to_bytes()).to_time() == dt.time(6, 30, 15, 120_000)
    assert CosemTime(0xFF, 0, 0, 0).to_bytes() == h("ff000000")
    with pytest.raises(DecodeError):
        CosemTime(0xFF).to_time()
    with pytest.raises(DecodeError):
        CosemDate(0xFFFF, 1, 1).to_date()
    dtm = CosemDateTime(2024, 12, 25, 3, 6, 30, 15, 12, 0)
    assert dtm.date == CosemDate(2024, 12, 25, 3)
    assert dtm.time == CosemTime(6, 30, 15, 12)


@given(st.binary(min_size=12, max_size=12))
def test_any_twelve_bytes_round_trip(raw: bytes) -> None:
    value = CosemDateTime.from_bytes(raw)
    assert value.to_bytes() == raw
    with contextlib.suppress(DecodeError):
        value.to_datetime()


@given(
    st.datetimes(
        min_value=dt.datetime(1990, 1, 1),
        max_value=dt.datetime(2100, 1, 1),
        timezones=st.sampled_from([dt.UTC, ZoneInfo("America/Santiago"), ZoneInfo("Asia/Kolkata")]),
    )
)
def test_aware_datetimes_round_trip(value: dt.datetime) -> None:
    value = value.replace(microsecond=value.microsecond // 10_000 * 10_000)
    back = CosemDateTime.from_bytes(CosemDateTime.from_datetime(value).to_bytes()).to_datetime()
    # compare in UTC: PEP 495 makes inter-zone == false for ambiguous wall times
    assert back.astimezone(dt.UTC) == value.astimezone(dt.UTC)
    assert back.utcoffset() == value.utcoffset()
