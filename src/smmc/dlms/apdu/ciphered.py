"""Ciphered APDU containers: service-specific glo-/ded- tags and general-glo-ciphering.

These classes only frame the protected content ``SC ‖ IC ‖ ciphertext ‖ tag`` produced and
consumed by :mod:`smmc.dlms.security`; they never touch keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

from smmc.dlms.apdu._reader import Buffer, Reader, octet_string
from smmc.dlms.errors import DecodeError, EncodeError

__all__ = [
    "CipheredApdu",
    "CipheredTag",
    "GeneralDedCiphering",
    "GeneralGloCiphering",
    "ciphered_reader",
]

_HEADER_SIZE = 5  # security control byte + 4-byte invocation counter


class CipheredTag(IntEnum):
    """Tags of the service-specific ciphered APDUs (global and dedicated key)."""

    GLO_INITIATE_REQUEST = 0x21
    GLO_INITIATE_RESPONSE = 0x28
    GLO_GET_REQUEST = 0xC8
    GLO_SET_REQUEST = 0xC9
    GLO_EVENT_NOTIFICATION_REQUEST = 0xCA
    GLO_ACTION_REQUEST = 0xCB
    GLO_GET_RESPONSE = 0xCC
    GLO_SET_RESPONSE = 0xCD
    GLO_ACTION_RESPONSE = 0xCF
    DED_GET_REQUEST = 0xD0
    DED_SET_REQUEST = 0xD1
    DED_EVENT_NOTIFICATION_REQUEST = 0xD2
    DED_ACTION_REQUEST = 0xD3
    DED_GET_RESPONSE = 0xD4
    DED_SET_RESPONSE = 0xD5
    DED_ACTION_RESPONSE = 0xD7


def _check_content(content: bytes) -> None:
    if len(content) < _HEADER_SIZE:
        raise EncodeError("ciphered content needs at least SC and a 4-byte invocation counter")


class _ProtectedContent:
    """Accessors over ``content`` = SC ‖ IC ‖ ciphertext ‖ tag."""

    __slots__ = ()
    content: bytes

    @property
    def security_control(self) -> int:
        """The security control byte (suite, authenticated/encrypted bits)."""
        return self.content[0]

    @property
    def invocation_counter(self) -> int:
        """The sender's invocation counter, needed for replay protection before deciphering."""
        return int.from_bytes(self.content[1:_HEADER_SIZE], "big")


def _read_content(reader: Reader, what: str) -> bytes:
    offset = reader.pos
    content = reader.octet_string(what)
    if len(content) < _HEADER_SIZE:
        raise DecodeError(f"{what}: {len(content)} byte(s), too short for SC and IC", offset)
    return content


@dataclass(frozen=True, slots=True)
class CipheredApdu(_ProtectedContent):
    """``tag ‖ length ‖ SC ‖ IC ‖ ciphertext ‖ tag`` for one of :class:`CipheredTag`."""

    tag: CipheredTag
    content: bytes

    def to_bytes(self) -> bytes:
        """Encode the tag and the length-prefixed protected content."""
        _check_content(self.content)
        return bytes([self.tag]) + octet_string(self.content)

    @classmethod
    def from_bytes(cls, buf: Buffer) -> CipheredApdu:
        """Decode a complete ciphered APDU; trailing bytes are an error."""
        reader = Reader(buf)
        value = cls.read(reader)
        reader.expect_end("ciphered apdu")
        return value

    @classmethod
    def read(cls, reader: Reader) -> CipheredApdu:
        """Decode a ciphered APDU at the reader's position."""
        offset = reader.pos
        raw_tag = reader.u8("ciphered apdu tag")
        try:
            tag = CipheredTag(raw_tag)
        except ValueError as exc:
            raise DecodeError(f"not a ciphered apdu tag: {raw_tag:#04x}", offset) from exc
        return cls(tag, _read_content(reader, "ciphered content"))


def ciphered_reader(expected: CipheredTag) -> Callable[[Reader], CipheredApdu]:
    """A decoder that accepts only ciphered APDUs with tag ``expected`` (for user information)."""

    def read(reader: Reader) -> CipheredApdu:
        offset = reader.pos
        apdu = CipheredApdu.read(reader)
        if apdu.tag is not expected:
            raise DecodeError(f"expected {expected.name}, got {apdu.tag.name}", offset)
        return apdu

    return read


@dataclass(frozen=True, slots=True)
class GeneralGloCiphering(_ProtectedContent):
    """``DB ‖ system-title ‖ ciphered-content``: any APDU protected with the global key.

    The system title travels with the APDU, so a receiver can pick the sender's keys
    (typical for pushed DataNotifications).
    """

    TAG: ClassVar[int] = 0xDB

    system_title: bytes
    content: bytes

    def to_bytes(self) -> bytes:
        """Encode the tag, the length-prefixed system title and protected content."""
        _check_content(self.content)
        return bytes([self.TAG]) + octet_string(self.system_title) + octet_string(self.content)

    @classmethod
    def from_bytes(cls, buf: Buffer) -> GeneralGloCiphering:
        """Decode a complete general ciphering APDU; trailing bytes are an error."""
        reader = Reader(buf)
        offset = reader.pos
        if reader.u8("general ciphering tag") != cls.TAG:
            raise DecodeError(f"not a {cls.__name__} apdu", offset)
        system_title = reader.octet_string("system title")
        content = _read_content(reader, "ciphered content")
        reader.expect_end("general ciphering")
        return cls(system_title, content)


@dataclass(frozen=True, slots=True)
class GeneralDedCiphering(GeneralGloCiphering):
    """``DC ‖ system-title ‖ ciphered-content``: the same framing with the dedicated key."""

    TAG: ClassVar[int] = 0xDC
