"""Pure state-machine tests of the client and server associations (no sockets)."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest
from dlms_meter import (
    AUTHENTICATION_KEY,
    CLIENT_TITLE,
    DISCONNECT,
    ENCRYPTION_KEY,
    ENERGY,
    LLS_PASSWORD,
    LOAD_PROFILE,
    MANAGEMENT_SAP,
    PROFILE_ROWS,
    PUBLIC_SAP,
    READER_SAP,
    SERIAL,
    SERVER_TITLE,
    Meter,
    build_meter,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from smmc.dlms.apdu import (
    AcseServiceUserDiagnostic,
    ActionResult,
    AuthenticationMechanism,
    CipheredApdu,
    CipheredTag,
    CosemAttributeDescriptor,
    DataAccessResult,
    EntryDescriptor,
    GetRequestNext,
    GetRequestNormal,
    GetResponseNormal,
    GetResponseWithDatablock,
    InvokeIdAndPriority,
    decode_get_response,
)
from smmc.dlms.axdr import Data, DataTag
from smmc.dlms.connection import (
    ActionDone,
    AssociationAccepted,
    AssociationEstablished,
    AssociationRefused,
    ClientConnection,
    ClientEvent,
    ClientSettings,
    GetListResult,
    GetResult,
    ReleaseAccepted,
    Released,
    SecurityPolicy,
    ServerAssociation,
    ServerConnection,
    SetResult,
    State,
)
from smmc.dlms.cosem.association_ln import CURRENT_ASSOCIATION_OBIS, AssociationStatus
from smmc.dlms.cosem.clock import CLOCK_OBIS
from smmc.dlms.cosem.disconnect_control import ControlState
from smmc.dlms.errors import (
    AssociationRejected,
    CipheringError,
    DecodeError,
    DlmsError,
    EncodeError,
    ProtocolError,
    ReplayError,
)
from smmc.dlms.security import InvocationCounterGuard, SecurityControl, encrypt

HLS = ClientSettings(
    client_sap=MANAGEMENT_SAP,
    mechanism=AuthenticationMechanism.HIGH_GMAC,
    encryption_key=ENCRYPTION_KEY,
    authentication_key=AUTHENTICATION_KEY,
    system_title=CLIENT_TITLE,
    security=SecurityPolicy(authenticated=True, encrypted=True),
)
LLS = ClientSettings(
    client_sap=READER_SAP, mechanism=AuthenticationMechanism.LOW, password=LLS_PASSWORD
)
PUBLIC = ClientSettings(client_sap=PUBLIC_SAP)
HLS_PLAIN = replace(HLS, security=SecurityPolicy())


def make_server(meter: Meter, sap: int, **kwargs: object) -> ServerConnection:
    return ServerConnection(meter.device, meter.associations, sap, SERVER_TITLE, **kwargs)  # type: ignore[arg-type]


def exchange(client: ClientConnection, server: ServerConnection) -> list[ClientEvent]:
    """Carry APDUs both ways until both outboxes are empty; return the client's events."""
    events: list[ClientEvent] = []
    for _ in range(10_000):
        to_server = client.data_to_send()
        for apdu in to_server:
            server.receive_apdu(apdu)
        to_client = server.data_to_send()
        for apdu in to_client:
            event = client.receive_apdu(apdu)
            if event is not None:
                events.append(event)
        if not to_server and not to_client:
            return events
    raise AssertionError("exchange did not settle")


def associate(meter: Meter, settings: ClientSettings) -> tuple[ClientConnection, ServerConnection]:
    client = ClientConnection(settings)
    server = make_server(meter, settings.client_sap)
    client.associate()
    events = exchange(client, server)
    assert len(events) == 1
    assert isinstance(events[0], AssociationAccepted)
    assert client.state is State.ASSOCIATED
    assert server.state is State.ASSOCIATED
    return client, server


def only(events: list[ClientEvent]) -> ClientEvent:
    assert len(events) == 1, events
    return events[0]


# -- association ------------------------------------------------------------------------


