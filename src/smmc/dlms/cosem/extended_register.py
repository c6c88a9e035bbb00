"""Interface class 4, Extended register: a register with a status and a capture time."""

from __future__ import annotations

from typing import ClassVar

from smmc.dlms.axdr import Data, DataTag
from smmc.dlms.cosem.base import AccessResult, CosemAccessError, expect_bytes
from smmc.dlms.cosem.register import Register, Unit
from smmc.dlms.cosem_time import NOT_SPECIFIED, YEAR_NOT_SPECIFIED, CosemDateTime
from smmc.dlms.obis import Obis

__all__ = ["UNSPECIFIED_DATE_TIME", "ExtendedRegister", "date_time_value", "decode_date_time"]

UNSPECIFIED_DATE_TIME = CosemDateTime(
    YEAR_NOT_SPECIFIED, NOT_SPECIFIED, NOT_SPECIFIED, NOT_SPECIFIED, NOT_SPECIFIED,
    NOT_SPECIFIED, NOT_SPECIFIED, NOT_SPECIFIED,
)  # fmt: skip
"""A date-time with every field "not specified": the value of a time never set."""


def date_time_value(value: CosemDateTime) -> Data:
    """A date-time attribute as COSEM carries it: a 12-octet octet-string."""
    return Data.octet_string(value.to_bytes())


def decode_date_time(value: Data, what: str = "date-time") -> CosemDateTime:
    """A date-time given as octet-string(12) or as the date-time tag."""
    if value.tag is DataTag.DATE_TIME and isinstance(value.value, CosemDateTime):
        return value.value
    return CosemDateTime.from_bytes(expect_bytes(value, what, 12))


class ExtendedRegister(Register):
    """IC 4 v0: ``value`` (2), ``scaler_unit`` (3), ``status`` (4), ``capture_time`` (5).

    ``capture`` stores a new value stamped with the device time, as a meter does when it
    records a maximum or a billing value.
    """

    CLASS_ID: ClassVar[int] = 4
    ATTRIBUTE_COUNT: ClassVar[int] = 5
    STATUS_ATTRIBUTE: ClassVar[int] = 4
    CAPTURE_TIME_ATTRIBUTE: ClassVar[int] = 5

    def __init__(
        self,
        logical_name: Obis,
        value: Data | None = None,
        scaler: int = 0,
        unit: int = Unit.COUNT,
        status: Data | None = None,
        capture_time: CosemDateTime | None = None,
    ) -> None:
        super().__init__(logical_name, value, scaler, unit)
        self._values[self.STATUS_ATTRIBUTE] = Data.unsigned(0) if status is None else status
        self._values[self.CAPTURE_TIME_ATTRIBUTE] = date_time_value(
            capture_time or UNSPECIFIED_DATE_TIME
        )

    @property
    def status(self) -> Data:
        """Attribute 4, manufacturer-defined status."""
        return self._values[self.STATUS_ATTRIBUTE]

    @status.setter
    def status(self, value: Data) -> None:
        self._values[self.STATUS_ATTRIBUTE] = value

    @property
    def capture_time(self) -> CosemDateTime:
        """Attribute 5."""
        return decode_date_time(self._values[self.CAPTURE_TIME_ATTRIBUTE])

    def capture(self, value: Data, when: CosemDateTime | None = None) -> None:
        """Store ``value`` and stamp it (with the device time unless ``when`` is given)."""
        self.value = value
        self._stamp(when)

    def reset(self) -> None:
        """Method 1: zero the value and stamp the reset time."""
        super().reset()
        self._stamp(None)

    def _stamp(self, when: CosemDateTime | None) -> None:
        if when is None:
            if self.device is None:
                raise CosemAccessError(AccessResult.TEMPORARY_FAILURE, f"{self!r} has no clock")
            when = self.device.now()
        self._values[self.CAPTURE_TIME_ATTRIBUTE] = date_time_value(when)

    def _set(self, attribute: int, value: Data) -> None:
        if attribute == self.STATUS_ATTRIBUTE:
            self._values[attribute] = value
        elif attribute == self.CAPTURE_TIME_ATTRIBUTE:
            decode_date_time(value, "capture_time")
            self._values[attribute] = value
        else:
            super()._set(attribute, value)
