"""Interface class 3, Register: a value with a scaler and a unit (energy totals, averages)."""

from __future__ import annotations

from enum import IntEnum
from functools import lru_cache
from typing import ClassVar

from smmc.dlms.axdr import Data, DataTag
from smmc.dlms.cosem.base import (
    AccessResult,
    CosemAccessError,
    CosemObject,
    expect_int,
    expect_items,
)
from smmc.dlms.obis import Obis

__all__ = [
    "NUMERIC_TYPES",
    "Register",
    "Unit",
    "decode_scaler_unit",
    "scaler_unit",
    "zero_like",
]

NUMERIC_TYPES: tuple[DataTag, ...] = (
    DataTag.DOUBLE_LONG,
    DataTag.DOUBLE_LONG_UNSIGNED,
    DataTag.INTEGER,
    DataTag.LONG,
    DataTag.UNSIGNED,
    DataTag.LONG_UNSIGNED,
    DataTag.LONG64,
    DataTag.LONG64_UNSIGNED,
    DataTag.FLOAT32,
    DataTag.FLOAT64,
)

# The value CHOICE of the Blue Book also allows strings and booleans besides numbers.
_VALUE_TYPES: tuple[DataTag, ...] = (
    *NUMERIC_TYPES,
    DataTag.BOOLEAN,
    DataTag.BIT_STRING,
    DataTag.OCTET_STRING,
    DataTag.VISIBLE_STRING,
    DataTag.UTF8_STRING,
    DataTag.BCD,
)


class Unit(IntEnum):
    """Physical units of ``scaler_unit`` (Blue Book unit enumeration, the ones a meter uses)."""

    YEAR = 1
    MONTH = 2
    WEEK = 3
    DAY = 4
    HOUR = 5
    MINUTE = 6
    SECOND = 7
    DEGREE = 8
    CELSIUS = 9
    WATT = 27
    VOLT_AMPERE = 28
    VAR = 29
    WATT_HOUR = 30
    VOLT_AMPERE_HOUR = 31
    VAR_HOUR = 32
    AMPERE = 33
    COULOMB = 34
    VOLT = 35
    HERTZ = 44
    PERCENTAGE = 56
    OTHER = 254
    COUNT = 255


@lru_cache(maxsize=256)
def scaler_unit(scaler: int, unit: int) -> Data:
    """The ``scaler_unit`` structure {integer scaler, enum unit}; shared (``Data`` is
    frozen), as a meter's dozens of registers repeat a few pairs."""
    return Data.structure((Data.integer(scaler), Data.enum(unit)))


def decode_scaler_unit(value: Data) -> tuple[int, int]:
    """Scaler and unit from a ``scaler_unit`` structure (type-unmatched if malformed)."""
    scaler, unit = expect_items(value, DataTag.STRUCTURE, 2, "scaler_unit")
    return (
        expect_int(scaler, DataTag.INTEGER, what="scaler"),
        expect_int(unit, DataTag.ENUM, what="unit"),
    )


def zero_like(value: Data) -> Data:
    """A zero of the same numeric type, which is what a reset stores."""
    if value.tag in (DataTag.FLOAT32, DataTag.FLOAT64):
        return Data(value.tag, 0.0)
    if value.tag in NUMERIC_TYPES:
        return Data(value.tag, 0)
    raise CosemAccessError(AccessResult.OTHER_REASON, f"cannot reset a {value.tag.name} value")


class Register(CosemObject):
    """IC 3 v0: ``value`` (2), ``scaler_unit`` (3); method ``reset`` (1).

    The meter model updates ``value`` directly; clients see ``value × 10^scaler unit``.
    """

    CLASS_ID: ClassVar[int] = 3
    VERSION: ClassVar[int] = 0
    ATTRIBUTE_COUNT: ClassVar[int] = 3
    METHOD_COUNT: ClassVar[int] = 1
    VALUE_ATTRIBUTE: ClassVar[int] = 2
    SCALER_UNIT_ATTRIBUTE: ClassVar[int] = 3

    def __init__(
        self,
        logical_name: Obis,
        value: Data | None = None,
        scaler: int = 0,
        unit: int = Unit.COUNT,
    ) -> None:
        super().__init__(logical_name)
        self._values[self.VALUE_ATTRIBUTE] = (
            Data.double_long_unsigned(0) if value is None else value
        )
        self._values[self.SCALER_UNIT_ATTRIBUTE] = scaler_unit(scaler, unit)

    @property
    def value(self) -> Data:
        """The raw (unscaled) value."""
        return self._values[self.VALUE_ATTRIBUTE]

    @value.setter
    def value(self, value: Data) -> None:
        self._set(self.VALUE_ATTRIBUTE, value)

    @property
    def scaler(self) -> int:
        """Power of ten applied to the raw value."""
        return decode_scaler_unit(self._values[self.SCALER_UNIT_ATTRIBUTE])[0]

    @property
    def unit(self) -> int:
        """Unit enumeration value."""
        return decode_scaler_unit(self._values[self.SCALER_UNIT_ATTRIBUTE])[1]

    def scaled(self) -> float:
        """The value in its unit (raw × 10^scaler)."""
        raw = self.value.value
        if not isinstance(raw, int | float) or isinstance(raw, bool):
            raise CosemAccessError(AccessResult.OTHER_REASON, f"{self!r} value is not numeric")
        return float(raw) * 10.0**self.scaler

    def _set(self, attribute: int, value: Data) -> None:
        if attribute == self.VALUE_ATTRIBUTE:
            current = self._values.get(attribute)
            if value.tag not in _VALUE_TYPES:
                raise CosemAccessError(
                    AccessResult.TYPE_UNMATCHED, f"{self!r} value cannot be {value.tag.name}"
                )
            if current is not None and current.tag is not value.tag:
                raise CosemAccessError(
                    AccessResult.TYPE_UNMATCHED,
                    f"{self!r} value is {current.tag.name}, not {value.tag.name}",
                )
            self._values[attribute] = value
        elif attribute == self.SCALER_UNIT_ATTRIBUTE:
            decode_scaler_unit(value)
            self._values[attribute] = value
        else:
            super()._set(attribute, value)

    def _action(self, method: int, parameters: Data | None) -> Data | None:
        self.reset()
        return None

    def reset(self) -> None:
        """Method 1: set the value to zero of its type."""
        self._values[self.VALUE_ATTRIBUTE] = zero_like(self.value)
