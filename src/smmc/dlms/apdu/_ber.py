"""Minimal BER (X.690) helpers for the ACSE APDUs (AARQ, AARE, RLRQ, RLRE).

ACSE uses single-byte context tags only, so a TLV is ``tag ‖ length ‖ value`` with the same
length form as A-XDR.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from enum import IntEnum
from typing import TypeVar

from smmc.dlms.apdu._reader import Reader, encode_length
from smmc.dlms.errors import DecodeError, EncodeError

__all__ = [
    "DLMS_UA_PREFIX",
    "USER_INFORMATION_TAG",
    "ApplicationContextName",
    "AuthenticationMechanism",
    "decode_acse_requirements",
    "decode_authentication_value",
    "decode_context_name",
    "decode_integer",
    "decode_mechanism_name",
    "decode_octet_string",
    "encode_acse_requirements",
    "encode_authentication_value",
    "encode_context_name",
    "encode_integer",
    "encode_mechanism_name",
    "encode_octet_string",
    "encode_user_information",
    "iter_elements",
    "read_user_information",
    "tlv",
]

# joint-iso-ccitt(2) country(16) country-name(756) identified-organization(5) DLMS-UA(8)
DLMS_UA_PREFIX = bytes.fromhex("60857405 08")
_OID_TAG = 0x06
_OCTET_STRING_TAG = 0x04
_INTEGER_TAG = 0x02
_CHARSTRING_TAG = 0x80
_CONTEXT_NAME_ARC = 1
_MECHANISM_NAME_ARC = 2
USER_INFORMATION_TAG = 0xBE

T = TypeVar("T")


class ApplicationContextName(IntEnum):
    """Last arc of the DLMS application context name (Green Book): referencing and ciphering."""

    LOGICAL_NAME = 1
    SHORT_NAME = 2
    LOGICAL_NAME_WITH_CIPHERING = 3
    SHORT_NAME_WITH_CIPHERING = 4


class AuthenticationMechanism(IntEnum):
    """Last arc of the DLMS authentication mechanism name (Green Book)."""

    LOWEST = 0
    LOW = 1
    HIGH = 2
    HIGH_MD5 = 3
    HIGH_SHA1 = 4
    HIGH_GMAC = 5
    HIGH_SHA256 = 6
    HIGH_ECDSA = 7


def tlv(tag: int, value: bytes) -> bytes:
    """Encode one BER element with a single-byte tag."""
    return bytes([tag]) + encode_length(len(value)) + value


def iter_elements(reader: Reader, what: str) -> Iterator[tuple[int, int, Reader]]:
    """Yield ``(tag, offset, value_reader)`` for each element until the reader is empty."""
    while reader.remaining:
        offset = reader.pos
        tag = reader.u8(what)  # a byte remains
        if tag & 0x1F == 0x1F:
            raise DecodeError(f"{what}: multi-byte tag {tag:#04x} not supported", offset)
        try:
            value = reader.sub(reader.length(what), what)
        except DecodeError as exc:
            # the element is named only when it is faulty: formatting its label for every
            # element cost a third of decoding an AARE
            reason = exc.reason.removeprefix(what)
            raise DecodeError(f"{what} element {tag:#04x}{reason}", exc.offset) from None
        yield tag, offset, value


def _single_inner(reader: Reader, expected_tag: int, what: str) -> Reader:
    """Read exactly one inner element with ``expected_tag`` filling the whole reader."""
    offset = reader.pos
    tag = reader.u8(what)
    if tag != expected_tag:
        raise DecodeError(f"{what}: expected tag {expected_tag:#04x}, got {tag:#04x}", offset)
    inner = reader.sub(reader.length(what), what)
    reader.expect_end(what)
    return inner


def _dlms_oid(arc: int, value: int) -> bytes:
    """Content octets of the object identifier ``2.16.756.5.8.<arc>.<value>``."""
    if not 0 <= value <= 0x7F:
        raise EncodeError(f"object identifier arc {value} out of range")
    return DLMS_UA_PREFIX + bytes([arc, value])


def _decode_dlms_oid(reader: Reader, arc: int, what: str) -> int:
    """Decode OID content octets, check they are ``2.16.756.5.8.<arc>.x`` and return x."""
    offset = reader.pos
    oid = reader.take(reader.remaining, what)
    if len(oid) != len(DLMS_UA_PREFIX) + 2 or not oid.startswith(DLMS_UA_PREFIX):
        raise DecodeError(f"{what}: not a DLMS UA object identifier: {oid.hex()}", offset)
    if oid[-2] != arc:
        raise DecodeError(f"{what}: unexpected arc {oid[-2]} (expected {arc})", offset)
    return oid[-1]


def encode_context_name(name: ApplicationContextName) -> bytes:
    """Content of the application-context-name element: an explicit OBJECT IDENTIFIER."""
    return tlv(_OID_TAG, _dlms_oid(_CONTEXT_NAME_ARC, name))


def decode_context_name(reader: Reader) -> ApplicationContextName:
    """Decode the content of an application-context-name element."""
    what = "application context name"
    offset = reader.pos
    value = _decode_dlms_oid(_single_inner(reader, _OID_TAG, what), _CONTEXT_NAME_ARC, what)
    try:
        return ApplicationContextName(value)
    except ValueError as exc:
        raise DecodeError(f"unknown application context name {value}", offset) from exc


def encode_mechanism_name(mechanism: AuthenticationMechanism) -> bytes:
    """Content of a mechanism-name element (an IMPLICIT OBJECT IDENTIFIER)."""
    return _dlms_oid(_MECHANISM_NAME_ARC, mechanism)


def decode_mechanism_name(reader: Reader) -> AuthenticationMechanism:
    """Decode the content of a mechanism-name element."""
    offset = reader.pos
    value = _decode_dlms_oid(reader, _MECHANISM_NAME_ARC, "mechanism name")
    try:
        return AuthenticationMechanism(value)
    except ValueError as exc:
        raise DecodeError(f"unknown authentication mechanism {value}", offset) from exc


def encode_octet_string(value: bytes) -> bytes:
    """Universal OCTET STRING element (used inside AP titles and user information)."""
    return tlv(_OCTET_STRING_TAG, value)


def decode_octet_string(reader: Reader, what: str) -> bytes:
    """Decode a universal OCTET STRING element that fills the reader."""
    inner = _single_inner(reader, _OCTET_STRING_TAG, what)
    return inner.take(inner.remaining, what)


def encode_integer(value: int) -> bytes:
    """Universal INTEGER element in the minimal two's-complement form."""
    if not -(1 << 31) <= value < 1 << 31:
        raise EncodeError(f"ACSE integer {value} out of range")
    size = (value.bit_length() + 8) // 8
    return tlv(_INTEGER_TAG, value.to_bytes(size, "big", signed=True))


