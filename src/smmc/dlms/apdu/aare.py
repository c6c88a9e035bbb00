"""AARE: the server's A-ASSOCIATE response (ACSE, BER-encoded, APPLICATION 1).

It says whether the association is accepted and why not, returns the server system title and
the HLS challenge StoC, and carries the xDLMS InitiateResponse (or a ConfirmedServiceError
when the xDLMS context is refused), plain or glo-ciphered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
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
from smmc.dlms.apdu._reader import Buffer, Reader, to_enum
from smmc.dlms.apdu.ciphered import CipheredApdu, CipheredTag, ciphered_reader
from smmc.dlms.apdu.initiate import InitiateResponse
from smmc.dlms.apdu.service_error import ConfirmedServiceError
from smmc.dlms.errors import DecodeError, EncodeError

__all__ = [
    "Aare",
    "AcseServiceProviderDiagnostic",
    "AcseServiceUserDiagnostic",
    "AssociationResult",
]

_USER_DIAGNOSTIC_TAG = 0xA1
_PROVIDER_DIAGNOSTIC_TAG = 0xA2

# Tags the AARE definition allows but DLMS leaves unused: accepted and skipped on decode.
_SKIPPED_TAGS = frozenset({0x80, 0xA5, 0xA6, 0xA7, 0xBD})


class AssociationResult(IntEnum):
    """Result of the association request."""

    ACCEPTED = 0
    REJECTED_PERMANENT = 1
    REJECTED_TRANSIENT = 2


class AcseServiceUserDiagnostic(IntEnum):
    """Diagnostic when the association was refused by the server application (ACSE user)."""

    NULL = 0
    NO_REASON_GIVEN = 1
    APPLICATION_CONTEXT_NAME_NOT_SUPPORTED = 2
    CALLING_AP_TITLE_NOT_RECOGNIZED = 3
    CALLING_AP_INVOCATION_IDENTIFIER_NOT_RECOGNIZED = 4
    CALLING_AE_QUALIFIER_NOT_RECOGNIZED = 5
    CALLING_AE_INVOCATION_IDENTIFIER_NOT_RECOGNIZED = 6
    CALLED_AP_TITLE_NOT_RECOGNIZED = 7
    CALLED_AP_INVOCATION_IDENTIFIER_NOT_RECOGNIZED = 8
    CALLED_AE_QUALIFIER_NOT_RECOGNIZED = 9
    CALLED_AE_INVOCATION_IDENTIFIER_NOT_RECOGNIZED = 10
    AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED = 11
    AUTHENTICATION_MECHANISM_NAME_REQUIRED = 12
    AUTHENTICATION_FAILURE = 13
    AUTHENTICATION_REQUIRED = 14


class AcseServiceProviderDiagnostic(IntEnum):
    """Diagnostic when the association was refused by the ACSE provider itself."""

    NULL = 0
    NO_REASON_GIVEN = 1
    NO_COMMON_ACSE_VERSION = 2


ResultSourceDiagnostic = AcseServiceUserDiagnostic | AcseServiceProviderDiagnostic
AareUserInformation = InitiateResponse | ConfirmedServiceError | CipheredApdu


_USER_INFORMATION_DECODERS: dict[int, Callable[[Reader], AareUserInformation]] = {
    InitiateResponse.TAG: InitiateResponse.read,
    ConfirmedServiceError.TAG: ConfirmedServiceError.read,
    CipheredTag.GLO_INITIATE_RESPONSE.value: ciphered_reader(CipheredTag.GLO_INITIATE_RESPONSE),
}


@dataclass(frozen=True, slots=True)
class Aare:
    """A-ASSOCIATE response.

    ``responding_ap_title`` is the server system title; ``responding_authentication_value``
    is the HLS challenge StoC. The responder-ACSE-requirements authentication bit is emitted
    exactly when a ``mechanism_name`` is given.
    """

    TAG: ClassVar[int] = 0x61

    result: AssociationResult
    result_source_diagnostic: ResultSourceDiagnostic
    application_context_name: ApplicationContextName = ApplicationContextName.LOGICAL_NAME
    user_information: AareUserInformation | None = None
    responding_ap_title: bytes | None = None
    mechanism_name: AuthenticationMechanism | None = None
    responding_authentication_value: bytes | None = None

    def _inconsistency(self) -> str | None:
        """Why this AARE breaks the Green Book rules, or None; shared by encode and decode."""
        if self.responding_authentication_value is not None and self.mechanism_name is None:
            return "an authentication value needs a mechanism name"
        if (
            isinstance(self.user_information, CipheredApdu)
            and self.user_information.tag is not CipheredTag.GLO_INITIATE_RESPONSE
        ):
            return "AARE user information must be a (glo-)initiate-response"
        return None

    def to_bytes(self) -> bytes:
        """Encode the AARE; components appear in tag order."""
        problem = self._inconsistency()
        if problem is not None:
            raise EncodeError(problem)
        source_tag = (
            _USER_DIAGNOSTIC_TAG
            if isinstance(self.result_source_diagnostic, AcseServiceUserDiagnostic)
            else _PROVIDER_DIAGNOSTIC_TAG
        )
        body = tlv(0xA1, encode_context_name(self.application_context_name))
        body += tlv(0xA2, encode_integer(self.result))
        body += tlv(0xA3, tlv(source_tag, encode_integer(self.result_source_diagnostic)))
        if self.responding_ap_title is not None:
            body += tlv(0xA4, encode_octet_string(self.responding_ap_title))
        if self.mechanism_name is not None:
            body += tlv(0x88, encode_acse_requirements(authentication=True))
            body += tlv(0x89, encode_mechanism_name(self.mechanism_name))
        if self.responding_authentication_value is not None:
            body += tlv(0xAA, encode_authentication_value(self.responding_authentication_value))
        if self.user_information is not None:
            body += encode_user_information(self.user_information.to_bytes())
        return tlv(self.TAG, body)

    @classmethod
    def from_bytes(cls, buf: Buffer) -> Aare:
        """Decode a complete AARE; trailing bytes are an error."""
        reader = Reader(buf)
        offset = reader.pos
        if reader.u8("AARE tag") != cls.TAG:
            raise DecodeError("not an AARE", offset)
        body = reader.sub(reader.length("AARE length"), "AARE")
        reader.expect_end("AARE")
        context: ApplicationContextName | None = None
        result: AssociationResult | None = None
        diagnostic: ResultSourceDiagnostic | None = None
        user_information: AareUserInformation | None = None
        ap_title: bytes | None = None
        mechanism: AuthenticationMechanism | None = None
        authentication_value: bytes | None = None
        for tag, tag_offset, value in iter_elements(body, "AARE"):
            if tag == 0xA1:
                context = decode_context_name(value)
            elif tag == 0xA2:
                result = to_enum(AssociationResult, decode_integer(value, "result"), tag_offset)
            elif tag == 0xA3:
                diagnostic = _diagnostic(value)
            elif tag == 0xA4:
                ap_title = decode_octet_string(value, "responding AP title")
            elif tag == 0x88:
                decode_acse_requirements(value, "responder ACSE requirements")
            elif tag == 0x89:
                mechanism = decode_mechanism_name(value)
            elif tag == 0xAA:
                authentication_value = decode_authentication_value(
                    value, "responding authentication value"
                )
            elif tag == USER_INFORMATION_TAG:
                user_information = read_user_information(
                    value, _USER_INFORMATION_DECODERS, "AARE user information"
                )
            elif tag not in _SKIPPED_TAGS:
                raise DecodeError(f"AARE: unexpected element tag {tag:#04x}", tag_offset)
        if context is None or result is None or diagnostic is None:
            raise DecodeError("AARE: context name, result or diagnostic missing", offset)
        aare = cls(
            result=result,
            result_source_diagnostic=diagnostic,
            application_context_name=context,
            user_information=user_information,
            responding_ap_title=ap_title,
            mechanism_name=mechanism,
            responding_authentication_value=authentication_value,
        )
        problem = aare._inconsistency()
        if problem is not None:
            raise DecodeError(f"AARE: {problem}", offset)
        return aare


def _diagnostic(reader: Reader) -> ResultSourceDiagnostic:
    offset = reader.pos
    tag = reader.u8("result source diagnostic")
    inner = reader.sub(reader.length("result source diagnostic"), "result source diagnostic")
    reader.expect_end("result source diagnostic")
    code = decode_integer(inner, "result source diagnostic")
    if tag == _USER_DIAGNOSTIC_TAG:
        return to_enum(AcseServiceUserDiagnostic, code, offset)
    if tag == _PROVIDER_DIAGNOSTIC_TAG:
        return to_enum(AcseServiceProviderDiagnostic, code, offset)
    raise DecodeError(f"result source diagnostic: unknown source tag {tag:#04x}", offset)
