"""Interface class 7, Profile generic: load profiles, billing profiles and event logs.

The buffer is either kept here (rows appended by ``capture``/``append``) or provided by a
``row_source`` callable, so a simulator can synthesise a long history on demand instead of
storing it. GET on the buffer supports selective access by range (selector 1, filtering on
one capture column, usually the clock) and by entry (selector 2), each with a choice of
columns.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

from smmc.dlms.apdu.selective_access import (
    CaptureObjectDefinition,
    EntryDescriptor,
    RangeDescriptor,
    SelectiveAccessDescriptor,
    decode_profile_selector,
)
from smmc.dlms.axdr import Data, DataTag
from smmc.dlms.cosem.base import (
    AccessResult,
    CosemAccessError,
    CosemObject,
    expect_int,
    expect_items,
)
from smmc.dlms.cosem.extended_register import decode_date_time
from smmc.dlms.cosem.register import NUMERIC_TYPES
from smmc.dlms.errors import DecodeError
from smmc.dlms.obis import Obis

__all__ = [
    "ProfileGeneric",
    "RowSource",
    "SortMethod",
    "element_of",
    "parse_definition",
]


Row = tuple[Data, ...]
RowSource = Callable[[], Sequence[Sequence[Data]]]
"""Returns the whole buffer, oldest row first."""


class SortMethod(IntEnum):
    """Attribute 5. Only FIFO ordering is applied; other values are stored as written."""

    FIFO = 1
    LIFO = 2
    LARGEST = 3
    SMALLEST = 4
    NEAREST_TO_ZERO = 5
    FAREST_FROM_ZERO = 6


def parse_definition(value: Data) -> CaptureObjectDefinition:
    """A capture object definition from its structure; type-unmatched if malformed."""
    try:
        return CaptureObjectDefinition.from_data(value)
    except DecodeError as exc:
        raise CosemAccessError(AccessResult.TYPE_UNMATCHED, str(exc)) from None


def _same_column(column: CaptureObjectDefinition, wanted: CaptureObjectDefinition) -> bool:
    """Whether ``wanted`` designates ``column`` (a data_index of 0 matches any element)."""
    return (
        column.class_id == wanted.class_id
        and column.logical_name == wanted.logical_name
        and column.attribute_index == wanted.attribute_index
        and wanted.data_index in (0, column.data_index)
    )


_NO_SORT_OBJECT = CaptureObjectDefinition(0, Obis(0, 0, 0, 0, 0, 0), 0, 0)


@dataclass(frozen=True, slots=True)
class _Instant:
    """A comparable time: UTC when known, the local wall clock always."""

    wall: dt.datetime
    utc: dt.datetime | None

    @classmethod
    def of(cls, value: Data) -> _Instant:
        stamp = decode_date_time(value).to_datetime()
        utc = stamp.astimezone(dt.UTC) if stamp.tzinfo is not None else None
        return cls(stamp.replace(tzinfo=None), utc)

    def key(self, *others: _Instant) -> dt.datetime:
        if self.utc is not None and all(o.utc is not None for o in others):
            return self.utc
        return self.wall


def element_of(value: Data, column: CaptureObjectDefinition) -> Data:
    """The attribute value, or its element ``data_index`` (1-based) when one is named."""
    if column.data_index == 0:
        return value
    items = value.value
    if not isinstance(items, tuple) or not 1 <= column.data_index <= len(items):
        raise CosemAccessError(
            AccessResult.OTHER_REASON, f"{column} has no element {column.data_index}"
        )
    return items[column.data_index - 1]


class ProfileGeneric(CosemObject):
    """IC 7 v1: buffer (2), capture_objects (3), capture_period (4), sort_method (5),
    sort_object (6), entries_in_use (7), profile_entries (8); methods reset (1), capture (2).
    """

    CLASS_ID: ClassVar[int] = 7
    VERSION: ClassVar[int] = 1
    ATTRIBUTE_COUNT: ClassVar[int] = 8
    METHOD_COUNT: ClassVar[int] = 2
    SELECTIVE_ATTRIBUTES: ClassVar[frozenset[int]] = frozenset({2})

    def __init__(
        self,
        logical_name: Obis,
        capture_objects: Sequence[CaptureObjectDefinition] = (),
        capture_period: int = 0,
        profile_entries: int = 1000,
        row_source: RowSource | None = None,
    ) -> None:
        super().__init__(logical_name)
        self.capture_objects: tuple[CaptureObjectDefinition, ...] = tuple(capture_objects)
        self.capture_period = capture_period
        self.profile_entries = profile_entries
        self.sort_method = SortMethod.FIFO
        self.sort_object = _NO_SORT_OBJECT
        self.row_source = row_source
        self._rows: list[Row] = []

    # -- buffer --------------------------------------------------------------------------

    def rows(self) -> list[Row]:
        """The buffer, oldest row first."""
        if self.row_source is not None:
            return [tuple(r) for r in self.row_source()]
        return list(self._rows)

    def append(self, row: Sequence[Data]) -> None:
        """Add a row (one value per capture object), dropping the oldest when full."""
        if len(row) != len(self.capture_objects):
            raise ValueError(
                f"{self!r}: row has {len(row)} values for {len(self.capture_objects)} columns"
            )
        self._rows.append(tuple(row))
        self._trim()

    def _trim(self) -> None:
        excess = len(self._rows) - self.profile_entries
        if excess > 0:
            del self._rows[:excess]

    def reset(self) -> None:
        """Method 1: empty the buffer."""
        self._rows.clear()

    def capture(self) -> Row:
        """Method 2: read every capture object from the device and append the row."""
        device = self.device
        if device is None:
            raise CosemAccessError(AccessResult.TEMPORARY_FAILURE, f"{self!r} is not in a device")
        row = tuple(
            element_of(device.get(c.class_id, c.logical_name, c.attribute_index), c)
            for c in self.capture_objects
        )
        self.append(row)
        return row

    # -- selective access ----------------------------------------------------------------

    def _columns(self, selected: Sequence[CaptureObjectDefinition]) -> list[int]:
        if not selected:
            return list(range(len(self.capture_objects)))
        return [self._column_of(wanted) for wanted in selected]

    def _column_of(self, wanted: CaptureObjectDefinition) -> int:
        for i, column in enumerate(self.capture_objects):
            if _same_column(column, wanted):
                return i
        raise CosemAccessError(AccessResult.OTHER_REASON, f"{self!r} does not capture {wanted}")

    def _by_range(self, descriptor: RangeDescriptor) -> list[Row]:
        column = self._column_of(descriptor.restricting_object)
        columns = self._columns(descriptor.selected_values)
        keep = self._range_filter(descriptor.from_value, descriptor.to_value)
        return [tuple(row[c] for c in columns) for row in self.rows() if keep(row[column])]

    def _range_filter(self, low: Data, high: Data) -> Callable[[Data], bool]:
        if low.tag in NUMERIC_TYPES and high.tag in NUMERIC_TYPES:
            lo, hi = low.value, high.value
            if not isinstance(lo, int | float) or not isinstance(hi, int | float):
                raise CosemAccessError(AccessResult.TYPE_UNMATCHED, "range bounds")

            def numeric(value: Data) -> bool:
                v = value.value
                return isinstance(v, int | float) and lo <= v <= hi

            return numeric
        try:
            start, end = _Instant.of(low), _Instant.of(high)
        except DecodeError as exc:
            raise CosemAccessError(AccessResult.OTHER_REASON, f"range bounds: {exc}") from None

        def in_time(value: Data) -> bool:
            try:
                at = _Instant.of(value)
            except (DecodeError, CosemAccessError):
                return False
            return start.key(at, end) <= at.key(start, end) <= end.key(start, at)

        return in_time

    def _by_entry(self, descriptor: EntryDescriptor) -> list[Row]:
        from_entry, to_entry = descriptor.from_entry, descriptor.to_entry
        from_value, to_value = descriptor.from_selected_value, descriptor.to_selected_value
        width = len(self.capture_objects)
        first_col = max(from_value, 1)
        last_col = width if to_value == 0 else to_value
        if (to_entry and from_entry > to_entry) or first_col > last_col or last_col > width:
            raise CosemAccessError(
                AccessResult.SCOPE_OF_ACCESS_VIOLATED,
                f"entries {from_entry}..{to_entry} columns {from_value}..{to_value}",
            )
        rows = self.rows()
        last_row = len(rows) if to_entry == 0 else min(to_entry, len(rows))
        return [r[first_col - 1 : last_col] for r in rows[max(from_entry, 1) - 1 : last_row]]

    # -- COSEM interface -----------------------------------------------------------------

    def _get(self, attribute: int, selective_access: SelectiveAccessDescriptor | None) -> Data:
        if attribute == 2:
            return self._buffer(selective_access)
        if attribute == 3:
            return Data.array(c.to_data() for c in self.capture_objects)
        if attribute == 4:
            return Data.double_long_unsigned(self.capture_period)
        if attribute == 5:
            return Data.enum(self.sort_method)
        if attribute == 6:
            return self.sort_object.to_data()
        if attribute == 7:
            return Data.double_long_unsigned(min(len(self.rows()), self.profile_entries))
        return Data.double_long_unsigned(self.profile_entries)

    def _buffer(self, selective_access: SelectiveAccessDescriptor | None) -> Data:
        if selective_access is None:
            return Data.array(Data.structure(r) for r in self.rows())
        selector = selective_access.access_selector
        if selector not in (RangeDescriptor.SELECTOR, EntryDescriptor.SELECTOR):
            raise CosemAccessError(AccessResult.OTHER_REASON, f"access selector {selector}")
        try:
            descriptor = decode_profile_selector(selective_access)
        except DecodeError as exc:
            raise CosemAccessError(AccessResult.TYPE_UNMATCHED, str(exc)) from None
        if isinstance(descriptor, RangeDescriptor):
            return self._range_buffer(descriptor)
        return Data.array(Data.structure(r) for r in self._by_entry(descriptor))

    def _range_buffer(self, descriptor: RangeDescriptor) -> Data:
        """The buffer a range read answers. A profile that computes its rows may build this
        value directly (already encoded, see ``EncodedData``) instead of a ``Data`` per cell."""
        return Data.array(Data.structure(r) for r in self._by_range(descriptor))

    def _set(self, attribute: int, value: Data) -> None:
        if attribute == 3:
            columns = [
                parse_definition(c)
                for c in expect_items(value, DataTag.ARRAY, None, "capture_objects")
            ]
            self.capture_objects = tuple(columns)
            self.reset()
        elif attribute == 4:
            self.capture_period = expect_int(value, DataTag.DOUBLE_LONG_UNSIGNED)
        elif attribute == 5:
            method = expect_int(value, DataTag.ENUM, what="sort_method")
            if method not in SortMethod._value2member_map_:
                raise CosemAccessError(AccessResult.OTHER_REASON, f"sort method {method}")
            self.sort_method = SortMethod(method)
        elif attribute == 6:
            self.sort_object = parse_definition(value)
        elif attribute == 8:
            self.profile_entries = expect_int(value, DataTag.DOUBLE_LONG_UNSIGNED)
            self._trim()
        else:
            raise CosemAccessError(
                AccessResult.READ_WRITE_DENIED, f"{self!r} attribute {attribute} is read-only"
            )

    def _action(self, method: int, parameters: Data | None) -> Data | None:
        if method == 1:
            self.reset()
        else:
            self.capture()
        return None