def decode_integer(reader: Reader, what: str) -> int:
    """Decode a universal INTEGER element (1 to 4 content bytes) that fills the reader."""
    inner = _single_inner(reader, _INTEGER_TAG, what)
    offset = inner.pos
    content = inner.take(inner.remaining, what)
    if not 1 <= len(content) <= 4:
        raise DecodeError(f"{what}: integer of {len(content)} byte(s)", offset)
    return int.from_bytes(content, "big", signed=True)


def encode_acse_requirements(authentication: bool) -> bytes:
    """ACSE-requirements BIT STRING content: one bit, set when authentication is used."""
    return b"\x07\x80" if authentication else b"\x07\x00"


def decode_acse_requirements(reader: Reader, what: str) -> bool:
    """Return the authentication bit of an ACSE-requirements BIT STRING."""
    offset = reader.pos
    content = reader.take(reader.remaining, what)
    if not content or content[0] > 7 or (len(content) == 1 and content[0] != 0):
        raise DecodeError(f"{what}: malformed bit string {content.hex()}", offset)
    return len(content) > 1 and bool(content[1] & 0x80)


def encode_authentication_value(value: bytes) -> bytes:
    """Authentication-value CHOICE as charstring [0] (the form DLMS uses for LLS and HLS)."""
    return tlv(_CHARSTRING_TAG, value)


def decode_authentication_value(reader: Reader, what: str) -> bytes:
    """Decode Authentication-value; only the charstring [0] alternative is used by DLMS."""
    inner = _single_inner(reader, _CHARSTRING_TAG, what)
    return inner.take(inner.remaining, what)


def encode_user_information(xdlms_apdu: bytes) -> bytes:
    """``BE len 04 len <xDLMS APDU>``: user information carries one encoded xDLMS APDU."""
    return tlv(USER_INFORMATION_TAG, encode_octet_string(xdlms_apdu))


def read_user_information(
    reader: Reader, decoders: Mapping[int, Callable[[Reader], T]], what: str
) -> T:
    """Decode the xDLMS APDU inside a user-information element, dispatching on its tag."""
    inner = _single_inner(reader, _OCTET_STRING_TAG, what)
    offset = inner.pos
    tag = inner.peek(what)
    decoder = decoders.get(tag)
    if decoder is None:
        raise DecodeError(f"{what}: unexpected xDLMS APDU tag {tag:#04x}", offset)
    value = decoder(inner)
    inner.expect_end(what)
    return value