def test_lowest_association_get_and_release() -> None:
    meter = build_meter()
    client, server = associate(meter, PUBLIC)
    assert not server.authenticated
    client.get(3, ENERGY, 2)
    event = only(exchange(client, server))
    assert event == GetResult(1, Data.double_long_unsigned(123456))
    client.release()
    assert client.state is State.RELEASE_PENDING
    assert only(exchange(client, server)) == ReleaseAccepted()
    assert client.state is State.IDLE
    assert server.state is State.IDLE


def test_lls_association_sets_the_association_object_status() -> None:
    meter = build_meter()
    client, server = associate(meter, LLS)
    reader = meter.associations[READER_SAP].association
    assert reader is not None
    assert reader.status is AssociationStatus.ASSOCIATED
    assert server.authenticated
    client.release()
    exchange(client, server)
    assert reader.status is AssociationStatus.NON_ASSOCIATED


def test_lls_wrong_password_is_rejected_with_authentication_failure() -> None:
    meter = build_meter()
    settings = ClientSettings(
        client_sap=READER_SAP, mechanism=AuthenticationMechanism.LOW, password=b"wrong"
    )
    client = ClientConnection(settings)
    server = make_server(meter, READER_SAP)
    client.associate()
    with pytest.raises(AssociationRejected) as info:
        exchange(client, server)
    assert info.value.diagnostic == AcseServiceUserDiagnostic.AUTHENTICATION_FAILURE
    assert client.state is State.CLOSED
    assert server.state is State.IDLE


def test_unknown_client_sap_is_rejected() -> None:
    meter = build_meter()
    client = ClientConnection(ClientSettings(client_sap=99))
    server = make_server(meter, 99)
    client.associate()
    with pytest.raises(AssociationRejected) as info:
        exchange(client, server)
    assert info.value.result == 1


def test_mechanism_mismatch_is_rejected() -> None:
    meter = build_meter()
    client = ClientConnection(ClientSettings(client_sap=READER_SAP))
    server = make_server(meter, READER_SAP)
    client.associate()
    with pytest.raises(AssociationRejected) as info:
        exchange(client, server)
    assert info.value.diagnostic == AcseServiceUserDiagnostic.AUTHENTICATION_MECHANISM_NAME_REQUIRED


def test_hls_gmac_passes_3_and_4_with_ciphered_apdus() -> None:
    meter = build_meter()
    seen: list[tuple[bytes, int]] = []
    guard = InvocationCounterGuard(on_accept=lambda title, ic: seen.append((title, ic)))
    persisted: list[int] = []
    client = ClientConnection(HLS, guard=guard, on_invocation_counter=persisted.append)
    server = make_server(meter, MANAGEMENT_SAP)
    client.associate()
    aarq = client.data_to_send()
    assert aarq[0][0] == 0x60
    server.receive_apdu(aarq[0])
    assert server.state is State.ASSOCIATION_PENDING
    assert client.receive_apdu(server.data_to_send()[0]) is None  # pass 3 queued
    pass3 = client.data_to_send()
    assert pass3[0][0] == 0xCB  # glo-action-request
    event = server.receive_apdu(pass3[0])
    assert isinstance(event, AssociationEstablished)
    assert event.client_system_title == CLIENT_TITLE
    accepted = client.receive_apdu(server.data_to_send()[0])
    assert isinstance(accepted, AssociationAccepted)
    assert accepted.server_system_title == SERVER_TITLE
    assert client.state is State.ASSOCIATED
    assert server.authenticated
    client.get(8, CLOCK_OBIS, 2)
    request = client.data_to_send()
    assert request[0][0] == 0xC8  # glo-get-request
    server.receive_apdu(request[0])
    reply = server.data_to_send()
    assert reply[0][0] == 0xCC  # glo-get-response
    assert isinstance(client.receive_apdu(reply[0]), GetResult)
    # The server's counters were accepted in order and ours were handed to the caller.
    assert [title for title, _ in seen] == [SERVER_TITLE] * len(seen)
    counters = [ic for _, ic in seen]
    assert counters == sorted(counters)
    assert len(set(counters)) == len(counters) >= 2
    assert persisted == list(range(2, persisted[-1] + 1))
    assert persisted[-1] == client.invocation_counter


