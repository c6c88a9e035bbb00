"""COSEM date, time and date-time (Blue Book 4.1.6.1).

Field values are kept exactly as they travel (an ``int`` per byte, ``0xFF`` — ``0xFFFF`` for
the year — meaning "not specified", ``0xFD``/``0xFE`` the DST/last-day markers), so decoding
and re-encoding is always lossless. Only ``deviation`` and ``clock_status`` use ``None`` for
"not specified" (``0x8000`` and ``0xFF`` on the wire).

Deviation follows the Blue Book: minutes *from local time to UTC*, i.e. ``UTC = local +
deviation``; a meter on UTC−4 sends ``+240``.
"""

from __future__ import annotations

import datetime as _dt
import struct
from dataclasses import dataclass
from enum import IntFlag
from typing import Final

from smmc.dlms.errors import DecodeError, EncodeError

__all__ = [
    "DEVIATION_NOT_SPECIFIED",
    "NOT_SPECIFIED",
    "YEAR_NOT_SPECIFIED",
    "ClockStatus",
    "CosemDate",
    "CosemDateTime",
    "CosemTime",
    "datetime_from_wire",
]

NOT_SPECIFIED: Final = 0xFF
YEAR_NOT_SPECIFIED: Final = 0xFFFF
DEVIATION_NOT_SPECIFIED: Final = 0x8000
DST_END: Final = 0xFD  # month: daylight saving end; day: second-to-last day of the month
DST_BEGIN: Final = 0xFE  # month: daylight saving begin; day: last day of the month


class ClockStatus(IntFlag):
    """Clock status byte: quality flags of a timestamp."""

    OK = 0x00
    INVALID_VALUE = 0x01
    DOUBTFUL_VALUE = 0x02
    DIFFERENT_CLOCK_BASE = 0x04
    INVALID_CLOCK_STATUS = 0x08
    DAYLIGHT_SAVING_ACTIVE = 0x80


# Building an IntFlag is slow; decoding profile rows creates many, so look them up instead.
_STATUS: Final[tuple[ClockStatus | None, ...]] = (
    *(ClockStatus(i) for i in range(255)),
    None,
)

_DATETIME: Final = struct.Struct(">HBBBBBBBhB")
_DATE: Final = struct.Struct(">HBBB")
_TIME: Final = struct.Struct(">BBBB")


def _check_byte(name: str, value: int) -> None:
    if not isinstance(value, int) or not 0 <= value <= 0xFF:
        raise EncodeError(f"{name} must be an integer 0..255, got {value!r}")


def _check_year(value: int) -> None:
    if not isinstance(value, int) or not 0 <= value <= 0xFFFF:
        raise EncodeError(f"year must be an integer 0..65535, got {value!r}")


def _tz_from_deviation(deviation: int) -> _dt.tzinfo:
    if deviation == 0:
        return _dt.UTC
    return _dt.timezone(_dt.timedelta(minutes=-deviation))


