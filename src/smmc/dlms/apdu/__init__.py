"""ACSE and xDLMS APDUs: immutable values with ``to_bytes()`` / ``from_bytes()``.

:func:`decode_apdu` is the single entry point for bytes from the wire: it dispatches on the
first byte and raises :class:`~smmc.dlms.errors.DecodeError` for anything it cannot decode.
"""

from __future__ import annotations

from collections.abc import Callable

from smmc.dlms.apdu._ber import ApplicationContextName, AuthenticationMechanism
from smmc.dlms.apdu._common import (
    CosemAttributeDescriptor,
    CosemMethodDescriptor,
    DataAccessResult,
    DataBlockSA,
    InvokeIdAndPriority,
    LongInvokeIdAndPriority,
)
from smmc.dlms.apdu._reader import Buffer
from smmc.dlms.apdu.aare import (
    Aare,
    AcseServiceProviderDiagnostic,
    AcseServiceUserDiagnostic,
    AssociationResult,
)
from smmc.dlms.apdu.aarq import Aarq
from smmc.dlms.apdu.action import (
    ActionRequest,
    ActionRequestNextPblock,
    ActionRequestNormal,
    ActionRequestWithFirstPblock,
    ActionRequestWithList,
    ActionRequestWithListAndFirstPblock,
    ActionRequestWithPblock,
    ActionResponse,
    ActionResponseNextPblock,
    ActionResponseNormal,
    ActionResponseWithList,
    ActionResponseWithOptionalData,
    ActionResponseWithPblock,
    ActionResult,
    decode_action_request,
    decode_action_response,
)
from smmc.dlms.apdu.ciphered import (
    CipheredApdu,
    CipheredTag,
    GeneralDedCiphering,
    GeneralGloCiphering,
)
from smmc.dlms.apdu.exception import ExceptionResponse, ExceptionServiceError, StateError
from smmc.dlms.apdu.get import (
    CosemAttributeWithSelection,
    GetRequest,
    GetRequestNext,
    GetRequestNormal,
    GetRequestWithList,
    GetResponse,
    GetResponseNormal,
    GetResponseWithDatablock,
    GetResponseWithList,
    decode_get_request,
    decode_get_response,
)
from smmc.dlms.apdu.initiate import Conformance, InitiateRequest, InitiateResponse
from smmc.dlms.apdu.notification import DataNotification, EventNotificationRequest
from smmc.dlms.apdu.release import (
    ReleaseRequest,
    ReleaseRequestReason,
    ReleaseResponse,
    ReleaseResponseReason,
)
from smmc.dlms.apdu.selective_access import (
    CLOCK_TIME,
    CaptureObjectDefinition,
    EntryDescriptor,
    RangeDescriptor,
    SelectiveAccessDescriptor,
    decode_profile_selector,
)
from smmc.dlms.apdu.service_error import (
    ConfirmedService,
    ConfirmedServiceError,
    InitiateErrorCode,
    ServiceErrorKind,
)
from smmc.dlms.apdu.set import (
    SetRequest,
    SetRequestNormal,
    SetRequestWithDatablock,
    SetRequestWithFirstDatablock,
    SetRequestWithList,
    SetRequestWithListAndFirstDatablock,
    SetResponse,
    SetResponseDatablock,
    SetResponseLastDatablock,
    SetResponseLastDatablockWithList,
    SetResponseNormal,
    SetResponseWithList,
    decode_set_request,
    decode_set_response,
)
from smmc.dlms.errors import DecodeError