def test_hls_wrong_key_fails_at_pass_3() -> None:
    meter = build_meter()
    settings = ClientSettings(
        client_sap=MANAGEMENT_SAP,
        mechanism=AuthenticationMechanism.HIGH_GMAC,
        encryption_key=ENCRYPTION_KEY,
        authentication_key=bytes(16),
        system_title=CLIENT_TITLE,
    )
    meter.associations[MANAGEMENT_SAP] = ServerAssociation(
        AuthenticationMechanism.HIGH_GMAC,
        encryption_key=ENCRYPTION_KEY,
        authentication_key=AUTHENTICATION_KEY,
        association=meter.associations[MANAGEMENT_SAP].association,
    )
    client = ClientConnection(settings)
    server = make_server(meter, MANAGEMENT_SAP)
    client.associate()
    server.receive_apdu(client.data_to_send()[0])
    client.receive_apdu(server.data_to_send()[0])
    event = server.receive_apdu(client.data_to_send()[0])
    assert isinstance(event, AssociationRefused)
    assert server.state is State.IDLE
    with pytest.raises(AssociationRejected) as info:
        client.receive_apdu(server.data_to_send()[0])
    assert info.value.diagnostic == AcseServiceUserDiagnostic.AUTHENTICATION_FAILURE


def test_hls_wrong_server_tag_at_pass_4_is_rejected() -> None:
    meter = build_meter()
    client = ClientConnection(HLS)
    server = make_server(meter, MANAGEMENT_SAP)
    client.associate()
    server.receive_apdu(client.data_to_send()[0])
    client.receive_apdu(server.data_to_send()[0])
    server.receive_apdu(client.data_to_send()[0])
    # A forger who cannot compute f(CtoS) answers with a server that used another challenge.
    client._challenge = bytes(16)
    with pytest.raises(AssociationRejected):
        client.receive_apdu(server.data_to_send()[0])
    assert client.state is State.CLOSED


def test_hls_pending_server_refuses_other_services() -> None:
    meter = build_meter()
    meter.associations[MANAGEMENT_SAP] = ServerAssociation(
        AuthenticationMechanism.HIGH_GMAC,
        encryption_key=ENCRYPTION_KEY,
        authentication_key=AUTHENTICATION_KEY,
    )
    client = ClientConnection(HLS_PLAIN)
    server = make_server(meter, MANAGEMENT_SAP)
    client.associate()
    server.receive_apdu(client.data_to_send()[0])
    assert server.state is State.ASSOCIATION_PENDING
    with pytest.raises(ProtocolError, match="reply_to_HLS"):
        server.receive_apdu(GetRequestNormal(CosemAttributeDescriptor(3, ENERGY, 2)).to_bytes())
    assert server.state is State.CLOSED
    assert server.data_to_send()[-1][0] == 0xD8  # exception-response tells the client


def test_hls_without_ciphering_policy_associates() -> None:
    meter = build_meter()
    meter.associations[MANAGEMENT_SAP] = ServerAssociation(
        AuthenticationMechanism.HIGH_GMAC,
        encryption_key=ENCRYPTION_KEY,
        authentication_key=AUTHENTICATION_KEY,
    )
    client, server = associate(meter, HLS_PLAIN)
    client.get(3, ENERGY, 2)
    (request,) = client.data_to_send()
    assert request[0] == 0xC0
    server.receive_apdu(request)
    assert client.receive_apdu(server.data_to_send()[0]) == GetResult(
        2, Data.double_long_unsigned(123456)
    )


def test_ciphered_association_refuses_plain_aarq() -> None:
    meter = build_meter()
    settings = ClientSettings(
        client_sap=MANAGEMENT_SAP,
        mechanism=AuthenticationMechanism.HIGH_GMAC,
        encryption_key=ENCRYPTION_KEY,
        authentication_key=AUTHENTICATION_KEY,
    )
    client = ClientConnection(settings)
    server = make_server(meter, MANAGEMENT_SAP)
    client.associate()
    with pytest.raises(AssociationRejected) as info:
        exchange(client, server)
    assert info.value.diagnostic == AcseServiceUserDiagnostic.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED


