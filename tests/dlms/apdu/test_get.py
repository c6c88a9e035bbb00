"""GET-Request / GET-Response and the shared descriptors."""

from __future__ import annotations

import pytest
from apdu_strategies import (
    access_results,
    attribute_descriptors,
    attributes_with_selection,
    data_values,
    get_data_results,
    invoke_ids,
    selections,
    u32s,
)
from hypothesis import given
from hypothesis import strategies as st

from smmc.dlms.apdu._common import (
    CosemAttributeDescriptor,
    DataAccessResult,
    InvokeIdAndPriority,
)
from smmc.dlms.apdu.get import (
    CosemAttributeWithSelection,
    GetRequestNext,
    GetRequestNormal,
    GetRequestWithList,
    GetResponseNormal,
    GetResponseWithDatablock,
    GetResponseWithList,
    decode_get_request,
    decode_get_response,
)
from smmc.dlms.axdr import Data
from smmc.dlms.errors import DecodeError, EncodeError
from smmc.dlms.obis import Obis

CLOCK_TIME = CosemAttributeDescriptor(8, Obis(0, 0, 1, 0, 0, 255), 2)


def test_invoke_id_and_priority_byte() -> None:
    assert InvokeIdAndPriority().to_byte() == 0xC1
    assert InvokeIdAndPriority(5, confirmed=False, high_priority=False).to_byte() == 0x05
    assert InvokeIdAndPriority.from_byte(0x4F) == InvokeIdAndPriority(15, True, False)
    assert InvokeIdAndPriority.from_byte(0xB2) == InvokeIdAndPriority(2, False, True)
    with pytest.raises(EncodeError):
        InvokeIdAndPriority(16)


def test_get_request_normal_vector() -> None:
    encoded = bytes.fromhex("C001C1 0008 0000010000FF 02 00")
    assert GetRequestNormal(CLOCK_TIME).to_bytes() == encoded
    assert GetRequestNormal.from_bytes(encoded) == GetRequestNormal(CLOCK_TIME)


def test_manufacturer_attribute_is_signed() -> None:
    encoded = GetRequestNormal(CosemAttributeDescriptor(1, Obis(0, 0, 96, 1, 0, 255), -1))
    assert encoded.to_bytes()[11] == 0xFF


def test_get_request_next_vector() -> None:
    encoded = bytes.fromhex("C002C1 00000003")
    assert GetRequestNext(3).to_bytes() == encoded
    assert decode_get_request(encoded) == GetRequestNext(3)


def test_get_request_with_list_vector() -> None:
    request = GetRequestWithList(
        (
            CosemAttributeWithSelection(CLOCK_TIME),
            CosemAttributeWithSelection(CosemAttributeDescriptor(3, Obis(1, 0, 1, 8, 0, 255), 2)),
        ),
        InvokeIdAndPriority(2),
    )
    encoded = bytes.fromhex("C003C2 02 00080000010000FF0200 00030100010800FF0200")
    assert request.to_bytes() == encoded
    assert decode_get_request(encoded) == request


def test_get_response_normal_vectors() -> None:
    value = bytes.fromhex("C401C1 00 06 00001234")
    assert GetResponseNormal.from_bytes(value) == GetResponseNormal(
        Data.double_long_unsigned(0x1234)
    )
    denied = bytes.fromhex("C401C1 01 03")
    assert decode_get_response(denied) == GetResponseNormal(DataAccessResult.READ_WRITE_DENIED)
    assert GetResponseNormal(DataAccessResult.READ_WRITE_DENIED).to_bytes() == denied


def test_get_response_with_datablock_vectors() -> None:
    raw = bytes(range(200))
    block = GetResponseWithDatablock(False, 1, raw)
    assert block.to_bytes() == bytes.fromhex("C402C1 00 00000001 00 81C8") + raw
    aborted = GetResponseWithDatablock(True, 7, DataAccessResult.LONG_GET_ABORTED)
    assert aborted.to_bytes() == bytes.fromhex("C402C1 01 00000007 01 0F")
    assert decode_get_response(block.to_bytes()) == block
    assert decode_get_response(aborted.to_bytes()) == aborted


def test_get_response_with_list_vector() -> None:
    response = GetResponseWithList((Data.long_unsigned(230), DataAccessResult.OBJECT_UNDEFINED))
    encoded = bytes.fromhex("C403C1 02 00 12 00E6 01 04")
    assert response.to_bytes() == encoded
    assert decode_get_response(encoded) == response


