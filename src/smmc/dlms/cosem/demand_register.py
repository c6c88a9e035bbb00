"""Interface class 5, Demand register: sliding/block average demand (e.g. 15-min power)."""

from __future__ import annotations

from typing import ClassVar

from smmc.dlms.axdr import Data, DataTag
from smmc.dlms.cosem.base import AccessResult, CosemAccessError, CosemObject
from smmc.dlms.cosem.extended_register import (
    UNSPECIFIED_DATE_TIME,
    date_time_value,
    decode_date_time,
)
from smmc.dlms.cosem.register import NUMERIC_TYPES, Unit, decode_scaler_unit, scaler_unit, zero_like
from smmc.dlms.cosem_time import CosemDateTime
from smmc.dlms.obis import Obis

__all__ = ["DemandRegister"]


class DemandRegister(CosemObject):
    """IC 5 v0: current_average_value (2), last_average_value (3), scaler_unit (4),
    status (5), capture_time (6), start_time_current (7), period (8), number_of_periods (9);
    methods reset (1) and next_period (2).

    The meter model computes the average and calls ``update``; ``next_period`` closes the
    period (current becomes last) as the meter does at each period boundary.
    """

    CLASS_ID: ClassVar[int] = 5
    VERSION: ClassVar[int] = 0
    ATTRIBUTE_COUNT: ClassVar[int] = 9
    METHOD_COUNT: ClassVar[int] = 2
    ATTRIBUTE_TYPES: ClassVar[dict[int, tuple[DataTag, ...]]] = {
        8: (DataTag.DOUBLE_LONG_UNSIGNED,),
        9: (DataTag.LONG_UNSIGNED,),
    }

    def __init__(
        self,
        logical_name: Obis,
        value: Data | None = None,
        scaler: int = 0,
        unit: int = Unit.WATT,
        period: int = 900,
        number_of_periods: int = 1,
        start: CosemDateTime | None = None,
    ) -> None:
        super().__init__(logical_name)
        zero = Data.double_long_unsigned(0) if value is None else zero_like(value)
        stamp = date_time_value(start or UNSPECIFIED_DATE_TIME)
        self._values.update(
            {
                2: zero if value is None else value,
                3: zero,
                4: scaler_unit(scaler, unit),
                5: Data.unsigned(0),
                6: stamp,
                7: stamp,
                8: Data.double_long_unsigned(period),
                9: Data.long_unsigned(number_of_periods),
            }
        )

    @property
    def current(self) -> Data:
        """Attribute 2."""
        return self._values[2]

    @property
    def last(self) -> Data:
        """Attribute 3."""
        return self._values[3]

    def update(self, current: Data) -> None:
        """The meter model's new running average for the current period."""
        if current.tag is not self._values[2].tag:
            raise CosemAccessError(
                AccessResult.TYPE_UNMATCHED, f"{self!r} average must stay {current.tag.name}"
            )
        self._values[2] = current

    def next_period(self, when: CosemDateTime | None = None) -> None:
        """Close the current period: current → last, stamp it, start a new period at zero."""
        stamp = date_time_value(when or self._now())
        self._values[3] = self._values[2]
        self._values[2] = zero_like(self._values[2])
        self._values[6] = stamp
        self._values[7] = stamp

    def reset(self, when: CosemDateTime | None = None) -> None:
        """Zero both averages and restart the period."""
        stamp = date_time_value(when or self._now())
        self._values[2] = zero_like(self._values[2])
        self._values[3] = zero_like(self._values[3])
        self._values[6] = stamp
        self._values[7] = stamp

    def _now(self) -> CosemDateTime:
        if self.device is None:
            raise CosemAccessError(AccessResult.TEMPORARY_FAILURE, f"{self!r} has no clock")
        return self.device.now()

    def _set(self, attribute: int, value: Data) -> None:
        if attribute == 4:
            decode_scaler_unit(value)
            self._values[4] = value
        elif attribute == 5:
            self._values[5] = value
        elif attribute in (6, 7):
            decode_date_time(value)
            self._values[attribute] = value
        elif attribute in (2, 3):
            if value.tag not in NUMERIC_TYPES or value.tag is not self._values[attribute].tag:
                raise CosemAccessError(AccessResult.TYPE_UNMATCHED, f"{self!r} average type")
            self._values[attribute] = value
        else:
            super()._set(attribute, value)

    def _action(self, method: int, parameters: Data | None) -> Data | None:
        if method == 1:
            self.reset()
        else:
            self.next_period()
        return None
