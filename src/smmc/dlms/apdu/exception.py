"""EXCEPTION-Response: the server's answer to an APDU it cannot even parse or allow.

Unlike a data-access-result it carries no invoke id, so the client must fail the pending
request it belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

from smmc.dlms.apdu._reader import Buffer, Reader, u32
from smmc.dlms.errors import DecodeError, EncodeError

__all__ = ["ExceptionResponse", "ExceptionServiceError", "StateError"]


class StateError(IntEnum):
    """Why the APDU was refused in the current state."""

    SERVICE_NOT_ALLOWED = 1
    SERVICE_UNKNOWN = 2


class ExceptionServiceError(IntEnum):
    """Which service-level problem was found."""

    OPERATION_NOT_POSSIBLE = 1
    SERVICE_NOT_SUPPORTED = 2
    OTHER_REASON = 3
    PDU_TOO_LONG = 4
    DECIPHERING_ERROR = 5
    INVOCATION_COUNTER_ERROR = 6


@dataclass(frozen=True, slots=True)
class ExceptionResponse:
    """``D8 state-error service-error [invocation counter]``.

    ``invocation_counter`` is present exactly when ``service_error`` is
    INVOCATION_COUNTER_ERROR: the server tells the client the counter it expects, so the client
    can resynchronise.
    """

    TAG: ClassVar[int] = 0xD8

    state_error: StateError
    service_error: ExceptionServiceError
    invocation_counter: int | None = None

    def to_bytes(self) -> bytes:
        """Encode; the counter is required for (and only for) invocation-counter-error."""
        counter_error = self.service_error is ExceptionServiceError.INVOCATION_COUNTER_ERROR
        if counter_error != (self.invocation_counter is not None):
            raise EncodeError("invocation_counter goes with invocation-counter-error only")
        out = bytes([self.TAG, self.state_error, self.service_error])
        if self.invocation_counter is not None:
            out += u32(self.invocation_counter, "invocation counter")
        return out

    @classmethod
    def from_bytes(cls, buf: Buffer) -> ExceptionResponse:
        """Decode a complete ExceptionResponse; trailing bytes are an error."""
        reader = Reader(buf)
        offset = reader.pos
        if reader.u8("exception-response tag") != cls.TAG:
            raise DecodeError("not an exception-response", offset)
        state = reader.enum(StateError, "state error")
        service = reader.enum(ExceptionServiceError, "service error")
        counter = None
        if service is ExceptionServiceError.INVOCATION_COUNTER_ERROR:
            counter = reader.u32("invocation counter")
        reader.expect_end("exception-response")
        return cls(state, service, counter)
