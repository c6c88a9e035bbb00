"""APDU interoperability with dlms-cosem 21.3.2 (MIT) and gurux-dlms, test-only peers.

For each APDU both sides build the same value: the bytes must be identical, we must decode
theirs, and they must decode ours (checked by re-encoding what they parsed). Where the peer's
encoder is broken or missing, only the direction that works is checked, and it says so.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from smmc.dlms import apdu as our
from smmc.dlms.axdr import Data
from smmc.dlms.cosem_time import ClockStatus, CosemDateTime
from smmc.dlms.obis import Obis

dlms_cosem = pytest.importorskip("dlms_cosem")

from dlms_cosem import cosem as dc_cosem  # noqa: E402
from dlms_cosem import enumerations as en  # noqa: E402
from dlms_cosem.protocol import acse  # noqa: E402
from dlms_cosem.protocol import xdlms as x  # noqa: E402
from dlms_cosem.protocol.xdlms.data_notification import LongInvokeIdAndPriority  # noqa: E402
from dlms_cosem.security import SecurityControlField  # noqa: E402

pytestmark = pytest.mark.interop

SYSTEM_TITLE = b"ABCDEFGH"
CLOCK = Obis(0, 0, 1, 0, 0, 255)
DISCONNECT = Obis(0, 0, 96, 3, 10, 255)
LOAD_PROFILE = Obis(1, 0, 99, 1, 0, 255)

THEIR_CONFORMANCE = x.Conformance(
    priority_management_supported=True,
    attribute_0_supported_with_get=True,
    block_transfer_with_get_or_read=True,
    block_transfer_with_set_or_write=True,
    block_transfer_with_action=True,
    multiple_references=True,
    get=True,
    set=True,
    selective_access=True,
    event_notification=True,
    action=True,
)
OUR_CONFORMANCE = our.Conformance(0x007E1F)


def _their_obis(obis: Obis) -> Any:
    return dc_cosem.Obis(obis.a, obis.b, obis.c, obis.d, obis.e, obis.f)


def _their_attribute(interface: Any, obis: Obis, attribute: int) -> Any:
    return dc_cosem.CosemAttribute(
        interface=interface, instance=_their_obis(obis), attribute=attribute
    )


def _check(ours: Any, theirs: Any, their_decoder: Any) -> None:
    """Identical bytes, we decode theirs, they decode ours (re-encoding what they parsed)."""
    encoded = ours.to_bytes()
    assert encoded == theirs.to_bytes()
    assert our.decode_apdu(theirs.to_bytes()) == ours
    assert their_decoder(encoded).to_bytes() == encoded


# -- ACSE and initiate ----------------------------------------------------------------------

OUR_INITIATE = our.InitiateRequest(OUR_CONFORMANCE, 0x04B0)
THEIR_INITIATE = x.InitiateRequest(
    proposed_conformance=THEIR_CONFORMANCE, client_max_receive_pdu_size=0x04B0
)
OUR_INITIATE_RESPONSE = our.InitiateResponse(OUR_CONFORMANCE, 0x01F4)
THEIR_INITIATE_RESPONSE = x.InitiateResponse(
    negotiated_conformance=THEIR_CONFORMANCE, server_max_receive_pdu_size=0x01F4
)


def test_initiate_request() -> None:
    _check(OUR_INITIATE, THEIR_INITIATE, x.InitiateRequest.from_bytes)
    assert x.InitiateRequest.from_bytes(OUR_INITIATE.to_bytes()).proposed_conformance == (
        THEIR_CONFORMANCE
    )


def test_initiate_response() -> None:
    _check(OUR_INITIATE_RESPONSE, THEIR_INITIATE_RESPONSE, x.InitiateResponse.from_bytes)


@pytest.mark.parametrize(
    ("mechanism", "their_mechanism", "secret", "ciphered"),
    [
        (None, None, None, False),
        (our.AuthenticationMechanism.LOW, en.AuthenticationMechanism.LLS, b"12345678", False),
        (
            our.AuthenticationMechanism.HIGH_GMAC,
            en.AuthenticationMechanism.HLS_GMAC,
            b"K56iVagYK56iVagY",
            True,
        ),
    ],
)
def test_aarq(
    mechanism: our.AuthenticationMechanism | None,
    their_mechanism: Any,
    secret: bytes | None,
    ciphered: bool,
) -> None:
    context = (
        our.ApplicationContextName.LOGICAL_NAME_WITH_CIPHERING
        if ciphered
        else our.ApplicationContextName.LOGICAL_NAME
    )
    ours = our.Aarq(
        context,
        OUR_INITIATE,
        SYSTEM_TITLE if ciphered else None,
        mechanism,
        secret,
    )
    theirs = acse.ApplicationAssociationRequest(
        user_information=acse.UserInformation(content=THEIR_INITIATE),
        authentication=their_mechanism,
        authentication_value=secret,
        ciphered=ciphered,
        system_title=SYSTEM_TITLE if ciphered else None,
    )
    _check(ours, theirs, acse.ApplicationAssociationRequest.from_bytes)


def test_aarq_with_glo_initiate_request() -> None:
    control = SecurityControlField(security_suite=0, authenticated=True, encrypted=True)
    theirs_glo = x.GlobalCipherInitiateRequest(
        security_control=control, invocation_counter=42, ciphered_text=bytes(range(30))
    )
    ours_glo = our.CipheredApdu(
        our.CipheredTag.GLO_INITIATE_REQUEST,
        bytes([0x30]) + (42).to_bytes(4, "big") + bytes(range(30)),
    )
    _check(ours_glo, theirs_glo, x.GlobalCipherInitiateRequest.from_bytes)
    ours = our.Aarq(
        our.ApplicationContextName.LOGICAL_NAME_WITH_CIPHERING,
        ours_glo,
        SYSTEM_TITLE,
        our.AuthenticationMechanism.HIGH_GMAC,
        b"0123456789abcdef",
    )
    theirs = acse.ApplicationAssociationRequest(
        user_information=acse.UserInformation(content=theirs_glo),
        authentication=en.AuthenticationMechanism.HLS_GMAC,
        authentication_value=b"0123456789abcdef",
        ciphered=True,
        system_title=SYSTEM_TITLE,
    )
    _check(ours, theirs, acse.ApplicationAssociationRequest.from_bytes)


@pytest.mark.parametrize(
    ("result", "their_result", "diagnostic", "their_diagnostic"),
    [
        (
            our.AssociationResult.ACCEPTED,
            en.AssociationResult.ACCEPTED,
            our.AcseServiceUserDiagnostic.NULL,
            en.AcseServiceUserDiagnostics.NULL,
        ),
        (
            our.AssociationResult.REJECTED_PERMANENT,
            en.AssociationResult.REJECTED_PERMANENT,
            our.AcseServiceUserDiagnostic.AUTHENTICATION_FAILURE,
            en.AcseServiceUserDiagnostics.AUTHENTICATION_FAILED,
        ),
        (
            our.AssociationResult.REJECTED_TRANSIENT,
            en.AssociationResult.REJECTED_TRANSIENT,
            our.AcseServiceProviderDiagnostic.NO_COMMON_ACSE_VERSION,
            en.AcseServiceProviderDiagnostics.NO_COMMON_ACSE_VERSION,
        ),
    ],
)
def test_aare(result: Any, their_result: Any, diagnostic: Any, their_diagnostic: Any) -> None:
    ours = our.Aare(result, diagnostic, user_information=OUR_INITIATE_RESPONSE)
    theirs = acse.ApplicationAssociationResponse(
        result=their_result,
        result_source_diagnostics=their_diagnostic,
        user_information=acse.UserInformation(content=THEIR_INITIATE_RESPONSE),
    )
    _check(ours, theirs, acse.ApplicationAssociationResponse.from_bytes)


def test_aare_hls_gmac() -> None:
    ours = our.Aare(
        our.AssociationResult.ACCEPTED,
        our.AcseServiceUserDiagnostic.AUTHENTICATION_REQUIRED,
        our.ApplicationContextName.LOGICAL_NAME_WITH_CIPHERING,
        OUR_INITIATE_RESPONSE,
        SYSTEM_TITLE,
        our.AuthenticationMechanism.HIGH_GMAC,
        b"P6wRJ21F",
    )
    theirs = acse.ApplicationAssociationResponse(
        result=en.AssociationResult.ACCEPTED,
        result_source_diagnostics=en.AcseServiceUserDiagnostics.AUTHENTICATION_REQUIRED,
        ciphered=True,
        authentication=en.AuthenticationMechanism.HLS_GMAC,
        system_title=SYSTEM_TITLE,
        authentication_value=b"P6wRJ21F",
        user_information=acse.UserInformation(content=THEIR_INITIATE_RESPONSE),
    )
    _check(ours, theirs, acse.ApplicationAssociationResponse.from_bytes)


def test_release() -> None:
    _check(
        our.ReleaseRequest(our.ReleaseRequestReason.NORMAL, OUR_INITIATE),
        acse.ReleaseRequest(
            reason=en.ReleaseRequestReason.NORMAL,
            user_information=acse.UserInformation(content=THEIR_INITIATE),
        ),
        acse.ReleaseRequest.from_bytes,
    )
    _check(
        our.ReleaseResponse(our.ReleaseResponseReason.NORMAL),
        acse.ReleaseResponse(reason=en.ReleaseResponseReason.NORMAL),
        acse.ReleaseResponse.from_bytes,
    )


def test_confirmed_service_error_and_exception_response() -> None:
    _check(
        our.ConfirmedServiceError(
            our.ConfirmedService.INITIATE_ERROR,
            our.ServiceErrorKind.INITIATE,
            our.InitiateErrorCode.DLMS_VERSION_TOO_LOW,
        ),
        x.ConfirmedServiceError(error=en.InitiateError.DLMS_VERSION_TOO_LOW),
        x.ConfirmedServiceError.from_bytes,
    )
    _check(
        our.ExceptionResponse(
            our.StateError.SERVICE_NOT_ALLOWED, our.ExceptionServiceError.OPERATION_NOT_POSSIBLE
        ),
        x.ExceptionResponse(
            state_error=en.StateException.SERVICE_NOT_ALLOWED,
            service_error=en.ServiceException.OPERATION_NOT_POSSIBLE,
        ),
        x.ExceptionResponse.from_bytes,
    )


def test_exception_response_with_invocation_counter_they_decode() -> None:
    # dlms-cosem 21.3.2 cannot encode this form (its encoder overflows), but it decodes ours.
    ours = our.ExceptionResponse(
        our.StateError.SERVICE_NOT_ALLOWED,
        our.ExceptionServiceError.INVOCATION_COUNTER_ERROR,
        0x1234,
    )
    theirs = x.ExceptionResponse.from_bytes(ours.to_bytes())
    assert theirs.service_error is en.ServiceException.INVOCATION_COUNTER_ERROR
    assert theirs.invocation_counter_data == 0x1234


# -- GET / SET / ACTION ---------------------------------------------------------------------

CLOCK_TIME = our.CosemAttributeDescriptor(8, CLOCK, 2)
THEIR_CLOCK_TIME = _their_attribute(en.CosemInterface.CLOCK, CLOCK, 2)
REMOTE_DISCONNECT = our.CosemMethodDescriptor(70, DISCONNECT, 1)
THEIR_REMOTE_DISCONNECT = dc_cosem.CosemMethod(
    interface=en.CosemInterface.DISCONNECT_CONTROL, instance=_their_obis(DISCONNECT), method=1
)


def test_get_requests() -> None:
    _check(
        our.GetRequestNormal(CLOCK_TIME),
        x.GetRequestNormal(cosem_attribute=THEIR_CLOCK_TIME),
        x.GetRequestFactory.from_bytes,
    )
    _check(
        our.GetRequestNext(3),
        x.GetRequestNext(block_number=3),
        x.GetRequestFactory.from_bytes,
    )
    _check(
        our.GetRequestWithList(
            (
                our.CosemAttributeWithSelection(CLOCK_TIME),
                our.CosemAttributeWithSelection(our.CosemAttributeDescriptor(8, CLOCK, 3)),
            )
        ),
        x.GetRequestWithList(
            cosem_attributes_with_selection=[
                dc_cosem.CosemAttributeWithSelection(THEIR_CLOCK_TIME, None),
                dc_cosem.CosemAttributeWithSelection(
                    _their_attribute(en.CosemInterface.CLOCK, CLOCK, 3), None
                ),
            ]
        ),
        x.GetRequestFactory.from_bytes,
    )


def test_get_request_with_range_descriptor() -> None:
    start = datetime(2024, 3, 1, tzinfo=timezone(timedelta(hours=-3)))
    end = datetime(2024, 3, 2, tzinfo=timezone(timedelta(hours=-3)))
    # dlms-cosem leaves the weekday "not specified" (0xFF) and the status byte 0.
    our_start = CosemDateTime(2024, 3, 1, 0xFF, 0, 0, 0, 0, 180, ClockStatus.OK)
    our_end = CosemDateTime(2024, 3, 2, 0xFF, 0, 0, 0, 0, 180, ClockStatus.OK)
    theirs = x.GetRequestNormal(
        cosem_attribute=_their_attribute(en.CosemInterface.PROFILE_GENERIC, LOAD_PROFILE, 2),
        access_selection=dc_cosem.selective_access.RangeDescriptor(
            restricting_object=dc_cosem.capture_object.CaptureObject(THEIR_CLOCK_TIME),
            from_value=start,
            to_value=end,
        ),
    )
    ours = our.GetRequestNormal(
        our.CosemAttributeDescriptor(7, LOAD_PROFILE, 2),
        our.RangeDescriptor.between(our_start, our_end).to_access_selection(),
    )
    _check(ours, theirs, x.GetRequestFactory.from_bytes)
    decoded = x.GetRequestFactory.from_bytes(ours.to_bytes())
    assert decoded.access_selection.from_value == start
    assert decoded.access_selection.to_value == end


def test_get_responses() -> None:
    _check(
        our.GetResponseNormal(our.DataAccessResult.READ_WRITE_DENIED),
        x.GetResponseNormalWithError(error=en.DataAccessResult.READ_WRITE_DENIED),
        x.GetResponseFactory.from_bytes,
    )
    _check(
        our.GetResponseWithDatablock(False, 1, b"abc"),
        x.GetResponseWithBlock(data=b"abc", block_number=1),
        x.GetResponseFactory.from_bytes,
    )
    _check(
        our.GetResponseWithDatablock(True, 2, b"abc"),
        x.GetResponseLastBlock(data=b"abc", block_number=2),
        x.GetResponseFactory.from_bytes,
    )
    _check(
        our.GetResponseWithDatablock(True, 2, our.DataAccessResult.LONG_GET_ABORTED),
        x.GetResponseLastBlockWithError(error=en.DataAccessResult.LONG_GET_ABORTED, block_number=2),
        x.GetResponseFactory.from_bytes,
    )


def test_get_response_normal_they_decode() -> None:
    # dlms-cosem 21.3.2's GetResponseNormal.to_bytes raises TypeError; decoding works.
    ours = our.GetResponseNormal(Data.long_unsigned(230))
    theirs = x.GetResponseFactory.from_bytes(ours.to_bytes())
    assert isinstance(theirs, x.GetResponseNormal)
    assert theirs.data == bytes.fromhex("1200E6")


def test_set() -> None:
    _check(
        our.SetRequestNormal(CLOCK_TIME, Data.long_unsigned(230)),
        x.SetRequestNormal(cosem_attribute=THEIR_CLOCK_TIME, data=bytes.fromhex("1200E6")),
        x.SetRequestFactory.from_bytes,
    )
    _check(
        our.SetResponseNormal(our.DataAccessResult.SUCCESS),
        x.SetResponseNormal(result=en.DataAccessResult.SUCCESS),
        x.SetResponseFactory.from_bytes,
    )


def test_action() -> None:
    iid = our.InvokeIdAndPriority(0)
    _check(
        our.ActionRequestNormal(REMOTE_DISCONNECT, Data.integer(0), iid),
        x.ActionRequestNormal(cosem_method=THEIR_REMOTE_DISCONNECT, data=b"\x0f\x00"),
        x.ActionRequestFactory.from_bytes,
    )
    _check(
        our.ActionRequestNormal(REMOTE_DISCONNECT, None, iid),
        x.ActionRequestNormal(cosem_method=THEIR_REMOTE_DISCONNECT),
        x.ActionRequestFactory.from_bytes,
    )
    _check(
        our.ActionResponseNormal(our.ActionResult.SUCCESS, None, iid),
        x.ActionResponseNormal(status=en.ActionResultStatus.SUCCESS),
        x.ActionResponseFactory.from_bytes,
    )
    _check(
        our.ActionResponseNormal(our.ActionResult.SUCCESS, Data.octet_string(b"ab"), iid),
        x.ActionResponseNormalWithData(status=en.ActionResultStatus.SUCCESS, data=b"\x09\x02ab"),
        x.ActionResponseFactory.from_bytes,
    )
    _check(
        our.ActionResponseNormal(
            our.ActionResult.SUCCESS, our.DataAccessResult.OBJECT_UNDEFINED, iid
        ),
        x.ActionResponseNormalWithError(
            status=en.ActionResultStatus.SUCCESS, error=en.DataAccessResult.OBJECT_UNDEFINED
        ),
        x.ActionResponseFactory.from_bytes,
    )


# -- notifications and ciphering ------------------------------------------------------------


def test_data_notification_without_date_time() -> None:
    _check(
        our.DataNotification(Data.unsigned(5), None, our.LongInvokeIdAndPriority(1)),
        x.DataNotification(LongInvokeIdAndPriority(1), None, b"\x11\x05"),
        x.DataNotification.from_bytes,
    )


def test_general_glo_ciphering() -> None:
    control = SecurityControlField(security_suite=0, authenticated=True, encrypted=True)
    content = bytes([0x30]) + (42).to_bytes(4, "big") + bytes(range(40))
    _check(
        our.GeneralGloCiphering(SYSTEM_TITLE, content),
        x.GeneralGlobalCipher(
            system_title=SYSTEM_TITLE,
            security_control=control,
            invocation_counter=42,
            ciphered_text=bytes(range(40)),
        ),
        x.GeneralGlobalCipher.from_bytes,
    )
    _check(
        our.CipheredApdu(our.CipheredTag.GLO_INITIATE_RESPONSE, content),
        x.GlobalCipherInitiateResponse(
            security_control=control, invocation_counter=42, ciphered_text=bytes(range(40))
        ),
        x.GlobalCipherInitiateResponse.from_bytes,
    )


# -- gurux-dlms (client role) ----------------------------------------------------------------

gurux = pytest.importorskip("gurux_dlms")

from gurux_dlms import (  # noqa: E402
    GXByteBuffer,
    GXDateTime,
    GXDLMSClient,
    GXDLMSNotify,
    GXReplyData,
)
from gurux_dlms.enums import Authentication, InterfaceType  # noqa: E402
from gurux_dlms.objects import (  # noqa: E402
    GXDLMSClock,
    GXDLMSDisconnectControl,
    GXDLMSProfileGeneric,
)

_WRAPPER_HEADER = 8
# What gurux-dlms proposes by default: conformance 0x401E5D, max PDU 0xFFFF.
GURUX_INITIATE = our.InitiateRequest(our.Conformance(0x401E5D), 0xFFFF)


def _gurux_client(authentication: Any = None, password: str | None = None) -> Any:
    return GXDLMSClient(
        True, 16, 1, authentication or Authentication.NONE, password, InterfaceType.WRAPPER
    )


def _unwrap(frames: list[Any]) -> bytes:
    assert len(frames) == 1
    frame = bytes(frames[0])
    assert int.from_bytes(frame[6:8], "big") == len(frame) - _WRAPPER_HEADER
    return frame[_WRAPPER_HEADER:]


def _wrap(apdu: bytes) -> GXByteBuffer:
    header = bytes.fromhex("0001 0001 0010") + len(apdu).to_bytes(2, "big")
    return GXByteBuffer(header + apdu)


def _gurux_bits(conformance: our.Conformance) -> int:
    """gurux numbers conformance bit n of the Blue Book as ``1 << n``; we use ``1 << 23 - n``."""
    return sum(1 << n for n in range(24) if conformance & (1 << (23 - n)))


@pytest.mark.parametrize(
    ("authentication", "password", "mechanism"),
    [
        (None, None, None),
        (Authentication.LOW, "12345678", our.AuthenticationMechanism.LOW),
    ],
)
def test_gurux_aarq(authentication: Any, password: str | None, mechanism: Any) -> None:
    theirs = _unwrap(_gurux_client(authentication, password).aarqRequest())
    ours = our.Aarq(
        user_information=GURUX_INITIATE,
        mechanism_name=mechanism,
        calling_authentication_value=password.encode() if password else None,
    )
    assert ours.to_bytes() == theirs
    assert our.decode_apdu(theirs) == ours


def test_gurux_parses_our_aare() -> None:
    client = _gurux_client()
    client.aarqRequest()
    conformance = our.Conformance(0x00501F)
    aare = our.Aare(
        our.AssociationResult.ACCEPTED,
        our.AcseServiceUserDiagnostic.NULL,
        user_information=our.InitiateResponse(conformance, 0x01F4),
    )
    reply = GXReplyData()
    assert client.getData(_wrap(aare.to_bytes()), reply)
    client.parseAareResponse(reply.data)
    assert client.maxReceivePDUSize == 0x01F4
    assert int(client.negotiatedConformance) == _gurux_bits(conformance)


def test_gurux_get_and_action_requests() -> None:
    client = _gurux_client()
    clock_read = _unwrap(client.read(GXDLMSClock("0.0.1.0.0.255"), 2))
    assert clock_read == our.GetRequestNormal(CLOCK_TIME).to_bytes()
    by_entry = _unwrap(client.readRowsByEntry(GXDLMSProfileGeneric("1.0.99.1.0.255"), 1, 96))
    ours = our.GetRequestNormal(
        our.CosemAttributeDescriptor(7, LOAD_PROFILE, 2),
        our.EntryDescriptor(1, 96).to_access_selection(),
    )
    assert by_entry == ours.to_bytes()
    assert our.decode_apdu(by_entry) == ours
    disconnect = _unwrap(GXDLMSDisconnectControl("0.0.96.3.10.255").remoteDisconnect(client))
    assert our.decode_apdu(disconnect) == our.ActionRequestNormal(
        REMOTE_DISCONNECT, Data.integer(0)
    )


@pytest.mark.parametrize(
    ("response", "value", "error"),
    [
        (our.GetResponseNormal(Data.long_unsigned(230)), 230, 0),
        (our.GetResponseNormal(our.DataAccessResult.READ_WRITE_DENIED), None, 3),
    ],
)
def test_gurux_parses_our_get_response(
    response: our.GetResponseNormal, value: int | None, error: int
) -> None:
    client = _gurux_client()
    reply = GXReplyData()
    client.getData(_wrap(response.to_bytes()), reply)
    assert reply.value == value
    assert reply.error == error


def test_gurux_data_notification_with_date_time() -> None:
    # gurux frames the date-time as an OCTET STRING (0x0C + 12 bytes), as we do; dlms-cosem
    # 21.3.2 uses a 0x01 presence flag instead, so only the no-date-time form is shared there.
    notify = GXDLMSNotify(True, 16, 1, InterfaceType.WRAPPER)
    body = GXByteBuffer()
    body.setUInt8(17)
    body.setUInt8(5)
    theirs = _unwrap(
        notify.generateDataNotificationMessages(GXDateTime(datetime(2024, 5, 17, 13, 45)), body)
    )
    ours = our.DataNotification(
        Data.unsigned(5),
        CosemDateTime(2024, 5, 17, 0xFF, 13, 45, 0, 0, 0, ClockStatus.OK),
        our.LongInvokeIdAndPriority(1, confirmed=True, high_priority=True),
    )
    assert our.decode_apdu(theirs) == ours
    assert ours.to_bytes() == theirs


def test_gurux_parses_our_data_notification() -> None:
    push = our.DataNotification(
        Data.structure((Data.unsigned(5), Data.long_unsigned(7))),
        CosemDateTime(2024, 5, 17, 5, 13, 45, 0, 0, None, ClockStatus.OK),
        our.LongInvokeIdAndPriority(3),
    )
    reply = GXReplyData()
    _gurux_client().getData(_wrap(push.to_bytes()), reply)
    assert reply.command == our.DataNotification.TAG
    assert reply.invokeId == 3
    assert reply.value == [5, 7]
    assert reply.time is not None
