"""ConfirmedServiceError: the server's refusal of a confirmed service (e.g. the initiate).

It travels alone (tag 0x0E) or inside an AARE's user information when the xDLMS context
cannot be established.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

from smmc.dlms.apdu._reader import Buffer, Reader, u8
from smmc.dlms.errors import DecodeError

__all__ = ["ConfirmedService", "ConfirmedServiceError", "InitiateErrorCode", "ServiceErrorKind"]


class ConfirmedService(IntEnum):
    """The service that failed (ConfirmedServiceError CHOICE tag)."""

    INITIATE_ERROR = 1
    GET_STATUS = 2
    GET_NAME_LIST = 3
    GET_VARIABLE_ATTRIBUTE = 4
    READ = 5
    WRITE = 6
    GET_DATA_SET_ATTRIBUTE = 7
    GET_TI_ATTRIBUTE = 8
    CHANGE_SCOPE = 9
    START = 10
    STOP = 11
    RESUME = 12
    MAKE_USABLE = 13
    INITIATE_LOAD = 14
    LOAD_SEGMENT = 15
    TERMINATE_LOAD = 16
    INITIATE_UPLOAD = 17
    UPLOAD_SEGMENT = 18
    TERMINATE_UPLOAD = 19


class ServiceErrorKind(IntEnum):
    """ServiceError CHOICE tag: which family of error the ``value`` enumerates."""

    APPLICATION_REFERENCE = 0
    HARDWARE_RESOURCE = 1
    VDE_STATE_ERROR = 2
    SERVICE = 3
    DEFINITION = 4
    ACCESS = 5
    INITIATE = 6
    LOAD_DATA_SET = 7
    CHANGE_SCOPE = 8
    TASK = 9
    OTHER = 10


class InitiateErrorCode(IntEnum):
    """Values of ``ServiceErrorKind.INITIATE`` (why the xDLMS context was refused)."""

    OTHER = 0
    DLMS_VERSION_TOO_LOW = 1
    INCOMPATIBLE_CONFORMANCE = 2
    PDU_SIZE_TOO_SHORT = 3
    REFUSED_BY_THE_VDE_HANDLER = 4


@dataclass(frozen=True, slots=True)
class ConfirmedServiceError:
    """``0E service error-kind value``; ``value`` is the enumeration of ``error``."""

    TAG: ClassVar[int] = 0x0E

    service: ConfirmedService
    error: ServiceErrorKind
    value: int

    def to_bytes(self) -> bytes:
        """Encode the three one-byte fields after the tag."""
        return bytes([self.TAG, self.service, self.error]) + u8(self.value, "service error value")

    @classmethod
    def from_bytes(cls, buf: Buffer) -> ConfirmedServiceError:
        """Decode a complete ConfirmedServiceError; trailing bytes are an error."""
        reader = Reader(buf)
        value = cls.read(reader)
        reader.expect_end("confirmed-service-error")
        return value

    @classmethod
    def read(cls, reader: Reader) -> ConfirmedServiceError:
        """Decode a ConfirmedServiceError at the reader's position."""
        offset = reader.pos
        if reader.u8("confirmed-service-error tag") != cls.TAG:
            raise DecodeError("not a confirmed-service-error", offset)
        service = reader.enum(ConfirmedService, "confirmed service")
        error = reader.enum(ServiceErrorKind, "service error kind")
        return cls(service, error, reader.u8("service error value"))
