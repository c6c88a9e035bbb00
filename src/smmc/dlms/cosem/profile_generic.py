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

from smmc.dlms.axdr import Data, DataTag
from smmc.dlms.cosem.base import (
    AccessResult,
    CosemAccessError,
    CosemObject,
    SelectiveAccess,
    expect,
    expect_int,
    expect_items,
    obis_from,
)
from smmc.dlms.cosem.extended_register import decode_date_time
from smmc.dlms.cosem.register import NUMERIC_TYPES
from smmc.dlms.errors import DecodeError
from smmc.dlms.obis import Obis

__all__ = [
    "ENTRY_SELECTOR",
    "RANGE_SELECTOR",
    "CaptureObject",
    "ProfileGeneric",
    "RowSource",
    "SortMethod",
    "element_of",
]

RANGE_SELECTOR = 1
ENTRY_SELECTOR = 2

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


@dataclass(frozen=True, slots=True)
class CaptureObject:
    """A capture object definition: which attribute (and element) a column holds."""

    class_id: int
    logical_name: Obis
    attribute: int
    data_index: int = 0

    def to_data(self) -> Data:
        """The {class_id, logical_name, attribute_index, data_index} structure."""
        return Data.structure(
            (
                Data.long_unsigned(self.class_id),
                Data.octet_string(self.logical_name.to_bytes()),
                Data.integer(self.attribute),
                Data.long_unsigned(self.data_index),
            )
        )

    @classmethod
    def from_data(cls, value: Data) -> CaptureObject:
        """Parse the structure; type-unmatched if malformed."""
        class_id, ln, attribute, index = expect_items(
            value, DataTag.STRUCTURE, 4, "capture object definition"
        )
        return cls(
            expect_int(class_id, DataTag.LONG_UNSIGNED, what="class_id"),
            obis_from(ln),
            expect_int(attribute, DataTag.INTEGER, what="attribute_index"),
            expect_int(index, DataTag.LONG_UNSIGNED, what="data_index"),
        )

    def same_column(self, other: CaptureObject) -> bool:
        """Whether ``other`` designates this column (data_index 0 matches any element)."""
        return (
            self.class_id == other.class_id
            and self.logical_name == other.logical_name
            and self.attribute == other.attribute
            and (other.data_index in (0, self.data_index))
        )


_NO_SORT_OBJECT = CaptureObject(0, Obis(0, 0, 0, 0, 0, 0), 0, 0)


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


def element_of(value: Data, column: CaptureObject) -> Data:
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
        capture_objects: Sequence[CaptureObject] = (),
        capture_period: int = 0,
        profile_entries: int = 1000,
        row_source: RowSource | None = None,
    ) -> None:
        super().__init__(logical_name)
        self.capture_objects: tuple[CaptureObject, ...] = tuple(capture_objects)
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
            element_of(device.get(c.class_id, c.logical_name, c.attribute), c)
            for c in self.capture_objects
        )
        self.append(row)
        return row

    # -- selective access ----------------------------------------------------------------

    def _columns(self, selected: Sequence[CaptureObject]) -> list[int]:
        if not selected:
            return list(range(len(self.capture_objects)))
        return [self._column_of(wanted) for wanted in selected]

    def _column_of(self, wanted: CaptureObject) -> int:
        for i, column in enumerate(self.capture_objects):
            if column.same_column(wanted):
                return i
        raise CosemAccessError(AccessResult.OTHER_REASON, f"{self!r} does not capture {wanted}")

    def _by_range(self, parameters: Data) -> list[Row]:
        restricting, low, high, selected = expect_items(
            parameters, DataTag.STRUCTURE, 4, "range descriptor"
        )
        column = self._column_of(CaptureObject.from_data(restricting))
        wanted = [
            CaptureObject.from_data(c)
            for c in expect_items(selected, DataTag.ARRAY, None, "selected_values")
        ]
        columns = self._columns(wanted)
        keep = self._range_filter(low, high)
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

    def _by_entry(self, parameters: Data) -> list[Row]:
        fields = expect_items(parameters, DataTag.STRUCTURE, 4, "entry descriptor")
        from_entry = expect_int(fields[0], DataTag.DOUBLE_LONG_UNSIGNED, what="from_entry")
        to_entry = expect_int(fields[1], DataTag.DOUBLE_LONG_UNSIGNED, what="to_entry")
        from_value = expect_int(fields[2], DataTag.LONG_UNSIGNED, what="from_selected_value")
        to_value = expect_int(fields[3], DataTag.LONG_UNSIGNED, what="to_selected_value")
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

    def _get(self, attribute: int, selective_access: SelectiveAccess | None) -> Data:
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

    def _buffer(self, selective_access: SelectiveAccess | None) -> Data:
        if selective_access is None:
            rows = self.rows()
        elif selective_access.selector == RANGE_SELECTOR:
            rows = self._by_range(selective_access.parameters)
        elif selective_access.selector == ENTRY_SELECTOR:
            rows = self._by_entry(selective_access.parameters)
        else:
            raise CosemAccessError(
                AccessResult.OTHER_REASON, f"access selector {selective_access.selector}"
            )
        return Data.array(Data.structure(r) for r in rows)

    def _set(self, attribute: int, value: Data) -> None:
        if attribute == 3:
            columns = [
                CaptureObject.from_data(c)
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
            self.sort_object = CaptureObject.from_data(expect(value, DataTag.STRUCTURE))
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
