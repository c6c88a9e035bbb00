"""Selective access descriptors for profile generic (range and entry)."""

from __future__ import annotations

import pytest
from apdu_strategies import data_values, obis_codes, u16s, u32s
from hypothesis import given
from hypothesis import strategies as st

from smmc.dlms.apdu._common import CosemAttributeDescriptor
from smmc.dlms.apdu.get import GetRequestNormal
from smmc.dlms.apdu.selective_access import (
    CLOCK_TIME,
    CaptureObjectDefinition,
    EntryDescriptor,
    RangeDescriptor,
    SelectiveAccessDescriptor,
    decode_profile_selector,
)
from smmc.dlms.axdr import Data, encode_data
from smmc.dlms.cosem_time import CosemDateTime
from smmc.dlms.errors import DecodeError
from smmc.dlms.obis import Obis

LOAD_PROFILE = CosemAttributeDescriptor(7, Obis(1, 0, 99, 1, 0, 255), 2)
START = CosemDateTime(2024, 3, 1, 5, 0, 0, 0, 0, deviation=180)
END = CosemDateTime(2024, 3, 2, 6, 0, 0, 0, 0, deviation=180)


def test_range_descriptor_bytes() -> None:
    selection = RangeDescriptor.between(START, END).to_access_selection()
    request = GetRequestNormal(LOAD_PROFILE, selection).to_bytes()
    assert request == (
        bytes.fromhex("C001C1 0007 0100630100FF 02")
        + bytes.fromhex("01 01 0204 0204 120008 09060000010000FF 0F02 120000")
        + b"\x09\x0c"
        + START.to_bytes()
        + b"\x09\x0c"
        + END.to_bytes()
        + bytes.fromhex("0100")
    )
    decoded = GetRequestNormal.from_bytes(request)
    assert decoded.access_selection is not None
    assert decode_profile_selector(decoded.access_selection) == RangeDescriptor.between(START, END)


def test_range_descriptor_with_selected_columns() -> None:
    columns = (CLOCK_TIME, CaptureObjectDefinition(3, Obis(1, 0, 1, 8, 0, 255), 2))
    descriptor = RangeDescriptor(Data.date_time(START), Data.date_time(END), CLOCK_TIME, columns)
    data = descriptor.to_data()
    assert encode_data(data).endswith(
        bytes.fromhex(
            "0102 0204 120008 09060000010000FF 0F02 120000 0204 120003 09060100010800FF 0F02 120000"
        )
    )
    assert RangeDescriptor.from_data(data) == descriptor


def test_entry_descriptor_bytes() -> None:
    selection = EntryDescriptor(1, 96).to_access_selection()
    assert selection.to_bytes() == bytes.fromhex("02 0204 0600000001 0600000060 120001 120000")
    assert decode_profile_selector(selection) == EntryDescriptor(1, 96, 1, 0)


capture_objects = st.builds(CaptureObjectDefinition, u16s, obis_codes, st.integers(-128, 127), u16s)


@given(data_values, data_values, capture_objects, st.lists(capture_objects, max_size=4))
def test_range_round_trip(
    low: Data,
    high: Data,
    restricting: CaptureObjectDefinition,
    columns: list[CaptureObjectDefinition],
) -> None:
    descriptor = RangeDescriptor(low, high, restricting, tuple(columns))
    selection = descriptor.to_access_selection()
    request = GetRequestNormal(LOAD_PROFILE, selection)
    decoded = GetRequestNormal.from_bytes(request.to_bytes()).access_selection
    assert decoded is not None
    assert decode_profile_selector(decoded) == descriptor


@given(u32s, u32s, u16s, u16s)
def test_entry_round_trip(a: int, b: int, c: int, d: int) -> None:
    descriptor = EntryDescriptor(a, b, c, d)
    request = GetRequestNormal(LOAD_PROFILE, descriptor.to_access_selection())
    decoded = GetRequestNormal.from_bytes(request.to_bytes()).access_selection
    assert decoded is not None
    assert decode_profile_selector(decoded) == descriptor


@pytest.mark.parametrize(
    ("selector", "parameters"),
    [
        (3, EntryDescriptor().to_data()),  # unknown selector
        (2, Data.array(())),  # not a structure
        (2, Data.structure((Data.double_long_unsigned(1),) * 3)),  # too few members
        (
            2,
            Data.structure(
                (
                    Data.double_long_unsigned(1),
                    Data.double_long_unsigned(0),
                    Data.unsigned(1),  # must be long-unsigned
                    Data.long_unsigned(0),
                )
            ),
        ),
        (1, Data.structure((Data.null(), Data.null(), Data.null(), Data.array(())))),
        (
            1,
            Data.structure(
                (
                    CLOCK_TIME.to_data(),
                    Data.null(),
                    Data.null(),
                    Data.structure(()),  # selected values must be an array
                )
            ),
        ),
        (
            1,
            Data.structure(
                (
                    Data.structure(
                        (
                            Data.long_unsigned(8),
                            Data.octet_string(b"\x00\x00\x01\x00\x00"),  # 5-byte logical name
                            Data.integer(2),
                            Data.long_unsigned(0),
                        )
                    ),
                    Data.null(),
                    Data.null(),
                    Data.array(()),
                )
            ),
        ),
    ],
)
def test_malformed_selector_raises(selector: int, parameters: Data) -> None:
    with pytest.raises(DecodeError):
        decode_profile_selector(SelectiveAccessDescriptor(selector, parameters))
