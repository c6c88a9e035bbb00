"""Interface class 7 (Profile generic): buffer, capture, selective access."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smmc.dlms.apdu.selective_access import CaptureObjectDefinition
from smmc.dlms.axdr import Data
from smmc.dlms.cosem.base import CosemAccessError, LogicalDevice, SelectiveAccessDescriptor
from smmc.dlms.cosem.clock import Clock
from smmc.dlms.cosem.data import DataObject
from smmc.dlms.cosem.profile_generic import ProfileGeneric, parse_definition
from smmc.dlms.cosem.register import Register
from smmc.dlms.cosem_time import ClockStatus, CosemDateTime
from smmc.dlms.obis import Obis

CLOCK = CaptureObjectDefinition(8, Obis.parse("0.0.1.0.0.255"), 2)
STATUS = CaptureObjectDefinition(1, Obis.parse("0.0.96.10.7.255"), 2)
IMPORT = CaptureObjectDefinition(3, Obis.parse("1.0.1.8.0.255"), 2)
EXPORT = CaptureObjectDefinition(3, Obis.parse("1.0.2.8.0.255"), 2)
COLUMNS = (CLOCK, STATUS, IMPORT, EXPORT)
START = dt.datetime(2026, 4, 1, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=-3)))


def _stamp(when: dt.datetime) -> Data:
    return Data.octet_string(CosemDateTime.from_datetime(when, ClockStatus.OK).to_bytes())


def _profile(rows: int = 8) -> ProfileGeneric:
    profile = ProfileGeneric(Obis.parse("1.0.99.1.0.255"), COLUMNS, 900, 100)
    for i in range(rows):
        when = START + dt.timedelta(minutes=15 * i)
        profile.append(
            (
                _stamp(when),
                Data.unsigned(0),
                Data.double_long_unsigned(1000 + i),
                Data.double_long_unsigned(i),
            )
        )
    return profile


def _range(
    low: Data, high: Data, selected: tuple[CaptureObjectDefinition, ...] = ()
) -> SelectiveAccessDescriptor:
    return SelectiveAccessDescriptor(
        1,
        Data.structure((CLOCK.to_data(), low, high, Data.array(c.to_data() for c in selected))),
    )


def _entry(a: int, b: int, c: int, d: int) -> SelectiveAccessDescriptor:
    return SelectiveAccessDescriptor(
        2,
        Data.structure(
            (
                Data.double_long_unsigned(a),
                Data.double_long_unsigned(b),
                Data.long_unsigned(c),
                Data.long_unsigned(d),
            )
        ),
    )


def _imports(buffer: Data) -> list[int]:
    return [row[2] for row in buffer.to_python()]


def test_plain_attributes() -> None:
    profile = _profile(3)
    assert profile.get(3) == Data.array(c.to_data() for c in COLUMNS)
    assert profile.get(4) == Data.double_long_unsigned(900)
    assert profile.get(5) == Data.enum(1)
    assert profile.get(7) == Data.double_long_unsigned(3)
    assert profile.get(8) == Data.double_long_unsigned(100)
    assert len(profile.get(2).to_python()) == 3


def test_capture_object_parsing() -> None:
    for column in COLUMNS:
        assert parse_definition(column.to_data()) == column
    with pytest.raises(CosemAccessError) as exc:
        parse_definition(Data.structure((Data.long_unsigned(3),)))
    assert exc.value.result == 12


def test_range_is_inclusive_and_filters_by_clock() -> None:
    profile = _profile(8)
    sel = _range(_stamp(START + dt.timedelta(minutes=30)), _stamp(START + dt.timedelta(hours=1)))
    assert _imports(profile.get(2, sel)) == [1002, 1003, 1004]


def test_range_with_other_deviation_compares_instants() -> None:
    profile = _profile(8)
    utc_start = (START + dt.timedelta(minutes=30)).astimezone(dt.UTC)
    sel = _range(_stamp(utc_start), _stamp(utc_start + dt.timedelta(minutes=15)))
    assert _imports(profile.get(2, sel)) == [1002, 1003]


def test_range_with_unspecified_deviation_uses_wall_clock() -> None:
    profile = _profile(8)
    low = CosemDateTime(2026, 4, 1, 0xFF, 1, 0, 0, 0, None, None)
    high = CosemDateTime(2026, 4, 1, 0xFF, 1, 15, 0, 0, None, None)
    sel = _range(Data.date_time(low), Data.octet_string(high.to_bytes()))
    assert _imports(profile.get(2, sel)) == [1004, 1005]


def test_range_selected_columns_in_requested_order() -> None:
    profile = _profile(4)
    sel = _range(_stamp(START), _stamp(START), (EXPORT, CLOCK))
    rows = profile.get(2, sel).to_python()
    assert len(rows) == 1
    assert rows[0][0] == 0
    assert rows[0][1] == CosemDateTime.from_datetime(START, ClockStatus.OK).to_bytes()


def test_range_on_uncaptured_column_rejected() -> None:
    profile = _profile(2)
    other = CaptureObjectDefinition(3, Obis.parse("1.0.3.8.0.255"), 2)
    with pytest.raises(CosemAccessError) as exc:
        profile.get(2, _range(_stamp(START), _stamp(START), (other,)))
    assert exc.value.result == 250


def test_range_malformed_rejected() -> None:
    profile = _profile(2)
    with pytest.raises(CosemAccessError) as exc:
        profile.get(2, SelectiveAccessDescriptor(1, Data.structure((CLOCK.to_data(),))))
    assert exc.value.result == 12
    with pytest.raises(CosemAccessError) as exc:
        profile.get(2, _range(Data.octet_string(b"\xff" * 12), _stamp(START)))
    assert exc.value.result == 250


def test_unknown_selector_rejected() -> None:
    with pytest.raises(CosemAccessError):
        _profile(1).get(2, SelectiveAccessDescriptor(3, Data.null()))


def test_selective_access_only_on_buffer() -> None:
    with pytest.raises(CosemAccessError):
        _profile(1).get(3, _entry(1, 0, 1, 0))


@given(st.integers(0, 12), st.integers(0, 12), st.integers(0, 4), st.integers(0, 4))
def test_entry_descriptor_matches_slicing(a: int, b: int, c: int, d: int) -> None:
    profile = _profile(8)
    everything = profile.get(2).to_python()
    first_col, last_col = max(c, 1), 4 if d == 0 else d
    if (b and a > b) or first_col > last_col:
        with pytest.raises(CosemAccessError) as exc:
            profile.get(2, _entry(a, b, c, d))
        assert exc.value.result == 13
        return
    last_row = 8 if b == 0 else min(b, 8)
    expected = [r[first_col - 1 : last_col] for r in everything[max(a, 1) - 1 : last_row]]
    assert profile.get(2, _entry(a, b, c, d)).to_python() == expected


def test_fifo_drops_oldest() -> None:
    profile = _profile(8)
    profile.set(8, Data.double_long_unsigned(3))
    assert _imports(profile.get(2)) == [1005, 1006, 1007]
    assert profile.get(7).value == 3


def test_row_width_checked() -> None:
    with pytest.raises(ValueError, match="columns"):
        _profile(0).append((Data.null(),))


def test_set_capture_objects_clears_buffer() -> None:
    profile = _profile(4)
    profile.set(3, Data.array((CLOCK.to_data(), IMPORT.to_data())))
    assert profile.capture_objects == (CLOCK, IMPORT)
    assert profile.get(7).value == 0
    with pytest.raises(CosemAccessError):
        profile.set(2, Data.array(()))


def test_capture_period_and_sort_method_writes() -> None:
    profile = _profile(0)
    profile.set(4, Data.double_long_unsigned(300))
    assert profile.capture_period == 300
    with pytest.raises(CosemAccessError):
        profile.set(5, Data.enum(9))
    profile.set(6, IMPORT.to_data())
    assert profile.get(6) == IMPORT.to_data()


def test_row_source_feeds_buffer() -> None:
    rows = [(_stamp(START), Data.unsigned(0), Data.double_long_unsigned(7), Data.null())]
    profile = ProfileGeneric(Obis.parse("1.0.99.1.0.255"), COLUMNS, row_source=lambda: rows)
    assert _imports(profile.get(2)) == [7]
    rows.append((_stamp(START), Data.unsigned(0), Data.double_long_unsigned(8), Data.null()))
    assert profile.get(7).value == 2


def test_capture_reads_device_and_reset_empties() -> None:
    when = dt.datetime(2026, 7, 1, 12, tzinfo=dt.UTC)
    device = LogicalDevice()
    device.add(Clock(time_source=lambda: when))
    device.add(
        DataObject(STATUS.logical_name, Data.structure((Data.unsigned(5), Data.unsigned(6))))
    )
    device.add(Register(IMPORT.logical_name, Data.double_long_unsigned(42)))
    device.add(Register(EXPORT.logical_name, Data.double_long_unsigned(1)))
    status_second = CaptureObjectDefinition(1, STATUS.logical_name, 2, 2)
    profile = device.add(
        ProfileGeneric(Obis.parse("1.0.99.1.0.255"), (CLOCK, status_second, IMPORT, EXPORT))
    )
    profile.action(2, Data.integer(0))
    row = profile.get(2).to_python()[0]
    assert CosemDateTime.from_bytes(row[0]).to_datetime() == when
    assert row[1:] == [6, 42, 1]
    profile.action(1, Data.integer(0))
    assert profile.get(7).value == 0


def test_capture_without_device_fails() -> None:
    with pytest.raises(CosemAccessError) as exc:
        _profile(0).capture()
    assert exc.value.result == 2
