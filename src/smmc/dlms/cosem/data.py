"""Interface class 1, Data: one value with no unit (serials, names, status words)."""

from __future__ import annotations

from typing import ClassVar

from smmc.dlms.axdr import Data as AxdrData
from smmc.dlms.axdr import DataTag
from smmc.dlms.cosem.base import CosemObject
from smmc.dlms.obis import Obis

__all__ = ["ANY_TYPE", "DataObject"]

ANY_TYPE: tuple[DataTag, ...] = tuple(t for t in DataTag if t is not DataTag.DONT_CARE)


class DataObject(CosemObject):
    """IC 1 v0: attribute 2 ``value`` of any type.

    Named ``DataObject`` so it is not confused with the A-XDR ``Data`` value type.
    """

    CLASS_ID: ClassVar[int] = 1
    VERSION: ClassVar[int] = 0
    ATTRIBUTE_COUNT: ClassVar[int] = 2

    def __init__(self, logical_name: Obis, value: AxdrData | None = None) -> None:
        super().__init__(logical_name)
        self.value = AxdrData.null() if value is None else value

    @property
    def value(self) -> AxdrData:
        """Attribute 2."""
        return self._values[2]

    @value.setter
    def value(self, value: AxdrData) -> None:
        self._set(2, value)

    def _set(self, attribute: int, value: AxdrData) -> None:
        # Any type is accepted; the profile pins the type the clients expect.
        self._values[attribute] = value