def _deviation_from(dt: _dt.datetime) -> int | None:
    offset = dt.utcoffset()
    if offset is None:
        return None
    return -int(offset.total_seconds() // 60)


def _status_from(dt: _dt.datetime) -> ClockStatus:
    dst = dt.dst()
    return ClockStatus.DAYLIGHT_SAVING_ACTIVE if dst else ClockStatus.OK


def _to_datetime(
    year: int,
    month: int,
    day: int,
    hour: int,
    minute: int,
    second: int,
    hundredths: int,
    deviation: int | None,
) -> _dt.datetime:
    if year == YEAR_NOT_SPECIFIED or NOT_SPECIFIED in (month, day, hour, minute, second):
        raise DecodeError("date-time has fields that are not specified")
    if hundredths == NOT_SPECIFIED:
        hundredths = 0
    if hundredths > 99:
        raise DecodeError(f"hundredths out of range: {hundredths}")
    tz = None
    if deviation is not None:
        if not -840 <= deviation <= 840:
            raise DecodeError(f"deviation out of range: {deviation}")
        tz = _tz_from_deviation(deviation)
    try:
        return _dt.datetime(year, month, day, hour, minute, second, hundredths * 10_000, tz)
    except (ValueError, OverflowError) as exc:
        raise DecodeError(f"invalid date-time: {exc}") from None


@dataclass(frozen=True, slots=True)
class CosemDateTime:
    """A COSEM date-time (12 octets)."""

    year: int
    month: int
    day: int
    weekday: int = NOT_SPECIFIED
    hour: int = 0
    minute: int = 0
    second: int = 0
    hundredths: int = 0
    deviation: int | None = None
    clock_status: ClockStatus | None = None

    LENGTH = 12

    def to_bytes(self) -> bytes:
        """Encode as the 12-octet wire form; ranges are checked (``EncodeError``)."""
        deviation = -0x8000 if self.deviation is None else self.deviation
        status = 0xFF if self.clock_status is None else self.clock_status
        try:  # struct checks every range; the slow path below only explains the failure
            return _DATETIME.pack(
                self.year,
                self.month,
                self.day,
                self.weekday,
                self.hour,
                self.minute,
                self.second,
                self.hundredths,
                deviation,
                status,
            )
        except struct.error:
            pass
        _check_year(self.year)
        for name in ("month", "day", "weekday", "hour", "minute", "second", "hundredths"):
            _check_byte(name, getattr(self, name))
        _check_byte("clock_status", int(status))
        raise EncodeError(f"deviation must fit a signed 16-bit integer, got {deviation!r}")

    @classmethod
    def from_bytes(cls, buf: bytes | bytearray | memoryview, offset: int = 0) -> CosemDateTime:
        """Decode 12 octets at ``offset``; any byte values are accepted, none is lost."""
        if offset < 0 or len(buf) - offset < 12:
            raise DecodeError("date-time needs 12 octets", offset)
        return datetime_from_wire(buf, offset)

    @classmethod
    def from_datetime(
        cls, dt: _dt.datetime, clock_status: ClockStatus | None = None
    ) -> CosemDateTime:
        """Build from a datetime; aware datetimes get their deviation (and DST flag)."""
        deviation = _deviation_from(dt)
        if clock_status is None:
            clock_status = _status_from(dt) if deviation is not None else ClockStatus.OK
        return cls(
            dt.year,
            dt.month,
            dt.day,
            dt.isoweekday(),
            dt.hour,
            dt.minute,
            dt.second,
            dt.microsecond // 10_000,
            deviation,
            clock_status,
        )

    def to_datetime(self) -> _dt.datetime:
        """Return a datetime: aware if the deviation is given, naive otherwise."""
        return _to_datetime(
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.hundredths,
            self.deviation,
        )

    @property
    def date(self) -> CosemDate:
        """The date part."""
        return CosemDate(self.year, self.month, self.day, self.weekday)

    @property
    def time(self) -> CosemTime:
        """The time part."""
        return CosemTime(self.hour, self.minute, self.second, self.hundredths)


@dataclass(frozen=True, slots=True)
class CosemDate:
    """A COSEM date (5 octets)."""

    year: int
    month: int
    day: int
    weekday: int = NOT_SPECIFIED

    LENGTH = 5

    def to_bytes(self) -> bytes:
        """Encode as 5 octets."""
        _check_year(self.year)
        _check_byte("month", self.month)
        _check_byte("day", self.day)
        _check_byte("weekday", self.weekday)
        return _DATE.pack(self.year, self.month, self.day, self.weekday)

    @classmethod
    def from_bytes(cls, buf: bytes | bytearray | memoryview, offset: int = 0) -> CosemDate:
        """Decode 5 octets at ``offset``."""
        if offset < 0 or len(buf) - offset < 5:
            raise DecodeError("date needs 5 octets", offset)
        return cls(*_DATE.unpack_from(buf, offset))

    @classmethod
    def from_date(cls, d: _dt.date) -> CosemDate:
        """Build from a date (weekday filled in)."""
        return cls(d.year, d.month, d.day, d.isoweekday())

    def to_date(self) -> _dt.date:
        """Return a date; ``DecodeError`` if a field is not specified or invalid."""
        if self.year == YEAR_NOT_SPECIFIED or NOT_SPECIFIED in (self.month, self.day):
            raise DecodeError("date has fields that are not specified")
        try:
            return _dt.date(self.year, self.month, self.day)
        except ValueError as exc:
            raise DecodeError(f"invalid date: {exc}") from None


@dataclass(frozen=True, slots=True)
class CosemTime:
    """A COSEM time (4 octets)."""

    hour: int
    minute: int = 0
    second: int = 0
    hundredths: int = 0

    LENGTH = 4

    def to_bytes(self) -> bytes:
        """Encode as 4 octets."""
        _check_byte("hour", self.hour)
        _check_byte("minute", self.minute)
        _check_byte("second", self.second)
        _check_byte("hundredths", self.hundredths)
        return _TIME.pack(self.hour, self.minute, self.second, self.hundredths)

    @classmethod
    def from_bytes(cls, buf: bytes | bytearray | memoryview, offset: int = 0) -> CosemTime:
        """Decode 4 octets at ``offset``."""
        if offset < 0 or len(buf) - offset < 4:
            raise DecodeError("time needs 4 octets", offset)
        return cls(*_TIME.unpack_from(buf, offset))

    @classmethod
    def from_time(cls, t: _dt.time) -> CosemTime:
        """Build from a time."""
        return cls(t.hour, t.minute, t.second, t.microsecond // 10_000)

    def to_time(self) -> _dt.time:
        """Return a naive time; ``DecodeError`` if a field is not specified or invalid."""
        if NOT_SPECIFIED in (self.hour, self.minute, self.second):
            raise DecodeError("time has fields that are not specified")
        hs = 0 if self.hundredths == NOT_SPECIFIED else self.hundredths
        try:
            return _dt.time(self.hour, self.minute, self.second, hs * 10_000)
        except ValueError as exc:
            raise DecodeError(f"invalid time: {exc}") from None


_new = object.__new__
(_s_year, _s_month, _s_day, _s_weekday, _s_hour, _s_minute, _s_second, _s_hundredths,
 _s_deviation, _s_status) = (
    CosemDateTime.__dict__[name].__set__
    for name in ("year", "month", "day", "weekday", "hour", "minute", "second", "hundredths",
                 "deviation", "clock_status")
)  # fmt: skip


def datetime_from_wire(buf: bytes | bytearray | memoryview, offset: int) -> CosemDateTime:
    """Decode 12 octets known to be present; the hot path of load-profile decoding.

    Builds the frozen dataclass through its slot descriptors, which is about twice as
    fast as ``__init__`` (each row of a profile carries a date-time).
    """
    y, mo, d, wd, h, mi, s, hs, dev, st = _DATETIME.unpack_from(buf, offset)
    o: CosemDateTime = _new(CosemDateTime)
    _s_year(o, y)
    _s_month(o, mo)
    _s_day(o, d)
    _s_weekday(o, wd)
    _s_hour(o, h)
    _s_minute(o, mi)
    _s_second(o, s)
    _s_hundredths(o, hs)
    _s_deviation(o, None if dev == -0x8000 else dev)
    _s_status(o, _STATUS[st])
    return o
