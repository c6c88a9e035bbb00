"""ExceptionResponse."""

from __future__ import annotations

import pytest
from apdu_strategies import u32s
from hypothesis import given
from hypothesis import strategies as st

from smmc.dlms.apdu.exception import ExceptionResponse, ExceptionServiceError, StateError
from smmc.dlms.errors import DecodeError, EncodeError


def test_service_unknown_vector() -> None:
    response = ExceptionResponse.from_bytes(bytes.fromhex("D80202"))
    assert response == ExceptionResponse(
        StateError.SERVICE_UNKNOWN, ExceptionServiceError.SERVICE_NOT_SUPPORTED
    )
    assert response.to_bytes() == bytes.fromhex("D80202")


def test_invocation_counter_error_carries_expected_counter() -> None:
    encoded = bytes.fromhex("D8010600001234")
    response = ExceptionResponse.from_bytes(encoded)
    assert response.service_error is ExceptionServiceError.INVOCATION_COUNTER_ERROR
    assert response.invocation_counter == 0x1234
    assert response.to_bytes() == encoded


@given(st.sampled_from(StateError), st.sampled_from(ExceptionServiceError), u32s)
def test_round_trip(state: StateError, service: ExceptionServiceError, counter: int) -> None:
    with_counter = service is ExceptionServiceError.INVOCATION_COUNTER_ERROR
    response = ExceptionResponse(state, service, counter if with_counter else None)
    assert ExceptionResponse.from_bytes(response.to_bytes()) == response


@pytest.mark.parametrize(
    "bad", ["", "D8", "D801", "D80002", "D80107", "D8010600", "D8010203", "C40102"]
)
def test_malformed_raises(bad: str) -> None:
    with pytest.raises(DecodeError):
        ExceptionResponse.from_bytes(bytes.fromhex(bad))


def test_counter_must_match_the_error() -> None:
    with pytest.raises(EncodeError):
        ExceptionResponse(
            StateError.SERVICE_NOT_ALLOWED, ExceptionServiceError.PDU_TOO_LONG, 5
        ).to_bytes()
    with pytest.raises(EncodeError):
        ExceptionResponse(
            StateError.SERVICE_NOT_ALLOWED, ExceptionServiceError.INVOCATION_COUNTER_ERROR
        ).to_bytes()
