"""AARQ: the client's A-ASSOCIATE request (ACSE, BER-encoded, APPLICATION 0).

It names the application context (LN/SN, with or without ciphering), the authentication
mechanism and secret or challenge, and carries the xDLMS InitiateRequest, plain or
glo-ciphered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from smmc.dlms.apdu._ber import (
    USER_INFORMATION_TAG,
    ApplicationContextName,
    AuthenticationMechanism,
    decode_acse_requirements,
    decode_authentication_value,
    decode_context_name,
    decode_integer,
    decode_mechanism_name,
    decode_octet_string,
    encode_acse_requirements,
    encode_authentication_value,
    encode_context_name,
    encode_integer,
    encode_mechanism_name,
    encode_octet_string,
    encode_user_information,
    iter_elements,
    read_user_information,
    tlv,
)
from smmc.dlms.apdu._reader import Buffer, Reader
from smmc.dlms.apdu.ciphered import CipheredApdu, CipheredTag, ciphered_reader
from smmc.dlms.apdu.initiate import InitiateRequest
from smmc.dlms.errors import DecodeError, EncodeError

__all__ = ["Aarq"]

_HLS_CHALLENGE_SIZES = range(8, 65)

# Tags the AARQ definition allows but DLMS leaves unused: accepted and skipped on decode.
_SKIPPED_TAGS = frozenset({0x80, 0xA2, 0xA3, 0xA4, 0xA5, 0xA7, 0xA8, 0xBD})


_USER_INFORMATION_DECODERS: dict[int, Callable[[Reader], InitiateRequest | CipheredApdu]] = {
    InitiateRequest.TAG: InitiateRequest.read,
    CipheredTag.GLO_INITIATE_REQUEST.value: ciphered_reader(CipheredTag.GLO_INITIATE_REQUEST),
}


@dataclass(frozen=True, slots=True)
class Aarq:
    """A-ASSOCIATE request.

    ``calling_ap_title`` is the client system title (needed when ciphering);
    ``calling_authentication_value`` is the LLS password or the HLS challenge CtoS (8–64
    bytes); ``calling_ae_invocation_id`` is the optional user id. The sender-ACSE-requirements
    authentication bit is emitted exactly when a ``mechanism_name`` is given, as the Green
    Book requires.
    """

    TAG: ClassVar[int] = 0x60

    application_context_name: ApplicationContextName = ApplicationContextName.LOGICAL_NAME
    user_information: InitiateRequest | CipheredApdu | None = None
    calling_ap_title: bytes | None = None
    mechanism_name: AuthenticationMechanism | None = None
    calling_authentication_value: bytes | None = None
    calling_ae_invocation_id: int | None = None

    def to_bytes(self) -> bytes:
        """Encode the AARQ; components appear in tag order."""
        problem = self._inconsistency()
        if problem is not None:
            raise EncodeError(problem)
        body = tlv(0xA1, encode_context_name(self.application_context_name))
        if self.calling_ap_title is not None:
            body += tlv(0xA6, encode_octet_string(self.calling_ap_title))
        if self.calling_ae_invocation_id is not None:
            body += tlv(0xA9, encode_integer(self.calling_ae_invocation_id))
        if self.mechanism_name is not None:
            body += tlv(0x8A, encode_acse_requirements(authentication=True))
            body += tlv(0x8B, encode_mechanism_name(self.mechanism_name))
        if self.calling_authentication_value is not None:
            body += tlv(0xAC, encode_authentication_value(self.calling_authentication_value))
        if self.user_information is not None:
            body += encode_user_information(self.user_information.to_bytes())
        return tlv(self.TAG, body)

    def _inconsistency(self) -> str | None:
        """Why this AARQ breaks the Green Book rules, or None; shared by encode and decode."""
        if self.calling_authentication_value is not None and self.mechanism_name is None:
            return "an authentication value needs a mechanism name"
        if (
            self.mechanism_name is not None
            and self.mechanism_name >= AuthenticationMechanism.HIGH
            and self.calling_authentication_value is not None
            and len(self.calling_authentication_value) not in _HLS_CHALLENGE_SIZES
        ):
            return "an HLS challenge must be 8 to 64 bytes long"
        if (
            isinstance(self.user_information, CipheredApdu)
            and self.user_information.tag is not CipheredTag.GLO_INITIATE_REQUEST
        ):
            return "AARQ user information must be a (glo-)initiate-request"
        return None

    @classmethod
    def from_bytes(cls, buf: Buffer) -> Aarq:
        """Decode a complete AARQ; trailing bytes are an error."""
        reader = Reader(buf)
        offset = reader.pos
        if reader.u8("AARQ tag") != cls.TAG:
            raise DecodeError("not an AARQ", offset)
        body = reader.sub(reader.length("AARQ length"), "AARQ")
        reader.expect_end("AARQ")
        context: ApplicationContextName | None = None
        user_information: InitiateRequest | CipheredApdu | None = None
        ap_title: bytes | None = None
        mechanism: AuthenticationMechanism | None = None
        authentication_value: bytes | None = None
        ae_invocation_id: int | None = None
        for tag, tag_offset, value in iter_elements(body, "AARQ"):
            if tag == 0xA1:
                context = decode_context_name(value)
            elif tag == 0xA6:
                ap_title = decode_octet_string(value, "calling AP title")
            elif tag == 0xA9:
                ae_invocation_id = decode_integer(value, "calling AE invocation id")
            elif tag == 0x8A:
                decode_acse_requirements(value, "sender ACSE requirements")
            elif tag == 0x8B:
                mechanism = decode_mechanism_name(value)
            elif tag == 0xAC:
                authentication_value = decode_authentication_value(
                    value, "calling authentication value"
                )
            elif tag == USER_INFORMATION_TAG:
                user_information = read_user_information(
                    value, _USER_INFORMATION_DECODERS, "AARQ user information"
                )
            elif tag not in _SKIPPED_TAGS:
                raise DecodeError(f"AARQ: unexpected element tag {tag:#04x}", tag_offset)
        if context is None:
            raise DecodeError("AARQ: application context name missing", offset)
        aarq = cls(
            application_context_name=context,
            user_information=user_information,
            calling_ap_title=ap_title,
            mechanism_name=mechanism,
            calling_authentication_value=authentication_value,
            calling_ae_invocation_id=ae_invocation_id,
        )
        problem = aarq._inconsistency()
        if problem is not None:
            raise DecodeError(f"AARQ: {problem}", offset)
        return aarq
