"""Our asyncio client against our asyncio server over real TCP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import socket
import time
from collections.abc import AsyncIterator
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
    NOW,
    PUBLIC_SAP,
    READER_SAP,
    SERIAL,
    SERVER_TITLE,
    VOLTAGE,
    Meter,
    build_meter,
    profile_time,
)

from smmc.dlms.apdu import (
    AcseServiceUserDiagnostic,
    AuthenticationMechanism,
    CaptureObjectDefinition,
    DataAccessResult,
    DataNotification,
)
from smmc.dlms.axdr import Data
from smmc.dlms.client import ClientSettings, DlmsClient, Link, SecurityPolicy
from smmc.dlms.connection import (
    AssociationEstablished,
    AssociationRefused,
    ClientConnection,
    Released,
    ServerEvent,
)
from smmc.dlms.cosem.clock import CLOCK_OBIS
from smmc.dlms.cosem.disconnect_control import ControlState
from smmc.dlms.cosem.register import Unit
from smmc.dlms.cosem_time import CosemDateTime
from smmc.dlms.errors import (
    AccessDenied,
    AssociationRejected,
    DecodeError,
    DlmsError,
    DlmsTimeout,
    ProtocolError,
)
from smmc.dlms.framing.wrapper import WrapperDecoder, WrapperFrame
from smmc.dlms.security import InvocationCounterGuard
from smmc.dlms.server import DlmsServer, ServedDevice

HOST = "127.0.0.1"
PUBLIC = ClientSettings(client_sap=PUBLIC_SAP, timeout=5.0)
LLS = ClientSettings(
    client_sap=READER_SAP, mechanism=AuthenticationMechanism.LOW, password=LLS_PASSWORD
)
HLS = ClientSettings(
    client_sap=MANAGEMENT_SAP,
    mechanism=AuthenticationMechanism.HIGH_GMAC,
    encryption_key=ENCRYPTION_KEY,
    authentication_key=AUTHENTICATION_KEY,
    system_title=CLIENT_TITLE,
    security=SecurityPolicy(authenticated=True, encrypted=True),
)


@pytest.fixture
def meter() -> Meter:
    return build_meter()


@pytest.fixture
def events() -> list[ServerEvent]:
    return []


@pytest.fixture
async def server(meter: Meter, events: list[ServerEvent]) -> AsyncIterator[DlmsServer]:
    served = ServedDevice(meter.device, meter.associations, SERVER_TITLE)
    async with DlmsServer({1: served}, idle_timeout=5.0, on_event=events.append) as running:
        yield running


async def test_lowest_reads_clock_and_registers_with_scaler_unit(server: DlmsServer) -> None:
    async with DlmsClient.connect(HOST, server.port, PUBLIC) as client:
        clock = await client.get(8, CLOCK_OBIS, 2)
        assert isinstance(clock.value, bytes)
        assert CosemDateTime.from_bytes(clock.value).to_datetime() == NOW
        energy = await client.get(3, ENERGY, 2)
        scaler_unit = await client.get(3, ENERGY, 3)
        assert energy == Data.double_long_unsigned(123456)
        assert scaler_unit.to_python() == [-1, Unit.WATT_HOUR]
        values = await client.get_many([(3, VOLTAGE, 2), (3, VOLTAGE, 3), (1, SERIAL, 2)])
        assert values == [
            Data.long_unsigned(2301),
            Data.structure((Data.integer(-1), Data.enum(Unit.VOLT))),
            Data.octet_string(b"SMM0000012345678"),
        ]


async def test_lls_association_and_wrong_password(
    server: DlmsServer, events: list[ServerEvent]
) -> None:
    async with DlmsClient.connect(HOST, server.port, LLS) as client:
        assert await client.get(3, ENERGY, 2) == Data.double_long_unsigned(123456)
    with pytest.raises(AssociationRejected) as info:
        async with DlmsClient.connect(HOST, server.port, replace(LLS, password=b"nope")):
            pass
    assert info.value.diagnostic == 13  # authentication-failure
    assert events == [
        AssociationEstablished(READER_SAP, AuthenticationMechanism.LOW, None),
        Released(READER_SAP),  # the client released on leaving the block
        AssociationRefused(READER_SAP, AcseServiceUserDiagnostic.AUTHENTICATION_FAILURE),
    ]


async def test_hls_gmac_encrypted_action_on_disconnect_control(
    server: DlmsServer, meter: Meter
) -> None:
    counters: list[int] = []
    guard = InvocationCounterGuard()
    async with DlmsClient.connect(
        HOST, server.port, HLS, guard=guard, on_invocation_counter=counters.append
    ) as client:
        assert await client.get(70, DISCONNECT, 2) == Data.boolean(True)
        assert await client.action(70, DISCONNECT, 1, Data.integer(0)) is None
        assert await client.get(70, DISCONNECT, 2) == Data.boolean(False)
        assert await client.get(70, DISCONNECT, 3) == Data.enum(ControlState.DISCONNECTED)
    assert meter.disconnect.control_state is ControlState.DISCONNECTED
    assert meter.outputs == [False]
    assert counters == sorted(counters)
    assert len(counters) >= 5
    server_counter = guard.last(SERVER_TITLE)
    assert server_counter is not None
    assert server_counter >= 5
    # A second association continues the counters: the old ones would be replays.
    async with DlmsClient.connect(
        HOST, server.port, replace(HLS, invocation_counter=counters[-1]), guard=guard
    ) as client:
        assert await client.action(70, DISCONNECT, 2, Data.integer(0)) is None
    assert meter.disconnect.control_state is ControlState.CONNECTED


async def test_public_client_may_not_disconnect(server: DlmsServer, meter: Meter) -> None:
    async with DlmsClient.connect(HOST, server.port, PUBLIC) as client:
        with pytest.raises(AccessDenied):
            await client.action(70, DISCONNECT, 1, Data.integer(0))
        # A refused request leaves the association usable.
        assert await client.get(70, DISCONNECT, 2) == Data.boolean(True)
    assert meter.disconnect.control_state is ControlState.CONNECTED


async def test_profile_read_by_range_across_several_blocks(
    server: DlmsServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    received: list[bytes] = []
    original = ClientConnection.receive_apdu

    def counting(self: ClientConnection, data: bytes) -> object:
        received.append(bytes(data))
        return original(self, data)

    monkeypatch.setattr(ClientConnection, "receive_apdu", counting)
    start, end = profile_time(10), profile_time(105)
    settings = replace(HLS, max_pdu_size=128)
    async with DlmsClient.connect(HOST, server.port, settings) as client:
        received.clear()
        rows = await client.read_profile(LOAD_PROFILE, start, end)
        energy_only = await client.read_profile(
            LOAD_PROFILE, start, start, columns=[CaptureObjectDefinition(3, ENERGY, 2, 0)]
        )
    assert len(rows) == 96
    first_stamp = rows[0][0].value
    assert isinstance(first_stamp, bytes)
    assert CosemDateTime.from_bytes(first_stamp).to_datetime() == start
    assert [row[1] for row in rows] == [Data.double_long_unsigned(1000 + i) for i in range(10, 106)]
    assert len(received) > 10  # many GET-Response-With-Datablock
    assert all(len(apdu) <= 128 for apdu in received)
    assert energy_only == [(Data.double_long_unsigned(1010),)]


async def test_set_with_hls_and_denied_for_public(server: DlmsServer, meter: Meter) -> None:
    async with DlmsClient.connect(HOST, server.port, PUBLIC) as client:
        with pytest.raises(AccessDenied):
            await client.set(8, CLOCK_OBIS, 3, Data.long(-180))
    async with DlmsClient.connect(HOST, server.port, HLS) as client:
        await client.set(8, CLOCK_OBIS, 3, Data.long(-180))
        assert await client.get(8, CLOCK_OBIS, 3) == Data.long(-180)


async def test_with_list_reports_each_failure(server: DlmsServer) -> None:
    async with DlmsClient.connect(HOST, server.port, PUBLIC) as client:
        values = await client.get_many([(3, ENERGY, 2), (3, ENERGY, 7)])
    assert values == [Data.double_long_unsigned(123456), DataAccessResult.OBJECT_UNDEFINED]


async def _silent_server() -> tuple[asyncio.Server, list[bytes]]:
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.read(4096))
        await asyncio.sleep(30)

    return await asyncio.start_server(handle, HOST, 0), seen


async def test_timeout_when_the_server_does_not_answer() -> None:
    silent, seen = await _silent_server()
    port = silent.sockets[0].getsockname()[1]
    try:
        with pytest.raises(DlmsTimeout):
            async with DlmsClient.connect(HOST, port, replace(PUBLIC, timeout=0.3)):
                pass
    finally:
        silent.close()
    assert seen
    assert seen[0][8] == 0x60  # the AARQ went out before the wait


async def test_garbage_from_the_server_is_a_typed_error() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(4096)
        writer.write(WrapperFrame(1, 1, PUBLIC_SAP, b"\x61\x05garbage").to_bytes())
        await writer.drain()
        await asyncio.sleep(5)

    liar = await asyncio.start_server(handle, HOST, 0)
    try:
        with pytest.raises(DecodeError):
            async with DlmsClient.connect(HOST, liar.sockets[0].getsockname()[1], PUBLIC):
                pass
    finally:
        liar.close()


async def test_server_drops_a_garbage_client_and_keeps_serving(server: DlmsServer) -> None:
    reader, writer = await asyncio.open_connection(HOST, server.port)
    writer.write(WrapperFrame(1, PUBLIC_SAP, 1, b"\x60\x03\xff\xff\xff").to_bytes())
    await writer.drain()
    assert await asyncio.wait_for(reader.read(4096), 5) == b""  # closed by the server
    writer.close()
    reader, writer = await asyncio.open_connection(HOST, server.port)
    writer.write(b"\x00\x07garbage-that-is-not-a-wrapper-header")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(4096), 5) == b""
    writer.close()
    assert len(server.errors) == 2
    assert all(isinstance(error, DlmsError) for error in server.errors)
    async with DlmsClient.connect(HOST, server.port, PUBLIC) as client:
        assert await client.get(3, ENERGY, 2) == Data.double_long_unsigned(123456)


async def test_server_rejects_a_second_sap_on_one_socket(server: DlmsServer) -> None:
    reader, writer = await asyncio.open_connection(HOST, server.port)
    connection = ClientConnection(PUBLIC)
    connection.associate()
    (aarq,) = connection.data_to_send()
    writer.write(WrapperFrame(1, PUBLIC_SAP, 1, aarq).to_bytes())
    writer.write(WrapperFrame(1, READER_SAP, 1, aarq).to_bytes())
    await writer.drain()
    decoder = WrapperDecoder()
    frames: list[WrapperFrame] = []
    while data := await asyncio.wait_for(reader.read(4096), 5):
        frames.extend(decoder.feed(data))
    writer.close()
    assert [frame.payload[0] for frame in frames] == [0x61]  # one AARE, then closed
    assert isinstance(server.errors[-1], DecodeError)


async def test_server_closes_an_idle_client(meter: Meter) -> None:
    served = ServedDevice(meter.device, meter.associations, SERVER_TITLE)
    async with DlmsServer({1: served}, idle_timeout=0.2) as running:
        reader, writer = await asyncio.open_connection(HOST, running.port)
        assert await asyncio.wait_for(reader.read(10), 5) == b""
        writer.close()
        assert isinstance(running.errors[-1], DlmsTimeout)


async def test_unknown_logical_device_closes_the_socket(server: DlmsServer) -> None:
    with pytest.raises(ProtocolError, match="closed"):
        async with DlmsClient.connect(HOST, server.port, replace(PUBLIC, server_logical_address=7)):
            pass


async def test_push_sends_a_wrapped_data_notification(server: DlmsServer) -> None:
    got: asyncio.Queue[bytes] = asyncio.Queue()

    async def head_end(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await got.put(await reader.read())
        writer.close()

    listener = await asyncio.start_server(head_end, HOST, 0)
    notification = DataNotification(
        Data.structure((Data.octet_string(b"SMM0000012345678"), Data.double_long_unsigned(7))),
        CosemDateTime.from_datetime(dt.datetime(2026, 3, 1, tzinfo=dt.UTC)),
    )
    try:
        await server.push(notification, HOST, listener.sockets[0].getsockname()[1])
        raw = await asyncio.wait_for(got.get(), 5)
    finally:
        listener.close()
    (frame,) = WrapperDecoder().feed(raw)
    assert (frame.source_wport, frame.destination_wport) == (1, 1)
    assert frame.payload == notification.to_bytes()


async def test_concurrent_clients_are_served(server: DlmsServer) -> None:
    async def read(settings: ClientSettings) -> Data:
        async with DlmsClient.connect(HOST, server.port, settings) as client:
            return await client.get(3, ENERGY, 2)

    results = await asyncio.gather(read(PUBLIC), read(LLS), read(PUBLIC))
    assert results == [Data.double_long_unsigned(123456)] * 3


@pytest.fixture
async def hdlc_server(meter: Meter) -> AsyncIterator[DlmsServer]:
    served = ServedDevice(meter.device, meter.associations, SERVER_TITLE)
    async with DlmsServer({1: served}, idle_timeout=5.0, transport="hdlc") as running:
        yield running


async def test_hdlc_over_tcp_lowest_and_segmented_profile(hdlc_server: DlmsServer) -> None:
    settings = replace(PUBLIC, transport="hdlc")
    async with DlmsClient.connect(HOST, hdlc_server.port, settings) as client:
        assert await client.get(3, ENERGY, 2) == Data.double_long_unsigned(123456)
        # ~2 kB in one GET-Response: many 128-byte HDLC segments, each acknowledged by RR.
        rows = await client.read_profile(LOAD_PROFILE, profile_time(0), profile_time(95))
    assert len(rows) == 96
    assert rows[-1][1] == Data.double_long_unsigned(1095)


async def test_hdlc_over_tcp_hls_gmac_ciphered_action(
    hdlc_server: DlmsServer, meter: Meter
) -> None:
    settings = replace(HLS, transport="hdlc", max_pdu_size=256)
    async with DlmsClient.connect(HOST, hdlc_server.port, settings) as client:
        await client.action(70, DISCONNECT, 1, Data.integer(0))
        rows = await client.read_profile(LOAD_PROFILE, profile_time(0), profile_time(40))
    assert meter.disconnect.control_state is ControlState.DISCONNECTED
    assert len(rows) == 41


async def test_hdlc_server_refuses_garbage(hdlc_server: DlmsServer) -> None:
    reader, writer = await asyncio.open_connection(HOST, hdlc_server.port)
    writer.write(b"\x00" * 5000)
    await writer.drain()
    assert await asyncio.wait_for(reader.read(4096), 5) == b""
    writer.close()
    assert isinstance(hdlc_server.errors[-1], DecodeError)


async def test_concurrent_ciphered_associations_never_share_a_server_counter(
    server: DlmsServer,
) -> None:
    async def read(title: bytes) -> list[int]:
        seen: list[int] = []
        guard = InvocationCounterGuard(on_accept=lambda _title, ic: seen.append(ic))
        async with DlmsClient.connect(
            HOST, server.port, replace(HLS, system_title=title), guard=guard
        ) as client:
            for _ in range(5):
                await client.get(3, ENERGY, 2)
                await asyncio.sleep(0)
        return seen

    first, second = await asyncio.gather(read(CLIENT_TITLE), read(b"MMM\x00\x00\x00\x00\x02"))
    assert len(first) >= 6
    assert len(second) >= 6
    assert not set(first) & set(second)


async def test_a_link_outlives_a_clean_release_and_closes_after_an_error(
    server: DlmsServer,
) -> None:
    link = await Link.open(HOST, server.port, 5.0)
    async with DlmsClient.over(link, PUBLIC) as client:
        assert await client.get(3, ENERGY, 2) == Data.double_long_unsigned(123456)
    assert link.idle  # released cleanly: open and quiet, fit for the next association
    with pytest.raises(RuntimeError):
        async with DlmsClient.over(link, PUBLIC):
            raise RuntimeError("the caller's own failure")
    assert not link.idle  # anything but a clean release closes it
    assert link.associations == 2


async def test_a_link_is_not_idle_once_the_server_closed_it() -> None:
    with socket.create_server((HOST, 0)) as listener:
        link = await Link.open(HOST, listener.getsockname()[1], 5.0)
        assert link.idle
        accepted, _ = listener.accept()
        accepted.close()
        # No await since: the end is in the socket, not yet read by the event loop.
        time.sleep(0.05)
        assert not link.idle
        link.close()


async def test_an_answer_trickling_in_times_out_at_the_request_deadline() -> None:
    """The timeout bounds the whole request, not each wait for the next bytes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(4096)
        writer.write(bytes.fromhex("0001 0001 0010 ffff"))  # a wrapper header, 65,535 to come
        with contextlib.suppress(ConnectionError):
            while True:
                await asyncio.sleep(0.02)
                writer.write(b"\x00")
                await writer.drain()

    trickling = await asyncio.start_server(handle, HOST, 0)
    port = trickling.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        with pytest.raises(DlmsTimeout):
            async with DlmsClient.connect(HOST, port, replace(PUBLIC, timeout=0.3)):
                pass
        assert 0.3 <= loop.time() - started < 2.0
    finally:
        trickling.close()


async def test_a_link_is_closed_after_a_timeout() -> None:
    with socket.create_server((HOST, 0)) as silent:
        link = await Link.open(HOST, silent.getsockname()[1], 5.0)
        with pytest.raises(DlmsTimeout):
            async with DlmsClient.over(link, replace(PUBLIC, timeout=0.1)):
                pass
        assert not link.idle
