"""Interface class 8, Clock: the meter's time, with drift and adjustments a simulator controls.

The clock keeps an offset from an injectable UTC time source, so a simulated meter can run
fast or slow (``drift``) and a client can correct it (SET time, ``shift_time``, the adjust
methods). Local time follows a ``tzinfo`` (e.g. ``ZoneInfo("America/Santiago")``); the
``time_zone`` and daylight-saving attributes are stored as written and reported, but the
zone rules, not those attributes, decide local time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from enum import IntEnum
from typing import ClassVar

from smmc.dlms.axdr import Data, DataTag
from smmc.dlms.cosem.base import (
    AccessResult,
    CosemAccessError,
    CosemObject,
    LogicalDevice,
    SelectiveAccessDescriptor,
    expect_int,
    expect_items,
)
from smmc.dlms.cosem.extended_register import (
    UNSPECIFIED_DATE_TIME,
    date_time_value,
    decode_date_time,
)
from smmc.dlms.cosem_time import ClockStatus, CosemDateTime
from smmc.dlms.errors import DecodeError
from smmc.dlms.obis import Obis

__all__ = ["CLOCK_OBIS", "Clock", "ClockBase", "TimeSource", "system_time"]

CLOCK_OBIS = Obis(0, 0, 1, 0, 0, 255)

TimeSource = Callable[[], dt.datetime]
"""Returns the true current time as an aware datetime."""


def system_time() -> dt.datetime:
    """The host's UTC time (the default time source)."""
    return dt.datetime.now(dt.UTC)


class ClockBase(IntEnum):
    """Attribute 9: where the clock's time base comes from."""

    NOT_DEFINED = 0
    INTERNAL_CRYSTAL = 1
    MAINS_50HZ = 2
    MAINS_60HZ = 3
    GPS = 4
    RADIO_CONTROLLED = 5


