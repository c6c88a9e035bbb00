"""RLRQ / RLRE: A-RELEASE request and response (ACSE, BER-encoded, APPLICATION 2 and 3).

When the association was ciphered, the user information carries a glo-InitiateRequest /
glo-InitiateResponse so the release itself is protected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar, TypeVar

from smmc.dlms.apdu._ber import (
    USER_INFORMATION_TAG,
    encode_user_information,
    iter_elements,
    read_user_information,
    tlv,
)
from smmc.dlms.apdu._reader import Buffer, Reader, to_enum, u8
from smmc.dlms.apdu.ciphered import CipheredApdu, CipheredTag, ciphered_reader
from smmc.dlms.apdu.initiate import InitiateRequest, InitiateResponse
from smmc.dlms.errors import DecodeError

__all__ = ["ReleaseRequest", "ReleaseRequestReason", "ReleaseResponse", "ReleaseResponseReason"]

_REASON_TAG = 0x80

R = TypeVar("R", bound=IntEnum)
U = TypeVar("U")


class ReleaseRequestReason(IntEnum):
    """Why the client releases the association."""

    NORMAL = 0
    URGENT = 1
    USER_DEFINED = 30


class ReleaseResponseReason(IntEnum):
    """The server's answer to the release."""

    NORMAL = 0
    NOT_FINISHED = 1
    USER_DEFINED = 30


def _encode(
    tag: int,
    reason: int | None,
    user_information: InitiateRequest | InitiateResponse | CipheredApdu | None,
) -> bytes:
    body = b""
    if reason is not None:
        body += tlv(_REASON_TAG, u8(reason, "release reason"))
    if user_information is not None:
        body += encode_user_information(user_information.to_bytes())
    return tlv(tag, body)


def _decode(
    buf: Buffer,
    tag: int,
    reasons: type[R],
    decoders: Mapping[int, Callable[[Reader], U]],
    what: str,
) -> tuple[R | None, U | None]:
    reader = Reader(buf)
    offset = reader.pos
    if reader.u8(f"{what} tag") != tag:
        raise DecodeError(f"not an {what}", offset)
    body = reader.sub(reader.length(f"{what} length"), what)
    reader.expect_end(what)
    reason: R | None = None
    user_information: U | None = None
    for element_tag, element_offset, value in iter_elements(body, what):
        if element_tag == _REASON_TAG:
            code = int.from_bytes(value.take(value.remaining, "release reason"), "big")
            reason = to_enum(reasons, code, element_offset)
        elif element_tag == USER_INFORMATION_TAG:
            user_information = read_user_information(value, decoders, f"{what} user information")
        else:
            raise DecodeError(f"{what}: unexpected element tag {element_tag:#04x}", element_offset)
    return reason, user_information


_RLRQ_DECODERS: dict[int, Callable[[Reader], InitiateRequest | CipheredApdu]] = {
    InitiateRequest.TAG: InitiateRequest.read,
    CipheredTag.GLO_INITIATE_REQUEST.value: ciphered_reader(CipheredTag.GLO_INITIATE_REQUEST),
}
_RLRE_DECODERS: dict[int, Callable[[Reader], InitiateResponse | CipheredApdu]] = {
    InitiateResponse.TAG: InitiateResponse.read,
    CipheredTag.GLO_INITIATE_RESPONSE.value: ciphered_reader(CipheredTag.GLO_INITIATE_RESPONSE),
}


@dataclass(frozen=True, slots=True)
class ReleaseRequest:
    """A-RELEASE request (RLRQ); every component is optional, ``62 00`` is valid."""

    TAG: ClassVar[int] = 0x62

    reason: ReleaseRequestReason | None = None
    user_information: InitiateRequest | CipheredApdu | None = None

    def to_bytes(self) -> bytes:
        """Encode the RLRQ."""
        return _encode(self.TAG, self.reason, self.user_information)

    @classmethod
    def from_bytes(cls, buf: Buffer) -> ReleaseRequest:
        """Decode a complete RLRQ; trailing bytes are an error."""
        reason, user_information = _decode(
            buf, cls.TAG, ReleaseRequestReason, _RLRQ_DECODERS, "RLRQ"
        )
        return cls(reason, user_information)


@dataclass(frozen=True, slots=True)
class ReleaseResponse:
    """A-RELEASE response (RLRE)."""

    TAG: ClassVar[int] = 0x63

    reason: ReleaseResponseReason | None = None
    user_information: InitiateResponse | CipheredApdu | None = None

    def to_bytes(self) -> bytes:
        """Encode the RLRE."""
        return _encode(self.TAG, self.reason, self.user_information)

    @classmethod
    def from_bytes(cls, buf: Buffer) -> ReleaseResponse:
        """Decode a complete RLRE; trailing bytes are an error."""
        reason, user_information = _decode(
            buf, cls.TAG, ReleaseResponseReason, _RLRE_DECODERS, "RLRE"
        )
        return cls(reason, user_information)
