"""AARQ: Green Book vectors, variants, round trips and malformed input."""

from __future__ import annotations

import contextlib

import pytest
from apdu_strategies import ciphered, context_names, initiate_requests, mechanisms
from hypothesis import given
from hypothesis import strategies as st

from smmc.dlms.apdu._ber import ApplicationContextName, AuthenticationMechanism
from smmc.dlms.apdu.aarq import Aarq
from smmc.dlms.apdu.ciphered import CipheredApdu, CipheredTag
from smmc.dlms.apdu.initiate import Conformance, InitiateRequest
from smmc.dlms.errors import DecodeError, EncodeError

NO_AUTH = bytes.fromhex("601DA109060760857405080101BE10040E01000000065F1F0400007E1F04B0")
LLS = bytes.fromhex(
    "6036A1090607608574050801018A0207808B0760857405080201"
    "AC0A80083132333435363738BE10040E01000000065F1F0400001E1DFFFF"
)


def test_lowest_level_vector() -> None:
    aarq = Aarq.from_bytes(NO_AUTH)
    assert aarq.application_context_name is ApplicationContextName.LOGICAL_NAME
    assert aarq.mechanism_name is None
    assert aarq.user_information == InitiateRequest(Conformance(0x007E1F), 0x04B0)
    assert aarq.to_bytes() == NO_AUTH


def test_low_level_security_vector() -> None:
    aarq = Aarq.from_bytes(LLS)
    assert aarq.mechanism_name is AuthenticationMechanism.LOW
    assert aarq.calling_authentication_value == b"12345678"
    assert aarq.user_information == InitiateRequest(Conformance(0x001E1D), 0xFFFF)
    assert aarq.to_bytes() == LLS


def test_hls_gmac_with_ciphered_initiate() -> None:
    glo = CipheredApdu(CipheredTag.GLO_INITIATE_REQUEST, bytes.fromhex("3000000001") + bytes(20))
    aarq = Aarq(
        ApplicationContextName.LOGICAL_NAME_WITH_CIPHERING,
        user_information=glo,
        calling_ap_title=b"MMM\x00\x00\xbc\x61\x4e",
        mechanism_name=AuthenticationMechanism.HIGH_GMAC,
        calling_authentication_value=b"K56iVagY",
    )
    encoded = aarq.to_bytes()
    assert encoded.startswith(
        bytes.fromhex("60 4F A109060760857405080103 A60A0408 4D4D4D0000BC614E")
    )
    assert bytes.fromhex("8A0207808B0760857405080205 AC0A80084B35366956616759") in encoded
    assert encoded.endswith(bytes.fromhex("BE1D041B 2119 3000000001") + bytes(20))
    assert Aarq.from_bytes(encoded) == aarq


def test_short_name_and_user_id() -> None:
    aarq = Aarq(ApplicationContextName.SHORT_NAME, calling_ae_invocation_id=200)
    encoded = aarq.to_bytes()
    assert bytes.fromhex("A904 020200C8") in encoded
    assert Aarq.from_bytes(encoded) == aarq


def test_unused_acse_fields_are_skipped() -> None:
    # called-AP-title [2] and implementation-information [29] are legal but unused by DLMS.
    body = bytes.fromhex("A109060760857405080101 A20A04084142434445464748 BD020000")
    aarq = Aarq.from_bytes(bytes([0x60, len(body)]) + body)
    assert aarq == Aarq()


@pytest.mark.parametrize(
    "aarq",
    [
        Aarq(calling_authentication_value=b"secret"),  # value without mechanism
        Aarq(mechanism_name=AuthenticationMechanism.HIGH_GMAC, calling_authentication_value=b"x"),
        Aarq(
            user_information=CipheredApdu(CipheredTag.GLO_GET_REQUEST, bytes(5)),
        ),
    ],
)
def test_inconsistent_aarq_refuses_to_encode(aarq: Aarq) -> None:
    with pytest.raises(EncodeError):
        aarq.to_bytes()


aarqs = st.builds(
    Aarq,
    application_context_name=context_names,
    user_information=st.none() | initiate_requests | ciphered(CipheredTag.GLO_INITIATE_REQUEST),
    calling_ap_title=st.none() | st.binary(min_size=8, max_size=8),
    mechanism_name=st.none(),
    calling_ae_invocation_id=st.none() | st.integers(0, 255),
)


@given(aarqs, st.none() | mechanisms, st.binary(min_size=8, max_size=64))
def test_round_trip(aarq: Aarq, mechanism: AuthenticationMechanism | None, secret: bytes) -> None:
    if mechanism is not None:
        aarq = Aarq(
            aarq.application_context_name,
            aarq.user_information,
            aarq.calling_ap_title,
            mechanism,
            secret,
            aarq.calling_ae_invocation_id,
        )
    assert Aarq.from_bytes(aarq.to_bytes()) == aarq


@pytest.mark.parametrize("cut", range(len(LLS)))
def test_truncated_raises(cut: int) -> None:
    with pytest.raises(DecodeError):
        Aarq.from_bytes(LLS[:cut])


@pytest.mark.parametrize(
    "bad",
    [
        "6000",  # no application context name
        "6001A1",  # element tag without length
        "601DA109060760857405080109BE10040E01000000065F1F0400007E1F04B0",  # context 9
        "601DA109060760857405080201BE10040E01000000065F1F0400007E1F04B0",  # mechanism arc
        "601DA109060760857405080101BE10040E08000000065F1F0400007E1F04B0",  # response inside
        "6010A109060760857405080101B1030201FF",  # unknown element tag 0xB1
        "601DA109060760857405080101BE10040F01000000065F1F0400007E1F04B0",  # inner length
        "601EA109060760857405080101BE10040E01000000065F1F0400007E1F04B000",  # padded
        "6103A10100",  # AARE tag
        "6017A109060760857405080101AC0A80083132333435363738",  # value without mechanism
        "601DA1090607608574050801018A0207808B0760857405080205AC03800141",  # 1-byte challenge
    ],
)
def test_malformed_raises(bad: str) -> None:
    with pytest.raises(DecodeError):
        Aarq.from_bytes(bytes.fromhex(bad))


@given(st.binary(max_size=80))
def test_garbage_raises_only_decode_error(buf: bytes) -> None:
    with contextlib.suppress(DecodeError):
        Aarq.from_bytes(b"\x60" + bytes([len(buf)]) + buf)
