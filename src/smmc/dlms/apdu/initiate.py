"""xDLMS InitiateRequest / InitiateResponse, carried in the AARQ / AARE user information.

They negotiate the DLMS version, the conformance block (which services the association may
use) and the largest APDU each side accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntFlag
from typing import ClassVar

from smmc.dlms.apdu._reader import Buffer, Reader, i8, octet_string, u8, u16
from smmc.dlms.errors import DecodeError

__all__ = ["Conformance", "InitiateRequest", "InitiateResponse"]

_CONFORMANCE_HEADER = bytes.fromhex("5F1F04")  # [APPLICATION 31] BIT STRING, 4 content bytes
VAA_NAME_LN = 0x0007


class Conformance(IntFlag):
    """The 24-bit conformance block; bit n of the Blue Book is ``1 << (23 - n)``."""

    RESERVED_ZERO = 1 << 23
    GENERAL_PROTECTION = 1 << 22
    GENERAL_BLOCK_TRANSFER = 1 << 21
    READ = 1 << 20
    WRITE = 1 << 19
    UNCONFIRMED_WRITE = 1 << 18
    RESERVED_SIX = 1 << 17
    RESERVED_SEVEN = 1 << 16
    ATTRIBUTE0_SUPPORTED_WITH_SET = 1 << 15
    PRIORITY_MGMT_SUPPORTED = 1 << 14
    ATTRIBUTE0_SUPPORTED_WITH_GET = 1 << 13
    BLOCK_TRANSFER_WITH_GET_OR_READ = 1 << 12
    BLOCK_TRANSFER_WITH_SET_OR_WRITE = 1 << 11
    BLOCK_TRANSFER_WITH_ACTION = 1 << 10
    MULTIPLE_REFERENCES = 1 << 9
    INFORMATION_REPORT = 1 << 8
    DATA_NOTIFICATION = 1 << 7
    ACCESS = 1 << 6
    PARAMETERIZED_ACCESS = 1 << 5
    GET = 1 << 4
    SET = 1 << 3
    SELECTIVE_ACCESS = 1 << 2
    EVENT_NOTIFICATION = 1 << 1
    ACTION = 1 << 0

    def to_bytes_ber(self) -> bytes:
        """Encode as the BER bit string ``5F1F 04 00 xx xx xx``."""
        return _CONFORMANCE_HEADER + b"\x00" + int(self).to_bytes(3, "big")

    @classmethod
    def read(cls, reader: Reader) -> Conformance:
        """Decode the BER bit string form from ``reader``."""
        offset = reader.pos
        header = reader.take(3, "conformance header")
        if header != _CONFORMANCE_HEADER:
            raise DecodeError(f"conformance: bad header {header.hex()}", offset)
        unused = reader.u8("conformance unused bits")
        if unused > 7:
            raise DecodeError(f"conformance: {unused} unused bits", offset + 3)
        return cls(int.from_bytes(reader.take(3, "conformance bits"), "big"))


def _optional_i8(value: int | None, what: str) -> bytes:
    return b"\x00" if value is None else b"\x01" + i8(value, what)


@dataclass(frozen=True, slots=True)
class InitiateRequest:
    """xDLMS-Initiate.request: what the client proposes for the association."""

    TAG: ClassVar[int] = 0x01

    proposed_conformance: Conformance
    client_max_receive_pdu_size: int = 0xFFFF
    proposed_dlms_version_number: int = 6
    dedicated_key: bytes | None = None
    response_allowed: bool = True
    proposed_quality_of_service: int | None = None

    def to_bytes(self) -> bytes:
        """Encode with the A-XDR OPTIONAL/DEFAULT flags (response-allowed TRUE is implicit)."""
        key = b"\x00" if self.dedicated_key is None else b"\x01" + octet_string(self.dedicated_key)
        allowed = b"\x00" if self.response_allowed else b"\x01\x00"
        return (
            bytes([self.TAG])
            + key
            + allowed
            + _optional_i8(self.proposed_quality_of_service, "proposed quality of service")
            + u8(self.proposed_dlms_version_number, "dlms version")
            + self.proposed_conformance.to_bytes_ber()
            + u16(self.client_max_receive_pdu_size, "client max receive pdu size")
        )

    @classmethod
    def from_bytes(cls, buf: Buffer) -> InitiateRequest:
        """Decode a complete InitiateRequest; trailing bytes are an error."""
        reader = Reader(buf)
        value = cls.read(reader)
        reader.expect_end("initiate-request")
        return value

    @classmethod
    def read(cls, reader: Reader) -> InitiateRequest:
        """Decode an InitiateRequest at the reader's position."""
        offset = reader.pos
        if reader.u8("initiate-request tag") != cls.TAG:
            raise DecodeError("not an initiate-request", offset)
        key = reader.octet_string("dedicated key") if reader.optional("dedicated key") else None
        allowed = (
            reader.boolean("response allowed") if reader.optional("response allowed") else True
        )
        qos = reader.i8("quality of service") if reader.optional("quality of service") else None
        version = reader.u8("dlms version")
        conformance = Conformance.read(reader)
        pdu_size = reader.u16("client max receive pdu size")
        return cls(
            proposed_conformance=conformance,
            client_max_receive_pdu_size=pdu_size,
            proposed_dlms_version_number=version,
            dedicated_key=key,
            response_allowed=allowed,
            proposed_quality_of_service=qos,
        )


@dataclass(frozen=True, slots=True)
class InitiateResponse:
    """xDLMS-Initiate.response: what the server grants (conformance is the intersection)."""

    TAG: ClassVar[int] = 0x08

    negotiated_conformance: Conformance
    server_max_receive_pdu_size: int
    negotiated_dlms_version_number: int = 6
    negotiated_quality_of_service: int | None = None
    vaa_name: int = VAA_NAME_LN

    def to_bytes(self) -> bytes:
        """Encode; ``vaa_name`` is 0x0007 for LN referencing."""
        return (
            bytes([self.TAG])
            + _optional_i8(self.negotiated_quality_of_service, "negotiated quality of service")
            + u8(self.negotiated_dlms_version_number, "dlms version")
            + self.negotiated_conformance.to_bytes_ber()
            + u16(self.server_max_receive_pdu_size, "server max receive pdu size")
            + u16(self.vaa_name, "vaa name")
        )

    @classmethod
    def from_bytes(cls, buf: Buffer) -> InitiateResponse:
        """Decode a complete InitiateResponse; trailing bytes are an error."""
        reader = Reader(buf)
        value = cls.read(reader)
        reader.expect_end("initiate-response")
        return value

    @classmethod
    def read(cls, reader: Reader) -> InitiateResponse:
        """Decode an InitiateResponse at the reader's position."""
        offset = reader.pos
        if reader.u8("initiate-response tag") != cls.TAG:
            raise DecodeError("not an initiate-response", offset)
        qos = reader.i8("quality of service") if reader.optional("quality of service") else None
        version = reader.u8("dlms version")
        conformance = Conformance.read(reader)
        pdu_size = reader.u16("server max receive pdu size")
        vaa_name = reader.u16("vaa name")
        return cls(
            negotiated_conformance=conformance,
            server_max_receive_pdu_size=pdu_size,
            negotiated_dlms_version_number=version,
            negotiated_quality_of_service=qos,
            vaa_name=vaa_name,
        )