class Clock(CosemObject):
    """IC 8 v0: time (2), time_zone (3), status (4), DST begin/end/deviation/enabled (5-8),
    clock_base (9); methods adjust_to_quarter (1), adjust_to_measuring_period (2),
    adjust_to_minute (3), adjust_to_preset_time (4), preset_adjusting_time (5),
    shift_time (6).
    """

    CLASS_ID: ClassVar[int] = 8
    VERSION: ClassVar[int] = 0
    ATTRIBUTE_COUNT: ClassVar[int] = 9
    METHOD_COUNT: ClassVar[int] = 6
    ATTRIBUTE_TYPES: ClassVar[dict[int, tuple[DataTag, ...]]] = {
        3: (DataTag.LONG,),
        7: (DataTag.INTEGER,),
        8: (DataTag.BOOLEAN,),
        9: (DataTag.ENUM,),
    }

    def __init__(
        self,
        logical_name: Obis = CLOCK_OBIS,
        tz: dt.tzinfo = dt.UTC,
        time_source: TimeSource = system_time,
        clock_base: int = ClockBase.INTERNAL_CRYSTAL,
        measuring_period: int = 900,
    ) -> None:
        super().__init__(logical_name)
        self.tz = tz
        self.time_source = time_source
        self.offset = dt.timedelta(0)
        self.status_flags = ClockStatus.OK
        self.measuring_period = measuring_period
        self._preset: tuple[dt.datetime, dt.datetime, dt.datetime] | None = None
        now = self.local_now()
        standard = (now.utcoffset() or dt.timedelta(0)) - (now.dst() or dt.timedelta(0))
        self._values[3] = Data.long(-int(standard.total_seconds()) // 60)
        self._values[5] = date_time_value(UNSPECIFIED_DATE_TIME)
        self._values[6] = date_time_value(UNSPECIFIED_DATE_TIME)
        self._values[7] = Data.integer(60)
        self._values[8] = Data.boolean(self._has_dst(now))
        self._values[9] = Data.enum(clock_base)

    def _has_dst(self, now: dt.datetime) -> bool:
        year = now.year
        samples = (dt.datetime(year, m, 15, 12, tzinfo=self.tz) for m in range(1, 13))
        return any(s.dst() for s in samples)

    def bind(self, device: LogicalDevice) -> None:
        """Become the device's time source for captures unless it already has one."""
        super().bind(device)
        if device.clock_source is None:
            device.clock_source = self.cosem_now

    # -- time ----------------------------------------------------------------------------

    def utc_now(self) -> dt.datetime:
        """The meter's idea of the current time, in UTC."""
        return (self.time_source() + self.offset).astimezone(dt.UTC)

    def local_now(self) -> dt.datetime:
        """The meter's idea of the current time, in its local zone."""
        return self.utc_now().astimezone(self.tz)

    def cosem_now(self) -> CosemDateTime:
        """The current local time as a COSEM date-time with deviation and clock status."""
        local = self.local_now()
        status = self.status_flags
        if local.dst():
            status |= ClockStatus.DAYLIGHT_SAVING_ACTIVE
        return dataclasses.replace(CosemDateTime.from_datetime(local), clock_status=status)

    def drift(self, delta: dt.timedelta) -> None:
        """Make the meter clock run ``delta`` ahead (negative: behind) of the true time."""
        self.offset += delta

    def set_time(self, when: dt.datetime) -> None:
        """Set the meter clock; a naive ``when`` is local time in the clock's zone."""
        if when.tzinfo is None:
            when = when.replace(tzinfo=self.tz)
        self.offset = when - self.time_source()
        self.status_flags &= ~(ClockStatus.INVALID_VALUE | ClockStatus.DOUBTFUL_VALUE)

    def _round_to(self, seconds: int) -> None:
        now = self.utc_now()
        epoch = now.timestamp()
        self.offset += dt.timedelta(seconds=round(epoch / seconds) * seconds - epoch)

    # -- COSEM interface -----------------------------------------------------------------

    def _get(self, attribute: int, selective_access: SelectiveAccessDescriptor | None) -> Data:
        if attribute == 2:
            return date_time_value(self.cosem_now())
        if attribute == 4:
            return Data.unsigned(int(self.cosem_now().clock_status or 0))
        return super()._get(attribute, selective_access)

    def _set(self, attribute: int, value: Data) -> None:
        if attribute == 2:
            self.set_time(self._to_datetime(value, "time"))
        elif attribute in (5, 6):
            decode_date_time(value, "daylight_savings_begin/end")
            self._values[attribute] = value
        elif attribute == 4:
            raise CosemAccessError(AccessResult.READ_WRITE_DENIED, "clock status is read-only")
        else:
            super()._set(attribute, value)

    def _to_datetime(self, value: Data, what: str) -> dt.datetime:
        stamp = decode_date_time(value, what)
        try:
            return stamp.to_datetime()
        except DecodeError as exc:
            raise CosemAccessError(AccessResult.OTHER_REASON, f"{what}: {exc}") from None

    def _action(self, method: int, parameters: Data | None) -> Data | None:
        if method == 1:
            self._round_to(900)
        elif method == 2:
            self._round_to(self.measuring_period)
        elif method == 3:
            self._round_to(60)
        elif method == 4:
            self._adjust_to_preset()
        elif method == 5:
            self._preset_adjusting_time(parameters)
        else:
            self._shift_time(parameters)
        return None

    def _preset_adjusting_time(self, parameters: Data | None) -> None:
        if parameters is None:
            raise CosemAccessError(AccessResult.TYPE_UNMATCHED, "preset_adjusting_time: missing")
        preset, start, end = expect_items(parameters, DataTag.STRUCTURE, 3, "preset")
        self._preset = (
            self._aware(self._to_datetime(preset, "preset_time")),
            self._aware(self._to_datetime(start, "validity_interval_start")),
            self._aware(self._to_datetime(end, "validity_interval_end")),
        )

    def _aware(self, when: dt.datetime) -> dt.datetime:
        return when if when.tzinfo is not None else when.replace(tzinfo=self.tz)

    def _adjust_to_preset(self) -> None:
        if self._preset is None:
            raise CosemAccessError(AccessResult.OTHER_REASON, "no preset adjusting time")
        preset, start, end = self._preset
        if not start <= self.utc_now() <= end:
            raise CosemAccessError(
                AccessResult.OTHER_REASON, "current time outside the preset validity interval"
            )
        self.set_time(preset)
        self._preset = None

    def _shift_time(self, parameters: Data | None) -> None:
        if parameters is None:
            raise CosemAccessError(AccessResult.TYPE_UNMATCHED, "shift_time: missing")
        seconds = expect_int(parameters, DataTag.LONG, what="shift_time")
        if not -900 <= seconds <= 900:
            raise CosemAccessError(
                AccessResult.OTHER_REASON, f"shift_time {seconds} s outside -900..900"
            )
        self.offset += dt.timedelta(seconds=seconds)
