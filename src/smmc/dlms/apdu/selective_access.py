"""Selective access: the generic descriptor on the wire and the profile-generic selectors.

A GET (or SET) on a profile generic buffer may restrict the rows by time range (selector 1)
or by entry number (selector 2) and the columns by capture object; both travel as ``Data``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from smmc.dlms.apdu._reader import Reader, u8
from smmc.dlms.axdr import Data, DataTag, encode_data
from smmc.dlms.cosem_time import CosemDateTime
from smmc.dlms.errors import DecodeError
from smmc.dlms.obis import Obis

__all__ = [
    "CLOCK_TIME",
    "CaptureObjectDefinition",
    "EntryDescriptor",
    "RangeDescriptor",
    "SelectiveAccessDescriptor",
    "decode_profile_selector",
]


@dataclass(frozen=True, slots=True)
class SelectiveAccessDescriptor:
    """Access selector and its parameters, as they travel in GET/SET requests."""

    access_selector: int
    access_parameters: Data

    def to_bytes(self) -> bytes:
        """Selector byte followed by the parameters Data."""
        return u8(self.access_selector, "access selector") + encode_data(self.access_parameters)

    @classmethod
    def read(cls, reader: Reader) -> SelectiveAccessDescriptor:
        """Decode a descriptor at the reader's position."""
        return cls(reader.u8("access selector"), reader.data())


def encode_optional_selection(selection: SelectiveAccessDescriptor | None) -> bytes:
    """A-XDR OPTIONAL access-selection: ``00`` or ``01`` and the descriptor."""
    return b"\x00" if selection is None else b"\x01" + selection.to_bytes()


def read_optional_selection(reader: Reader) -> SelectiveAccessDescriptor | None:
    """Decode an OPTIONAL access-selection."""
    return SelectiveAccessDescriptor.read(reader) if reader.optional("access selection") else None


def _fields(data: Data, tags: tuple[DataTag, ...], what: str) -> tuple[Data, ...]:
    """Check that ``data`` is a structure whose members have ``tags`` (DONT_CARE = any)."""
    if data.tag is not DataTag.STRUCTURE or not isinstance(data.value, tuple):
        raise DecodeError(f"{what}: expected a structure, got {data.tag.name}")
    items = data.value
    if len(items) != len(tags):
        raise DecodeError(f"{what}: expected {len(tags)} members, got {len(items)}")
    for index, (item, tag) in enumerate(zip(items, tags, strict=True)):
        if tag is not DataTag.DONT_CARE and item.tag is not tag:
            raise DecodeError(f"{what}: member {index} is {item.tag.name}, expected {tag.name}")
    return items


def _int(data: Data) -> int:
    if not isinstance(data.value, int) or isinstance(data.value, bool):
        raise DecodeError(f"expected an integer, got {data.tag.name}")
    return data.value


@dataclass(frozen=True, slots=True)
class CaptureObjectDefinition:
    """One column of a profile: class id, logical name, attribute index, data index."""

    class_id: int
    logical_name: Obis
    attribute_index: int
    data_index: int = 0

    def to_data(self) -> Data:
        """``structure {long-unsigned, octet-string, integer, long-unsigned}``."""
        return Data.structure(
            (
                Data.long_unsigned(self.class_id),
                Data.octet_string(self.logical_name.to_bytes()),
                Data.integer(self.attribute_index),
                Data.long_unsigned(self.data_index),
            )
        )

    @classmethod
    def from_data(cls, data: Data) -> CaptureObjectDefinition:
        """Decode from the structure form; a wrong shape raises DecodeError."""
        class_id, name, attribute, index = _fields(
            data,
            (DataTag.LONG_UNSIGNED, DataTag.OCTET_STRING, DataTag.INTEGER, DataTag.LONG_UNSIGNED),
            "capture object definition",
        )
        if not isinstance(name.value, bytes) or len(name.value) != 6:
            raise DecodeError("capture object definition: logical name must be 6 bytes")
        return cls(_int(class_id), Obis.from_bytes(name.value), _int(attribute), _int(index))


CLOCK_TIME = CaptureObjectDefinition(8, Obis(0, 0, 1, 0, 0, 255), 2, 0)
"""The usual restricting object of a range descriptor: attribute 2 (time) of the clock."""


