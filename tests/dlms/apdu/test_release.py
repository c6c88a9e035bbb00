"""RLRQ / RLRE."""

from __future__ import annotations

import contextlib

import pytest
from apdu_strategies import ciphered, initiate_requests, initiate_responses
from hypothesis import given
from hypothesis import strategies as st

from smmc.dlms.apdu.ciphered import CipheredApdu, CipheredTag
from smmc.dlms.apdu.initiate import Conformance, InitiateRequest
from smmc.dlms.apdu.release import (
    ReleaseRequest,
    ReleaseRequestReason,
    ReleaseResponse,
    ReleaseResponseReason,
)
from smmc.dlms.errors import DecodeError


def test_minimal_forms() -> None:
    assert ReleaseRequest().to_bytes() == b"\x62\x00"
    assert ReleaseRequest(ReleaseRequestReason.NORMAL).to_bytes() == bytes.fromhex("6203800100")
    assert ReleaseResponse(ReleaseResponseReason.NORMAL).to_bytes() == bytes.fromhex("6303800100")
    assert ReleaseRequest.from_bytes(b"\x62\x00") == ReleaseRequest()
    assert ReleaseResponse.from_bytes(bytes.fromhex("6303800101")) == ReleaseResponse(
        ReleaseResponseReason.NOT_FINISHED
    )


def test_request_with_initiate() -> None:
    rlrq = ReleaseRequest(
        ReleaseRequestReason.NORMAL, InitiateRequest(Conformance(0x007E1F), 0x04B0)
    )
    encoded = rlrq.to_bytes()
    assert encoded == bytes.fromhex("6215 800100 BE10040E01000000065F1F0400007E1F04B0")
    assert ReleaseRequest.from_bytes(encoded) == rlrq


@given(
    st.none() | st.sampled_from(ReleaseRequestReason),
    st.none() | initiate_requests | ciphered(CipheredTag.GLO_INITIATE_REQUEST),
)
def test_request_round_trip(
    reason: ReleaseRequestReason | None, info: InitiateRequest | CipheredApdu | None
) -> None:
    rlrq = ReleaseRequest(reason, info)
    assert ReleaseRequest.from_bytes(rlrq.to_bytes()) == rlrq


@given(
    st.none() | st.sampled_from(ReleaseResponseReason),
    st.none() | initiate_responses | ciphered(CipheredTag.GLO_INITIATE_RESPONSE),
)
def test_response_round_trip(reason: ReleaseResponseReason | None, info: object) -> None:
    rlre = ReleaseResponse(reason, info)  # type: ignore[arg-type]
    assert ReleaseResponse.from_bytes(rlre.to_bytes()) == rlre


@pytest.mark.parametrize(
    "bad",
    [
        "62",  # no length
        "6203800102",  # reason 2 is not defined
        "6203800100FF",  # trailing
        "620480010000",  # element overrun
        "6203810100",  # unknown element
        "6307BE050403080006",  # truncated initiate response
        "6303800100",  # RLRE where an RLRQ is expected
        "6209BE0704052105300000",  # glo content under 5 bytes
    ],
)
def test_malformed_request_raises(bad: str) -> None:
    with pytest.raises(DecodeError):
        ReleaseRequest.from_bytes(bytes.fromhex(bad))


def test_response_refuses_ciphered_request() -> None:
    glo = CipheredApdu(CipheredTag.GLO_INITIATE_REQUEST, bytes(5)).to_bytes()
    body = bytes([0xBE, len(glo) + 2, 0x04, len(glo)]) + glo
    with pytest.raises(DecodeError):
        ReleaseResponse.from_bytes(bytes([0x63, len(body)]) + body)


@given(st.binary(max_size=40))
def test_garbage_raises_only_decode_error(buf: bytes) -> None:
    for tag, cls in ((0x62, ReleaseRequest), (0x63, ReleaseResponse)):
        with contextlib.suppress(DecodeError):
            cls.from_bytes(bytes([tag, len(buf)]) + buf)