# -- services ---------------------------------------------------------------------------


def test_get_with_list_and_access_denied_result() -> None:
    meter = build_meter()
    client, server = associate(meter, PUBLIC)
    client.get_many([(3, ENERGY, 3, None), (1, SERIAL, 2, None), (3, ENERGY, 9, None)])
    event = only(exchange(client, server))
    assert isinstance(event, GetListResult)
    scaler_unit, serial, missing = event.results
    assert isinstance(scaler_unit, Data)
    assert scaler_unit.to_python() == [-1, 30]
    assert serial == Data.octet_string(b"SMM0000012345678")
    assert missing is DataAccessResult.OBJECT_UNDEFINED


def test_set_denied_and_allowed() -> None:
    meter = build_meter()
    client, server = associate(meter, PUBLIC)
    client.set(8, CLOCK_OBIS, 3, Data.long(-180))
    assert only(exchange(client, server)) == SetResult(1, DataAccessResult.READ_WRITE_DENIED)
    hls_client, hls_server = associate(meter, HLS)
    hls_client.set(8, CLOCK_OBIS, 3, Data.long(-180))
    event = only(exchange(hls_client, hls_server))
    assert isinstance(event, SetResult)
    assert event.result is DataAccessResult.SUCCESS
    assert meter.device.get(8, CLOCK_OBIS, 3) == Data.long(-180)


def test_action_disconnect_control() -> None:
    meter = build_meter()
    public, public_server = associate(meter, PUBLIC)
    public.action(70, DISCONNECT, 1, Data.integer(0))
    event = only(exchange(public, public_server))
    assert isinstance(event, ActionDone)
    assert event.result is ActionResult.READ_WRITE_DENIED
    assert meter.disconnect.control_state is ControlState.CONNECTED
    client, server = associate(meter, HLS)
    client.action(70, DISCONNECT, 1, Data.integer(0))
    event = only(exchange(client, server))
    assert isinstance(event, ActionDone)
    assert event.result is ActionResult.SUCCESS
    assert meter.disconnect.control_state is ControlState.DISCONNECTED
    assert meter.outputs == [False]


def test_action_refused_by_the_object_reports_other_reason() -> None:
    meter = build_meter()
    meter.disconnect.control_mode = 0  # no remote transitions enabled
    client, server = associate(meter, HLS)
    client.action(70, DISCONNECT, 1, Data.integer(0))
    event = only(exchange(client, server))
    assert isinstance(event, ActionDone)
    assert event.result is ActionResult.OTHER_REASON
    assert meter.disconnect.control_state is ControlState.CONNECTED


# -- block transfer ---------------------------------------------------------------------


def small_pdu(settings: ClientSettings, size: int) -> ClientSettings:
    return replace(settings, max_pdu_size=size)


@pytest.mark.parametrize("settings", [PUBLIC, HLS], ids=["plain", "ciphered"])
def test_long_get_is_split_and_reassembled(settings: ClientSettings) -> None:
    meter = build_meter()
    client, server = associate(meter, small_pdu(settings, 128))
    client.get(7, LOAD_PROFILE, 2)
    blocks = 0
    event = None
    while event is None:
        for apdu in client.data_to_send():
            server.receive_apdu(apdu)
        for apdu in server.data_to_send():
            assert len(apdu) <= 128
            blocks += 1
            event = client.receive_apdu(apdu)
    assert blocks > 10
    assert isinstance(event, GetResult)
    assert isinstance(event.result, Data)
    rows = event.result.value
    assert isinstance(rows, tuple)
    assert len(rows) == PROFILE_ROWS
    assert rows[-1].to_python()[1] == 1000 + PROFILE_ROWS - 1