def _definitions(data: Data, what: str) -> tuple[CaptureObjectDefinition, ...]:
    if data.tag is not DataTag.ARRAY or not isinstance(data.value, tuple):
        raise DecodeError(f"{what}: expected an array, got {data.tag.name}")
    return tuple(CaptureObjectDefinition.from_data(item) for item in data.value)


@dataclass(frozen=True, slots=True)
class RangeDescriptor:
    """Selector 1: rows whose ``restricting_object`` value lies in ``[from_value, to_value]``.

    ``selected_values`` lists the columns to return; empty means all columns.
    """

    SELECTOR: ClassVar[int] = 1

    from_value: Data
    to_value: Data
    restricting_object: CaptureObjectDefinition = CLOCK_TIME
    selected_values: tuple[CaptureObjectDefinition, ...] = ()

    @classmethod
    def between(
        cls,
        start: CosemDateTime,
        end: CosemDateTime,
        selected_values: tuple[CaptureObjectDefinition, ...] = (),
    ) -> RangeDescriptor:
        """A clock-time range with the bounds as 12-byte octet-strings (what meters expect)."""
        return cls(
            Data.octet_string(start.to_bytes()),
            Data.octet_string(end.to_bytes()),
            CLOCK_TIME,
            selected_values,
        )

    def to_data(self) -> Data:
        """The access-parameters structure."""
        return Data.structure(
            (
                self.restricting_object.to_data(),
                self.from_value,
                self.to_value,
                Data.array(item.to_data() for item in self.selected_values),
            )
        )

    @classmethod
    def from_data(cls, data: Data) -> RangeDescriptor:
        """Decode the access-parameters structure."""
        restricting, from_value, to_value, selected = _fields(
            data,
            (DataTag.STRUCTURE, DataTag.DONT_CARE, DataTag.DONT_CARE, DataTag.ARRAY),
            "range descriptor",
        )
        return cls(
            from_value,
            to_value,
            CaptureObjectDefinition.from_data(restricting),
            _definitions(selected, "range descriptor selected values"),
        )

    def to_access_selection(self) -> SelectiveAccessDescriptor:
        """Wrap as the descriptor carried by a GET request."""
        return SelectiveAccessDescriptor(self.SELECTOR, self.to_data())


@dataclass(frozen=True, slots=True)
class EntryDescriptor:
    """Selector 2: rows ``from_entry..to_entry`` and columns ``from..to_selected_value``.

    Numbering starts at 1; a ``to_*`` of 0 means "up to the last one".
    """

    SELECTOR: ClassVar[int] = 2

    from_entry: int = 1
    to_entry: int = 0
    from_selected_value: int = 1
    to_selected_value: int = 0

    def to_data(self) -> Data:
        """The access-parameters structure."""
        return Data.structure(
            (
                Data.double_long_unsigned(self.from_entry),
                Data.double_long_unsigned(self.to_entry),
                Data.long_unsigned(self.from_selected_value),
                Data.long_unsigned(self.to_selected_value),
            )
        )

    @classmethod
    def from_data(cls, data: Data) -> EntryDescriptor:
        """Decode the access-parameters structure."""
        items = _fields(
            data,
            (
                DataTag.DOUBLE_LONG_UNSIGNED,
                DataTag.DOUBLE_LONG_UNSIGNED,
                DataTag.LONG_UNSIGNED,
                DataTag.LONG_UNSIGNED,
            ),
            "entry descriptor",
        )
        return cls(*(_int(item) for item in items))

    def to_access_selection(self) -> SelectiveAccessDescriptor:
        """Wrap as the descriptor carried by a GET request."""
        return SelectiveAccessDescriptor(self.SELECTOR, self.to_data())


def decode_profile_selector(
    selection: SelectiveAccessDescriptor,
) -> RangeDescriptor | EntryDescriptor:
    """Interpret a descriptor aimed at a profile generic buffer (selectors 1 and 2)."""
    if selection.access_selector == RangeDescriptor.SELECTOR:
        return RangeDescriptor.from_data(selection.access_parameters)
    if selection.access_selector == EntryDescriptor.SELECTOR:
        return EntryDescriptor.from_data(selection.access_parameters)
    raise DecodeError(f"unsupported profile generic access selector {selection.access_selector}")
