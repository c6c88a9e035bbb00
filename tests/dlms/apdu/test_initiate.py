"""InitiateRequest / InitiateResponse and the conformance block."""

from __future__ import annotations

import contextlib

import pytest
from apdu_strategies import initiate_requests, initiate_responses
from hypothesis import given
from hypothesis import strategies as st

from smmc.dlms.apdu.initiate import Conformance, InitiateRequest, InitiateResponse
from smmc.dlms.errors import DecodeError, EncodeError

# Green Book example: LN client proposing conformance 00 7E 1F, max PDU 0x04B0.
REQUEST = bytes.fromhex("01 00 00 00 06 5F1F0400007E1F 04B0")
RESPONSE = bytes.fromhex("08 00 06 5F1F040000501F 01F4 0007")


def test_green_book_request_decodes() -> None:
    request = InitiateRequest.from_bytes(REQUEST)
    assert request == InitiateRequest(
        proposed_conformance=Conformance.PRIORITY_MGMT_SUPPORTED
        | Conformance.ATTRIBUTE0_SUPPORTED_WITH_GET
        | Conformance.BLOCK_TRANSFER_WITH_GET_OR_READ
        | Conformance.BLOCK_TRANSFER_WITH_SET_OR_WRITE
        | Conformance.BLOCK_TRANSFER_WITH_ACTION
        | Conformance.MULTIPLE_REFERENCES
        | Conformance.GET
        | Conformance.SET
        | Conformance.SELECTIVE_ACCESS
        | Conformance.EVENT_NOTIFICATION
        | Conformance.ACTION,
        client_max_receive_pdu_size=0x04B0,
    )
    assert request.to_bytes() == REQUEST


def test_green_book_response_decodes() -> None:
    response = InitiateResponse.from_bytes(RESPONSE)
    assert response.negotiated_conformance == (
        Conformance.PRIORITY_MGMT_SUPPORTED
        | Conformance.BLOCK_TRANSFER_WITH_GET_OR_READ
        | Conformance.GET
        | Conformance.SET
        | Conformance.SELECTIVE_ACCESS
        | Conformance.EVENT_NOTIFICATION
        | Conformance.ACTION
    )
    assert response.server_max_receive_pdu_size == 0x01F4
    assert response.vaa_name == 0x0007
    assert response.to_bytes() == RESPONSE


def test_conformance_bit_numbering_follows_blue_book() -> None:
    # Bit 0 of the block is the MSB of the first content byte; bit 23 (action) the LSB.
    assert Conformance.GENERAL_PROTECTION.to_bytes_ber() == bytes.fromhex("5F1F0400400000")
    assert Conformance.ACTION.to_bytes_ber() == bytes.fromhex("5F1F0400000001")
    assert Conformance.GET.to_bytes_ber() == bytes.fromhex("5F1F0400000010")


def test_optional_fields_encoding() -> None:
    request = InitiateRequest(
        Conformance.GET,
        0x0400,
        dedicated_key=bytes(range(16)),
        response_allowed=False,
        proposed_quality_of_service=-1,
    )
    assert request.to_bytes() == (
        b"\x01\x01\x10"
        + bytes(range(16))
        + b"\x01\x00\x01\xff\x06"
        + bytes.fromhex("5F1F0400000010 0400")
    )


@given(initiate_requests)
def test_request_round_trip(request: InitiateRequest) -> None:
    assert InitiateRequest.from_bytes(request.to_bytes()) == request


@given(initiate_responses)
def test_response_round_trip(response: InitiateResponse) -> None:
    assert InitiateResponse.from_bytes(response.to_bytes()) == response


@pytest.mark.parametrize("cut", range(len(REQUEST)))
def test_truncated_request_raises(cut: int) -> None:
    with pytest.raises(DecodeError):
        InitiateRequest.from_bytes(REQUEST[:cut])


@pytest.mark.parametrize("cut", range(len(RESPONSE)))
def test_truncated_response_raises(cut: int) -> None:
    with pytest.raises(DecodeError):
        InitiateResponse.from_bytes(RESPONSE[:cut])


@pytest.mark.parametrize(
    "bad",
    [
        "01 00 00 00 06 5F1E0400007E1F 04B0",  # wrong conformance tag
        "01 00 00 00 06 5F1F0300007E1F 04B0",  # wrong conformance length
        "01 02 00 00 06 5F1F0400007E1F 04B0",  # presence flag 2
        "01 01 20 00 00 06 5F1F0400007E1F 04B0",  # dedicated key longer than the buffer
        "01 00 00 00 06 5F1F0400007E1F 04B0 00",  # trailing byte
        "08 00 06 5F1F040000501F 01F4 0007",  # a response is not a request
    ],
)
def test_malformed_request_raises(bad: str) -> None:
    with pytest.raises(DecodeError):
        InitiateRequest.from_bytes(bytes.fromhex(bad))


def test_out_of_range_values_refuse_to_encode() -> None:
    with pytest.raises(EncodeError):
        InitiateRequest(Conformance.GET, 0x10000).to_bytes()
    with pytest.raises(EncodeError):
        InitiateResponse(Conformance.GET, 100, negotiated_quality_of_service=200).to_bytes()


@given(st.binary(max_size=40))
def test_garbage_raises_only_decode_error(buf: bytes) -> None:
    for cls in (InitiateRequest, InitiateResponse):
        with contextlib.suppress(DecodeError):
            cls.from_bytes(buf)