def test_long_get_with_list_is_reassembled() -> None:
    meter = build_meter()
    client, server = associate(meter, small_pdu(PUBLIC, 96))
    client.get_many(
        [(7, LOAD_PROFILE, 2, EntryDescriptor(1, 20).to_access_selection()), (3, ENERGY, 2, None)]
    )
    event = only(exchange(client, server))
    assert isinstance(event, GetListResult)
    rows, energy = event.results
    assert isinstance(rows, Data)
    assert len(rows.to_python()) == 20
    assert energy == Data.double_long_unsigned(123456)


def _start_long_get(meter: Meter) -> tuple[ClientConnection, ServerConnection, bytes]:
    client, server = associate(meter, small_pdu(PUBLIC, 128))
    client.get(7, LOAD_PROFILE, 2)
    server.receive_apdu(client.data_to_send()[0])
    first = server.data_to_send()[0]
    return client, server, first


def test_client_rejects_an_out_of_order_block() -> None:
    meter = build_meter()
    client, server, first = _start_long_get(meter)
    assert client.receive_apdu(first) is None
    server.receive_apdu(client.data_to_send()[0])
    second = decode_get_response(server.data_to_send()[0])
    assert isinstance(second, GetResponseWithDatablock)
    assert second.block_number == 2
    skipped = GetResponseWithDatablock(False, 3, second.result, second.invoke_id_and_priority)
    with pytest.raises(ProtocolError, match="block 3"):
        client.receive_apdu(skipped.to_bytes())
    assert client.state is State.CLOSED


def test_client_rejects_a_wrong_invoke_id() -> None:
    meter = build_meter()
    client, _server, first = _start_long_get(meter)
    response = decode_get_response(first)
    assert isinstance(response, GetResponseWithDatablock)
    other = GetResponseWithDatablock(False, 1, response.result, InvokeIdAndPriority(9))
    with pytest.raises(ProtocolError, match="invoke id"):
        client.receive_apdu(other.to_bytes())


def test_server_answers_a_wrong_block_number_and_aborts_the_long_get() -> None:
    meter = build_meter()
    _client, server, _ = _start_long_get(meter)
    server.receive_apdu(GetRequestNext(5, InvokeIdAndPriority(1)).to_bytes())
    reply = decode_get_response(server.data_to_send()[0])
    assert isinstance(reply, GetResponseWithDatablock)
    assert reply.result is DataAccessResult.DATA_BLOCK_NUMBER_INVALID
    server.receive_apdu(GetRequestNext(1, InvokeIdAndPriority(1)).to_bytes())
    again = decode_get_response(server.data_to_send()[0])
    assert isinstance(again, GetResponseWithDatablock)
    assert again.result is DataAccessResult.NO_LONG_GET_IN_PROGRESS


def test_long_set_goes_in_datablocks_and_reaches_the_object() -> None:
    meter = build_meter(max_pdu_size=64)
    client, server = associate(meter, HLS)
    assert client.max_send_pdu_size == 64
    secret = bytes(range(100))
    sent: list[bytes] = []
    client.set(15, CURRENT_ASSOCIATION_OBIS, 7, Data.octet_string(secret))
    event = None
    while event is None:
        for apdu in client.data_to_send():
            sent.append(apdu)
            assert len(apdu) <= 64
            server.receive_apdu(apdu)
        for apdu in server.data_to_send():
            event = client.receive_apdu(apdu)
    assert len(sent) >= 5
    assert event == SetResult(2, DataAccessResult.SUCCESS)
    association = meter.associations[MANAGEMENT_SAP].association
    assert association is not None
    assert association.secret == secret


def test_long_action_goes_in_pblocks() -> None:
    meter = build_meter()
    meter.associations[PUBLIC_SAP] = ServerAssociation(max_pdu_size=64)
    client, server = associate(meter, PUBLIC)
    client.action(70, DISCONNECT, 1, Data.octet_string(bytes(200)))
    sent: list[bytes] = []
    event = None
    while event is None:
        for apdu in client.data_to_send():
            sent.append(apdu)
            assert len(apdu) <= 64
            server.receive_apdu(apdu)
        for apdu in server.data_to_send():
            event = client.receive_apdu(apdu)
    assert len(sent) >= 4
    assert sent[0][:2] == b"\xc3\x04"
    assert sent[1][:2] == b"\xc3\x06"
    # The public client has no right on the method: the server still reassembled and answered.
    assert isinstance(event, ActionDone)
    assert event.result is ActionResult.READ_WRITE_DENIED


