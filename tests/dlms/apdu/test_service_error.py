"""ConfirmedServiceError."""

from __future__ import annotations

import contextlib

import pytest
from apdu_strategies import u8s
from hypothesis import given
from hypothesis import strategies as st

from smmc.dlms.apdu.service_error import (
    ConfirmedService,
    ConfirmedServiceError,
    InitiateErrorCode,
    ServiceErrorKind,
)
from smmc.dlms.errors import DecodeError, EncodeError


def test_initiate_error_vector() -> None:
    error = ConfirmedServiceError.from_bytes(bytes.fromhex("0E010602"))
    assert error == ConfirmedServiceError(
        ConfirmedService.INITIATE_ERROR,
        ServiceErrorKind.INITIATE,
        InitiateErrorCode.INCOMPATIBLE_CONFORMANCE,
    )
    assert error.to_bytes() == bytes.fromhex("0E010602")


def test_read_access_error() -> None:
    error = ConfirmedServiceError(ConfirmedService.READ, ServiceErrorKind.ACCESS, 1)
    assert error.to_bytes() == bytes.fromhex("0E050501")


@given(st.sampled_from(ConfirmedService), st.sampled_from(ServiceErrorKind), u8s)
def test_round_trip(service: ConfirmedService, kind: ServiceErrorKind, value: int) -> None:
    error = ConfirmedServiceError(service, kind, value)
    assert ConfirmedServiceError.from_bytes(error.to_bytes()) == error


@pytest.mark.parametrize(
    "bad",
    ["", "0E", "0E01", "0E0106", "0E000601", "0E140601", "0E010B01", "0E01060100", "0F010601"],
)
def test_malformed_raises(bad: str) -> None:
    with pytest.raises(DecodeError):
        ConfirmedServiceError.from_bytes(bytes.fromhex(bad))


def test_value_out_of_range_refuses_to_encode() -> None:
    with pytest.raises(EncodeError):
        ConfirmedServiceError(ConfirmedService.READ, ServiceErrorKind.ACCESS, 256).to_bytes()


@given(st.binary(max_size=8))
def test_garbage_raises_only_decode_error(buf: bytes) -> None:
    with contextlib.suppress(DecodeError):
        ConfirmedServiceError.from_bytes(buf)
