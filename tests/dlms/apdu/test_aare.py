"""AARE: Green Book vectors, rejection diagnostics, round trips and malformed input."""

from __future__ import annotations

import contextlib

import pytest
from apdu_strategies import ciphered, context_names, initiate_responses, mechanisms, u8s
from hypothesis import given
from hypothesis import strategies as st

from smmc.dlms.apdu._ber import ApplicationContextName, AuthenticationMechanism
from smmc.dlms.apdu.aare import (
    Aare,
    AcseServiceProviderDiagnostic,
    AcseServiceUserDiagnostic,
    AssociationResult,
)
from smmc.dlms.apdu.ciphered import CipheredApdu, CipheredTag
from smmc.dlms.apdu.initiate import Conformance, InitiateResponse
from smmc.dlms.apdu.service_error import (
    ConfirmedService,
    ConfirmedServiceError,
    InitiateErrorCode,
    ServiceErrorKind,
)
from smmc.dlms.errors import DecodeError, EncodeError

ACCEPTED = bytes.fromhex(
    "6129A109060760857405080101A203020100A305A103020100BE10040E0800065F1F040000501F01F40007"
)
# Rejected permanently: application context name not supported, with initiate error.
REJECTED = bytes.fromhex("611FA109060760857405080102A203020101A305A103020102BE0604040E010601")


def test_accepted_vector() -> None:
    aare = Aare.from_bytes(ACCEPTED)
    assert aare.result is AssociationResult.ACCEPTED
    assert aare.result_source_diagnostic is AcseServiceUserDiagnostic.NULL
    assert aare.user_information == InitiateResponse(Conformance(0x00501F), 0x01F4)
    assert aare.to_bytes() == ACCEPTED


def test_rejected_with_confirmed_service_error() -> None:
    aare = Aare.from_bytes(REJECTED)
    assert aare == Aare(
        AssociationResult.REJECTED_PERMANENT,
        AcseServiceUserDiagnostic.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED,
        ApplicationContextName.SHORT_NAME,
        ConfirmedServiceError(
            ConfirmedService.INITIATE_ERROR,
            ServiceErrorKind.INITIATE,
            InitiateErrorCode.DLMS_VERSION_TOO_LOW,
        ),
    )
    assert aare.to_bytes() == REJECTED


def test_provider_diagnostic_uses_tag_a2() -> None:
    aare = Aare(
        AssociationResult.REJECTED_TRANSIENT,
        AcseServiceProviderDiagnostic.NO_COMMON_ACSE_VERSION,
    )
    encoded = aare.to_bytes()
    assert bytes.fromhex("A305A203020102") in encoded
    decoded = Aare.from_bytes(encoded)
    assert isinstance(decoded.result_source_diagnostic, AcseServiceProviderDiagnostic)
    assert decoded == aare


def test_hls_gmac_pass_two() -> None:
    aare = Aare(
        AssociationResult.ACCEPTED,
        AcseServiceUserDiagnostic.AUTHENTICATION_REQUIRED,
        ApplicationContextName.LOGICAL_NAME_WITH_CIPHERING,
        CipheredApdu(CipheredTag.GLO_INITIATE_RESPONSE, bytes.fromhex("3000000101") + bytes(25)),
        responding_ap_title=b"ABCDEFGH",
        mechanism_name=AuthenticationMechanism.HIGH_GMAC,
        responding_authentication_value=bytes(range(16)),
    )
    encoded = aare.to_bytes()
    assert bytes.fromhex("A305A10302010E A40A04084142434445464748") in encoded
    assert bytes.fromhex("88020780 8907 60857405080205") in encoded
    assert bytes.fromhex("AA1280 10") + bytes(range(16)) in encoded
    assert Aare.from_bytes(encoded) == aare


def test_wrong_ciphered_user_information_refuses_to_encode() -> None:
    aare = Aare(
        AssociationResult.ACCEPTED,
        AcseServiceUserDiagnostic.NULL,
        user_information=CipheredApdu(CipheredTag.GLO_INITIATE_REQUEST, bytes(5)),
    )
    with pytest.raises(EncodeError):
        aare.to_bytes()


diagnostics = st.sampled_from(AcseServiceUserDiagnostic) | st.sampled_from(
    AcseServiceProviderDiagnostic
)
aares = st.builds(
    Aare,
    result=st.sampled_from(AssociationResult),
    result_source_diagnostic=diagnostics,
    application_context_name=context_names,
    user_information=st.none()
    | initiate_responses
    | ciphered(CipheredTag.GLO_INITIATE_RESPONSE)
    | st.builds(
        ConfirmedServiceError,
        st.sampled_from(ConfirmedService),
        st.sampled_from(ServiceErrorKind),
        u8s,
    ),
    responding_ap_title=st.none() | st.binary(max_size=8),
    mechanism_name=st.none() | mechanisms,
)


@given(aares, st.none() | st.binary(min_size=8, max_size=64))
def test_round_trip(aare: Aare, challenge: bytes | None) -> None:
    if aare.mechanism_name is not None and challenge is not None:
        aare = Aare(
            aare.result,
            aare.result_source_diagnostic,
            aare.application_context_name,
            aare.user_information,
            aare.responding_ap_title,
            aare.mechanism_name,
            challenge,
        )
    assert Aare.from_bytes(aare.to_bytes()) == aare


@pytest.mark.parametrize("cut", range(len(ACCEPTED)))
def test_truncated_raises(cut: int) -> None:
    with pytest.raises(DecodeError):
        Aare.from_bytes(ACCEPTED[:cut])


@pytest.mark.parametrize(
    "bad",
    [
        "6117A109060760857405080101A305A103020100",  # result missing
        "6110A109060760857405080101A203020100",  # diagnostic missing
        "6119A109060760857405080101A203020103A305A103020100",  # result 3
        "6119A109060760857405080101A203020100A305A303020100",  # diagnostic source tag A3
        "6119A109060760857405080101A203020100A305A10302010F",  # user diagnostic 15
        "6119A109060760857405080101A203020100A305A1030401FF",  # diagnostic not INTEGER
        "601DA109060760857405080101BE10040E01000000065F1F0400007E1F04B0",  # AARQ
        # responding authentication value without a mechanism name
        "611FA109060760857405080101A203020100A305A103020100AA0480024142",
    ],
)
def test_malformed_raises(bad: str) -> None:
    with pytest.raises(DecodeError):
        Aare.from_bytes(bytes.fromhex(bad))


@given(st.binary(max_size=80))
def test_garbage_raises_only_decode_error(buf: bytes) -> None:
    with contextlib.suppress(DecodeError):
        Aare.from_bytes(b"\x61" + bytes([len(buf)]) + buf)


def test_a_truncated_element_is_named_in_the_error() -> None:
    with pytest.raises(DecodeError, match=r"^AARE element 0xa1: declared length 5 exceeds the 1 "):
        Aare.from_bytes(bytes.fromhex("6103A10502"))