# -- ciphering and misbehaving peers -----------------------------------------------------


def test_replayed_ciphered_request_is_rejected() -> None:
    meter = build_meter()
    client, server = associate(meter, HLS)
    client.get(3, ENERGY, 2)
    request = client.data_to_send()[0]
    server.receive_apdu(request)
    client.receive_apdu(server.data_to_send()[0])
    with pytest.raises(ReplayError):
        server.receive_apdu(request)
    assert server.state is State.CLOSED
    assert server.data_to_send()[0][:3] == bytes([0xD8, 1, 5])  # deciphering error


def test_replayed_ciphered_response_is_rejected_by_the_client() -> None:
    meter = build_meter()
    client, server = associate(meter, HLS)
    client.get(3, ENERGY, 2)
    server.receive_apdu(client.data_to_send()[0])
    response = server.data_to_send()[0]
    client.receive_apdu(response)
    client.get(3, ENERGY, 2)
    with pytest.raises(ReplayError):
        client.receive_apdu(response)
    assert client.state is State.CLOSED


def test_tampered_ciphered_apdu_is_rejected() -> None:
    meter = build_meter()
    client, server = associate(meter, HLS)
    client.get(3, ENERGY, 2)
    request = bytearray(client.data_to_send()[0])
    request[-1] ^= 0x01
    with pytest.raises(CipheringError):
        server.receive_apdu(bytes(request))


def test_plain_request_in_ciphered_association_is_rejected() -> None:
    meter = build_meter()
    _client, server = associate(meter, HLS)
    with pytest.raises(CipheringError):
        server.receive_apdu(bytes.fromhex("C001C1000308000001FF0200"))


def test_authentication_only_policy_is_below_an_encrypting_server_policy() -> None:
    meter = build_meter()
    settings = ClientSettings(
        client_sap=MANAGEMENT_SAP,
        mechanism=AuthenticationMechanism.HIGH_GMAC,
        encryption_key=ENCRYPTION_KEY,
        authentication_key=AUTHENTICATION_KEY,
        system_title=CLIENT_TITLE,
        security=SecurityPolicy(authenticated=True),
    )
    client = ClientConnection(settings)
    server = make_server(meter, MANAGEMENT_SAP)
    client.associate()
    with pytest.raises(DlmsError):
        exchange(client, server)
    assert server.state is State.CLOSED


def test_general_glo_ciphering_is_answered_in_kind() -> None:
    meter = build_meter()
    settings = replace(HLS, general_ciphering=True)
    client, server = associate(meter, settings)
    client.get(3, ENERGY, 2)
    request = client.data_to_send()[0]
    assert request[0] == 0xDB
    server.receive_apdu(request)
    reply = server.data_to_send()[0]
    assert reply[0] == 0xDB
    assert client.receive_apdu(reply) == GetResult(2, Data.double_long_unsigned(123456))


def test_server_closes_on_garbage_after_association() -> None:
    meter = build_meter()
    _client, server = associate(meter, PUBLIC)
    with pytest.raises(DecodeError):
        server.receive_apdu(b"\xc0\x01")
    assert server.state is State.CLOSED
    with pytest.raises(ProtocolError):
        server.receive_apdu(b"\x62\x00")


def test_client_rejects_unsolicited_and_unexpected_apdus() -> None:
    meter = build_meter()
    client, _server = associate(meter, PUBLIC)
    with pytest.raises(ProtocolError, match="unsolicited"):
        client.receive_apdu(bytes.fromhex("C401C1000600000001"))
    client2, _ = associate(meter, PUBLIC)
    client2.get(3, ENERGY, 2)
    with pytest.raises(ProtocolError):
        client2.receive_apdu(bytes.fromhex("C501C100"))