__all__ = [
    "CLOCK_TIME",
    "Aare",
    "Aarq",
    "AcseServiceProviderDiagnostic",
    "AcseServiceUserDiagnostic",
    "ActionRequest",
    "ActionRequestNextPblock",
    "ActionRequestNormal",
    "ActionRequestWithFirstPblock",
    "ActionRequestWithList",
    "ActionRequestWithListAndFirstPblock",
    "ActionRequestWithPblock",
    "ActionResponse",
    "ActionResponseNextPblock",
    "ActionResponseNormal",
    "ActionResponseWithList",
    "ActionResponseWithOptionalData",
    "ActionResponseWithPblock",
    "ActionResult",
    "Apdu",
    "ApplicationContextName",
    "AssociationResult",
    "AuthenticationMechanism",
    "CaptureObjectDefinition",
    "CipheredApdu",
    "CipheredTag",
    "ConfirmedService",
    "ConfirmedServiceError",
    "Conformance",
    "CosemAttributeDescriptor",
    "CosemAttributeWithSelection",
    "CosemMethodDescriptor",
    "DataAccessResult",
    "DataBlockSA",
    "DataNotification",
    "EntryDescriptor",
    "EventNotificationRequest",
    "ExceptionResponse",
    "ExceptionServiceError",
    "GeneralDedCiphering",
    "GeneralGloCiphering",
    "GetRequest",
    "GetRequestNext",
    "GetRequestNormal",
    "GetRequestWithList",
    "GetResponse",
    "GetResponseNormal",
    "GetResponseWithDatablock",
    "GetResponseWithList",
    "InitiateErrorCode",
    "InitiateRequest",
    "InitiateResponse",
    "InvokeIdAndPriority",
    "LongInvokeIdAndPriority",
    "RangeDescriptor",
    "ReleaseRequest",
    "ReleaseRequestReason",
    "ReleaseResponse",
    "ReleaseResponseReason",
    "SelectiveAccessDescriptor",
    "ServiceErrorKind",
    "SetRequest",
    "SetRequestNormal",
    "SetRequestWithDatablock",
    "SetRequestWithFirstDatablock",
    "SetRequestWithList",
    "SetRequestWithListAndFirstDatablock",
    "SetResponse",
    "SetResponseDatablock",
    "SetResponseLastDatablock",
    "SetResponseLastDatablockWithList",
    "SetResponseNormal",
    "SetResponseWithList",
    "StateError",
    "decode_action_request",
    "decode_action_response",
    "decode_apdu",
    "decode_get_request",
    "decode_get_response",
    "decode_profile_selector",
    "decode_set_request",
    "decode_set_response",
]

Apdu = (
    Aarq
    | Aare
    | ReleaseRequest
    | ReleaseResponse
    | InitiateRequest
    | InitiateResponse
    | ConfirmedServiceError
    | DataNotification
    | EventNotificationRequest
    | ExceptionResponse
    | GetRequest
    | GetResponse
    | SetRequest
    | SetResponse
    | ActionRequest
    | ActionResponse
    | CipheredApdu
    | GeneralGloCiphering
    | GeneralDedCiphering
)

_DECODERS: dict[int, Callable[[Buffer], Apdu]] = {
    Aarq.TAG: Aarq.from_bytes,
    Aare.TAG: Aare.from_bytes,
    ReleaseRequest.TAG: ReleaseRequest.from_bytes,
    ReleaseResponse.TAG: ReleaseResponse.from_bytes,
    InitiateRequest.TAG: InitiateRequest.from_bytes,
    InitiateResponse.TAG: InitiateResponse.from_bytes,
    ConfirmedServiceError.TAG: ConfirmedServiceError.from_bytes,
    DataNotification.TAG: DataNotification.from_bytes,
    EventNotificationRequest.TAG: EventNotificationRequest.from_bytes,
    ExceptionResponse.TAG: ExceptionResponse.from_bytes,
    GeneralGloCiphering.TAG: GeneralGloCiphering.from_bytes,
    GeneralDedCiphering.TAG: GeneralDedCiphering.from_bytes,
    GetRequestNormal.TAG: decode_get_request,
    GetResponseNormal.TAG: decode_get_response,
    SetRequestNormal.TAG: decode_set_request,
    SetResponseNormal.TAG: decode_set_response,
    ActionRequestNormal.TAG: decode_action_request,
    ActionResponseNormal.TAG: decode_action_response,
    **{tag.value: CipheredApdu.from_bytes for tag in CipheredTag},
}


def decode_apdu(buf: Buffer) -> Apdu:
    """Decode one complete APDU of any supported kind, chosen by its first byte."""
    if not buf:
        raise DecodeError("empty APDU", 0)
    tag = buf[0]
    decoder = _DECODERS.get(tag)
    if decoder is None:
        raise DecodeError(f"unknown APDU tag {tag:#04x}", 0)
    return decoder(buf)
