"""SET-Request / SET-Response, including block transfer."""

from __future__ import annotations

import pytest
from apdu_strategies import (
    access_results,
    attribute_descriptors,
    attributes_with_selection,
    blocks,
    data_values,
    invoke_ids,
    selections,
    u32s,
)
from hypothesis import given
from hypothesis import strategies as st

from smmc.dlms.apdu._common import (
    CosemAttributeDescriptor,
    DataAccessResult,
    DataBlockSA,
    InvokeIdAndPriority,
)
from smmc.dlms.apdu.get import CosemAttributeWithSelection
from smmc.dlms.apdu.set import (
    SetRequestNormal,
    SetRequestWithDatablock,
    SetRequestWithFirstDatablock,
    SetRequestWithList,
    SetRequestWithListAndFirstDatablock,
    SetResponseDatablock,
    SetResponseLastDatablock,
    SetResponseLastDatablockWithList,
    SetResponseNormal,
    SetResponseWithList,
    decode_set_request,
    decode_set_response,
)
from smmc.dlms.axdr import Data
from smmc.dlms.errors import DecodeError, EncodeError
from smmc.dlms.obis import Obis

DEMAND_PERIOD = CosemAttributeDescriptor(5, Obis(1, 0, 1, 4, 0, 255), 8)


def test_set_request_normal_vector() -> None:
    request = SetRequestNormal(DEMAND_PERIOD, Data.double_long_unsigned(900))
    encoded = bytes.fromhex("C101C1 0005 0100010400FF 08 00 06 00000384")
    assert request.to_bytes() == encoded
    assert decode_set_request(encoded) == request


def test_set_block_transfer_vectors() -> None:
    first = SetRequestWithFirstDatablock(DEMAND_PERIOD, DataBlockSA(False, 1, b"\x09\x81\x90abc"))
    assert first.to_bytes() == bytes.fromhex(
        "C102C1 0005 0100010400FF 08 00 00 00000001 06 098190616263"
    )
    following = SetRequestWithDatablock(DataBlockSA(True, 2, b"xyz"))
    assert following.to_bytes() == bytes.fromhex("C103C1 01 00000002 03 78797A")
    assert decode_set_request(first.to_bytes()) == first
    assert decode_set_request(following.to_bytes()) == following


def test_set_responses_vectors() -> None:
    cases = [
        (SetResponseNormal(DataAccessResult.SUCCESS), "C501C1 00"),
        (SetResponseDatablock(1), "C502C1 00000001"),
        (SetResponseLastDatablock(DataAccessResult.TYPE_UNMATCHED, 2), "C503C1 0C 00000002"),
        (
            SetResponseLastDatablockWithList(
                (DataAccessResult.SUCCESS, DataAccessResult.READ_WRITE_DENIED), 3
            ),
            "C504C1 02 00 03 00000003",
        ),
        (SetResponseWithList((DataAccessResult.OTHER_REASON,)), "C505C1 01 FA"),
    ]
    for response, hexed in cases:
        assert response.to_bytes() == bytes.fromhex(hexed)
        assert decode_set_response(bytes.fromhex(hexed)) == response


def test_with_list_needs_one_value_per_attribute() -> None:
    request = SetRequestWithList((CosemAttributeWithSelection(DEMAND_PERIOD),), ())
    with pytest.raises(EncodeError):
        request.to_bytes()
    # Two attributes, one value on the wire.
    buf = bytes.fromhex("C104C1 02 00050100010400FF0800 00050100010400FF0800 01 1100")
    with pytest.raises(DecodeError):
        decode_set_request(buf)


@given(attribute_descriptors(), data_values, selections, invoke_ids)
def test_request_normal_round_trip(
    attribute: CosemAttributeDescriptor, value: Data, selection: object, iid: InvokeIdAndPriority
) -> None:
    request = SetRequestNormal(attribute, value, selection, iid)  # type: ignore[arg-type]
    assert decode_set_request(request.to_bytes()) == request


@given(attribute_descriptors(), blocks, selections, invoke_ids)
def test_request_first_block_round_trip(
    attribute: CosemAttributeDescriptor,
    block: DataBlockSA,
    selection: object,
    iid: InvokeIdAndPriority,
) -> None:
    request = SetRequestWithFirstDatablock(attribute, block, selection, iid)  # type: ignore[arg-type]
    assert decode_set_request(request.to_bytes()) == request


@given(blocks, invoke_ids)
def test_request_block_round_trip(block: DataBlockSA, iid: InvokeIdAndPriority) -> None:
    request = SetRequestWithDatablock(block, iid)
    assert decode_set_request(request.to_bytes()) == request


@given(st.lists(st.tuples(attributes_with_selection, data_values), max_size=4), invoke_ids)
def test_request_with_list_round_trip(
    pairs: list[tuple[CosemAttributeWithSelection, Data]], iid: InvokeIdAndPriority
) -> None:
    request = SetRequestWithList(tuple(p[0] for p in pairs), tuple(p[1] for p in pairs), iid)
    assert decode_set_request(request.to_bytes()) == request


@given(st.lists(attributes_with_selection, max_size=4).map(tuple), blocks, invoke_ids)
def test_request_with_list_first_block_round_trip(
    items: tuple[CosemAttributeWithSelection, ...], block: DataBlockSA, iid: InvokeIdAndPriority
) -> None:
    request = SetRequestWithListAndFirstDatablock(items, block, iid)
    assert decode_set_request(request.to_bytes()) == request


results_lists = st.lists(access_results, max_size=6).map(tuple)


@given(
    st.one_of(
        st.builds(SetResponseNormal, access_results, invoke_ids),
        st.builds(SetResponseDatablock, u32s, invoke_ids),
        st.builds(SetResponseLastDatablock, access_results, u32s, invoke_ids),
        st.builds(SetResponseLastDatablockWithList, results_lists, u32s, invoke_ids),
        st.builds(SetResponseWithList, results_lists, invoke_ids),
    )
)
def test_response_round_trip(response: object) -> None:
    assert decode_set_response(response.to_bytes()) == response  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "bad",
    [
        "C101C1 0005 0100010400FF 08 00",  # value missing
        "C101C1 0005 0100010400FF 08 00 1100 00",  # trailing
        "C102C1 0005 0100010400FF 08 00 00 00000001 06 0981",  # raw data truncated
        "C103C1 01 000000",  # block number truncated
        "C106C1",  # unknown choice
        "C501C1 05",  # undefined data-access-result
        "C504C1 02 00 00000003",  # list shorter than declared
        "C505C1 82FFFF",  # absurd count
        "C5",
    ],
)
def test_malformed_raises(bad: str) -> None:
    buf = bytes.fromhex(bad)
    decode = decode_set_request if buf[0] == 0xC1 else decode_set_response
    with pytest.raises(DecodeError):
        decode(buf)


@given(st.sampled_from([0xC1, 0xC5]), st.integers(0, 6), st.binary(max_size=60))
def test_garbage_raises_only_decode_error(tag: int, choice: int, tail: bytes) -> None:
    decode = decode_set_request if tag == 0xC1 else decode_set_response
    try:
        apdu = decode(bytes([tag, choice]) + tail)
    except DecodeError:
        return
    assert decode(apdu.to_bytes()) == apdu