def test_requests_need_an_association_and_a_free_slot() -> None:
    client = ClientConnection(PUBLIC)
    with pytest.raises(ProtocolError):
        client.get(3, ENERGY, 2)
    meter = build_meter()
    client, _ = associate(meter, PUBLIC)
    client.get(3, ENERGY, 2)
    with pytest.raises(ProtocolError, match="pending"):
        client.get(3, ENERGY, 2)


def test_settings_are_validated() -> None:
    with pytest.raises(EncodeError):
        ClientSettings(mechanism=AuthenticationMechanism.HIGH_GMAC)
    with pytest.raises(EncodeError):
        ClientSettings(mechanism=AuthenticationMechanism.LOW)
    with pytest.raises(EncodeError):
        ClientSettings(max_pdu_size=12)


def test_invoke_ids_advance_and_wrap() -> None:
    meter = build_meter()
    client, server = associate(meter, PUBLIC)
    ids = []
    for _ in range(20):
        ids.append(client.get(3, ENERGY, 2))
        assert isinstance(only(exchange(client, server)), GetResult)
    assert ids[:3] == [1, 2, 3]
    assert ids[15] == 0
    assert ids[16] == 1


@settings(max_examples=300, deadline=None)
@given(garbage=st.binary(min_size=0, max_size=80))
def test_garbage_never_crashes_either_role(garbage: bytes) -> None:
    meter = build_meter()
    for pick in range(2):
        client, server = associate(meter, [PUBLIC, HLS][pick])
        client.get(3, ENERGY, 2)
        for machine in (server, client):
            try:
                machine.receive_apdu(garbage)
            except DlmsError:
                assert machine.state in (State.CLOSED, State.ASSOCIATED, State.IDLE)


@settings(max_examples=200, deadline=None)
@given(garbage=st.binary(min_size=1, max_size=60))
def test_garbage_instead_of_aare_raises_a_typed_error(garbage: bytes) -> None:
    client = ClientConnection(PUBLIC)
    client.associate()
    with pytest.raises(DlmsError):
        client.receive_apdu(garbage)
    assert client.state is State.CLOSED


@settings(max_examples=50, deadline=None)
@given(size=st.integers(min_value=64, max_value=600), rows=st.integers(min_value=0, max_value=60))
def test_block_transfer_round_trips_for_any_pdu_size(size: int, rows: int) -> None:
    meter = build_meter()
    client, server = associate(meter, small_pdu(HLS, size))
    client.get(7, LOAD_PROFILE, 2, EntryDescriptor(1, rows).to_access_selection() if rows else None)
    event = only(exchange(client, server))
    assert isinstance(event, GetResult)
    assert isinstance(event.result, Data)
    expected = meter.profile.rows()[:rows] if rows else meter.profile.rows()
    assert event.result == Data.array(Data.structure(r) for r in expected)
    assert event.result.tag is DataTag.ARRAY


def test_released_event_on_server() -> None:
    meter = build_meter()
    client, server = associate(meter, PUBLIC)
    client.release()
    (rlrq,) = client.data_to_send()
    assert server.receive_apdu(rlrq) == Released(PUBLIC_SAP)
    assert next(iter(itertools.chain(server.data_to_send())))[0] == 0x63


def test_client_refuses_a_response_protected_below_its_policy() -> None:
    meter = build_meter()
    client, server = associate(meter, HLS)
    client.get(3, ENERGY, 2)
    server.receive_apdu(client.data_to_send()[0])
    server.data_to_send()
    # A server that answers with authentication only, though encryption was agreed.
    plain = GetResponseNormal(Data.double_long_unsigned(1), InvokeIdAndPriority(2)).to_bytes()
    content = encrypt(
        ENCRYPTION_KEY, AUTHENTICATION_KEY, SERVER_TITLE, 1000, SecurityControl(True), plain
    )
    downgraded = CipheredApdu(CipheredTag.GLO_GET_RESPONSE, content).to_bytes()
    with pytest.raises(CipheringError, match="below"):
        client.receive_apdu(downgraded)
    assert client.state is State.CLOSED