@given(attribute_descriptors(), selections, invoke_ids)
def test_request_normal_round_trip(
    attribute: CosemAttributeDescriptor, selection: object, iid: InvokeIdAndPriority
) -> None:
    request = GetRequestNormal(attribute, selection, iid)  # type: ignore[arg-type]
    assert decode_get_request(request.to_bytes()) == request


@given(u32s, invoke_ids)
def test_request_next_round_trip(block: int, iid: InvokeIdAndPriority) -> None:
    assert decode_get_request(GetRequestNext(block, iid).to_bytes()) == GetRequestNext(block, iid)


@given(st.lists(attributes_with_selection, max_size=5).map(tuple), invoke_ids)
def test_request_with_list_round_trip(
    items: tuple[CosemAttributeWithSelection, ...], iid: InvokeIdAndPriority
) -> None:
    request = GetRequestWithList(items, iid)
    assert decode_get_request(request.to_bytes()) == request


@given(get_data_results, invoke_ids)
def test_response_normal_round_trip(result: object, iid: InvokeIdAndPriority) -> None:
    response = GetResponseNormal(result, iid)  # type: ignore[arg-type]
    assert decode_get_response(response.to_bytes()) == response


@given(st.booleans(), u32s, st.binary(max_size=300) | access_results, invoke_ids)
def test_response_datablock_round_trip(
    last: bool, number: int, result: bytes | DataAccessResult, iid: InvokeIdAndPriority
) -> None:
    response = GetResponseWithDatablock(last, number, result, iid)
    assert decode_get_response(response.to_bytes()) == response


@given(st.lists(get_data_results, max_size=5).map(tuple), invoke_ids)
def test_response_with_list_round_trip(
    results: tuple[object, ...], iid: InvokeIdAndPriority
) -> None:
    response = GetResponseWithList(results, iid)  # type: ignore[arg-type]
    assert decode_get_response(response.to_bytes()) == response


@given(data_values)
def test_datablocks_carry_the_encoded_value(value: Data) -> None:
    # A server splits the encoded Data; the client's concatenation decodes to the same value.
    encoded = GetResponseNormal(value).to_bytes()[4:]
    blocks = [encoded[i : i + 7] for i in range(0, len(encoded), 7)]
    joined = b"".join(
        GetResponseWithDatablock.from_bytes(
            GetResponseWithDatablock(n == len(blocks), n, part).to_bytes()
        ).result  # type: ignore[misc]
        for n, part in enumerate(blocks, start=1)
    )
    assert GetResponseNormal.from_bytes(bytes.fromhex("C401C100") + joined).result == value


@pytest.mark.parametrize(
    "bad",
    [
        "C0",
        "C001",
        "C001C1",
        "C001C1 0008 0000010000FF 02",  # missing access-selection flag
        "C001C1 0008 0000010000FF 02 02",  # presence flag 2
        "C001C1 0008 0000010000FF 02 01 02",  # selector without parameters
        "C001C1 0008 0000010000FF 02 00 00",  # trailing byte
        "C002C1 000000",  # short block number
        "C003C1 03 00080000010000FF0200",  # list count larger than what follows
        "C003C1 84FFFFFFFF",  # absurd list count
        "C004C1 00000001",  # unknown choice
        "C401C1 00",  # Data missing
        "C401C1 02 00",  # unknown Get-Data-Result choice
        "C401C1 01 05",  # data-access-result 5 is not defined
        "C402C1 00 00000001 00 05 0102",  # raw data shorter than declared
        "C402C1 00 00000001 02",  # unknown block result choice
        "C403C1 02 00 1200E6",  # second result missing
    ],
)
def test_malformed_raises(bad: str) -> None:
    buf = bytes.fromhex(bad)
    decode = decode_get_request if buf[0] == 0xC0 else decode_get_response
    with pytest.raises(DecodeError):
        decode(buf)


@given(st.sampled_from([0xC0, 0xC4]), st.integers(0, 4), st.binary(max_size=60))
def test_garbage_raises_only_decode_error(tag: int, choice: int, tail: bytes) -> None:
    decode = decode_get_request if tag == 0xC0 else decode_get_response
    try:
        apdu = decode(bytes([tag, choice]) + tail)
    except DecodeError:
        return
    assert decode(apdu.to_bytes()) == apdu
