"""Our DLMS server read by independent clients over real TCP: dlms-cosem 21.3.2 and Gurux.

Both peers are blocking; they run in a worker thread while our asyncio server answers on
an ephemeral port of 127.0.0.1. The meter (three client SAPs: lowest, LLS, HLS-GMAC with
authenticated+encrypted APDUs) is the one of ``tests/dlms/dlms_meter.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from dlms_meter import (
    AUTHENTICATION_KEY,
    CLIENT_TITLE,
    ENCRYPTION_KEY,
    LLS_PASSWORD,
    MANAGEMENT_SAP,
    NOW,
    PUBLIC_SAP,
    READER_SAP,
    SERVER_TITLE,
    Meter,
    build_meter,
    profile_time,
)

from smmc.dlms.connection import ServerConnection
from smmc.dlms.cosem.disconnect_control import ControlState
from smmc.dlms.server import DlmsServer, ServedDevice

pytestmark = pytest.mark.interop

dlms_cosem = pytest.importorskip("dlms_cosem")
gurux = pytest.importorskip("gurux_dlms")

from dlms_cosem import cosem as dc_cosem  # noqa: E402
from dlms_cosem import enumerations as dc_enums  # noqa: E402
from dlms_cosem.clients.dlms_client import DlmsClient as DcClient  # noqa: E402
from dlms_cosem.cosem.capture_object import CaptureObject  # noqa: E402
from dlms_cosem.cosem.selective_access import RangeDescriptor as DcRange  # noqa: E402
from dlms_cosem.utils import parse_as_dlms_data  # noqa: E402

HOST = "127.0.0.1"
SMALL_PDU = 256


@pytest.fixture
def meter() -> Meter:
    return build_meter(max_pdu_size=SMALL_PDU)


@pytest.fixture
def served_apdus(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every APDU our server receives (to see the block transfer happen)."""
    seen: list[bytes] = []
    original = ServerConnection.receive_apdu

    def counting(self: ServerConnection, data: bytes) -> object:
        seen.append(bytes(data))
        return original(self, data)

    monkeypatch.setattr(ServerConnection, "receive_apdu", counting)
    return seen


@pytest.fixture
async def server(meter: Meter) -> AsyncIterator[DlmsServer]:
    served = ServedDevice(meter.device, meter.associations, SERVER_TITLE)
    async with DlmsServer({1: served}, idle_timeout=10.0) as running:
        yield running


# -- dlms-cosem 21.3.2 ------------------------------------------------------------------


def _dc_client(port: int, sap: int, **kwargs: Any) -> Any:
    return DcClient.with_tcp_transport(
        host=HOST,
        port=port,
        client_logical_address=sap,
        server_logical_address=1,
        timeout=5,
        **kwargs,
    )


def _dc_attribute(interface: Any, obis: str, attribute: int) -> Any:
    return dc_cosem.CosemAttribute(
        interface=interface, instance=dc_cosem.Obis.from_string(obis), attribute=attribute
    )


CLOCK_TIME = _dc_attribute(dc_enums.CosemInterface.CLOCK, "0.0.1.0.0.255", 2)
ENERGY_VALUE = _dc_attribute(dc_enums.CosemInterface.REGISTER, "1.0.1.8.0.255", 2)
ENERGY_SCALER = _dc_attribute(dc_enums.CosemInterface.REGISTER, "1.0.1.8.0.255", 3)
BREAKER_OUTPUT = _dc_attribute(dc_enums.CosemInterface.DISCONNECT_CONTROL, "0.0.96.3.10.255", 2)
PROFILE_BUFFER = _dc_attribute(dc_enums.CosemInterface.PROFILE_GENERIC, "1.0.99.1.0.255", 2)


def _dc_read_clock_and_energy(client: Any) -> tuple[Any, Any, Any]:
    clock = parse_as_dlms_data(client.get(CLOCK_TIME))
    energy = parse_as_dlms_data(client.get(ENERGY_VALUE))
    scaler_unit = parse_as_dlms_data(client.get(ENERGY_SCALER))
    return clock, energy, scaler_unit


def _check_clock_and_energy(values: tuple[Any, Any, Any]) -> None:
    clock, energy, scaler_unit = values
    assert isinstance(clock, bytes | bytearray)
    assert clock[:7] == bytes([0x07, 0xEA, 3, 1, 7, 12, 0])  # 2026-03-01 (Sunday) 12:00
    assert energy == 123456
    assert scaler_unit == [-1, 30]


async def test_dlms_cosem_without_security(server: DlmsServer) -> None:
    def run() -> tuple[Any, Any, Any]:
        client = _dc_client(server.port, PUBLIC_SAP)
        with client.session():
            return _dc_read_clock_and_energy(client)

    _check_clock_and_energy(await asyncio.to_thread(run))


async def test_dlms_cosem_lls(server: DlmsServer) -> None:
    def run() -> tuple[Any, Any, Any]:
        client = _dc_client(
            server.port,
            READER_SAP,
            authentication_method=dc_enums.AuthenticationMechanism.LLS,
            password=LLS_PASSWORD,
        )
        with client.session():
            return _dc_read_clock_and_energy(client)

    _check_clock_and_energy(await asyncio.to_thread(run))


def _dc_hls_client(port: int) -> Any:
    return _dc_client(
        port,
        MANAGEMENT_SAP,
        authentication_method=dc_enums.AuthenticationMechanism.HLS_GMAC,
        encryption_key=ENCRYPTION_KEY,
        authentication_key=AUTHENTICATION_KEY,
        client_system_title=CLIENT_TITLE,
        client_initial_invocation_counter=1,
        block_transfer=True,
        max_pdu_size=SMALL_PDU,
    )


async def test_dlms_cosem_hls_gmac_ciphered_action_and_profile(
    server: DlmsServer, meter: Meter, served_apdus: list[bytes]
) -> None:
    start, end = profile_time(10), profile_time(105)

    def run() -> tuple[Any, Any, Any, Any, Any]:
        client = _dc_hls_client(server.port)
        with client.session():
            values = _dc_read_clock_and_energy(client)
            before = parse_as_dlms_data(client.get(BREAKER_OUTPUT))
            client.action(
                dc_cosem.CosemMethod(
                    dc_enums.CosemInterface.DISCONNECT_CONTROL,
                    dc_cosem.Obis.from_string("0.0.96.3.10.255"),
                    1,
                ),
                bytes([0x0F, 0x00]),
            )
            after = parse_as_dlms_data(client.get(BREAKER_OUTPUT))
            descriptor = DcRange(
                restricting_object=CaptureObject(cosem_attribute=CLOCK_TIME),
                from_value=start,
                to_value=end,
            )
            rows = parse_as_dlms_data(client.get(PROFILE_BUFFER, access_descriptor=descriptor))
        return values, before, after, rows, client.dlms_connection.meter_invocation_counter

    values, before, after, rows, meter_counter = await asyncio.to_thread(run)
    _check_clock_and_energy(values)
    assert (before, after) == (True, False)
    assert meter.disconnect.control_state is ControlState.DISCONNECTED
    assert len(rows) == 96
    assert [row[1] for row in rows] == list(range(1010, 1106))
    assert meter_counter > 3  # it checked our counters increase
    assert len(served_apdus) > 12  # AARQ, pass 3, 5 GETs, ACTION and the next-block requests
    assert all(apdu[0] in (0x60, 0x62, 0xDB) for apdu in served_apdus)  # general-glo


# -- Gurux ------------------------------------------------------------------------------

from gurux_dlms import GXDateTime  # noqa: E402
from gurux_dlms.enums import Authentication, DataType, InterfaceType, Security  # noqa: E402
from gurux_dlms.objects import (  # noqa: E402
    GXDLMSClock,
    GXDLMSDisconnectControl,
    GXDLMSProfileGeneric,
    GXDLMSRegister,
)
from gurux_dlms.secure import GXDLMSSecureClient  # noqa: E402
from gurux_session import GuruxSession  # noqa: E402


def _gurux_client(sap: int, authentication: Any = Authentication.NONE, **kwargs: Any) -> Any:
    client = GXDLMSSecureClient(
        True, sap, 1, authentication, kwargs.pop("password", None), InterfaceType.WRAPPER
    )
    for name, value in kwargs.items():
        setattr(client, name, value)
    return client


def _gurux_read_clock_and_energy(session: GuruxSession) -> tuple[Any, Any, Any, Any]:
    clock = GXDLMSClock("0.0.1.0.0.255")
    register = GXDLMSRegister("1.0.1.8.0.255")
    session.read(register, 3)
    session.read(register, 2)
    session.read(clock, 2)
    return clock.time, register.value, register.scaler, register.unit


def _check_gurux_values(values: tuple[Any, Any, Any, Any]) -> None:
    time, value, scaler, unit = values
    assert time.value.replace(tzinfo=None) == NOW.replace(tzinfo=None)
    assert value == pytest.approx(12345.6)  # Gurux applies the scaler it read first
    assert scaler == pytest.approx(0.1)
    assert int(unit) == 30


async def test_gurux_without_security(server: DlmsServer) -> None:
    def run() -> tuple[Any, Any, Any, Any]:
        session = GuruxSession(HOST, server.port, _gurux_client(PUBLIC_SAP))
        session.associate()
        try:
            return _gurux_read_clock_and_energy(session)
        finally:
            session.close()

    _check_gurux_values(await asyncio.to_thread(run))


async def test_gurux_lls(server: DlmsServer) -> None:
    def run() -> tuple[Any, Any, Any, Any]:
        client = _gurux_client(READER_SAP, Authentication.LOW, password=LLS_PASSWORD)
        session = GuruxSession(HOST, server.port, client)
        session.associate()
        try:
            return _gurux_read_clock_and_energy(session)
        finally:
            session.close()

    _check_gurux_values(await asyncio.to_thread(run))


async def test_gurux_hls_gmac_ciphered_action_and_profile(
    server: DlmsServer, meter: Meter, served_apdus: list[bytes]
) -> None:
    start, end = profile_time(10), profile_time(105)

    def run() -> tuple[Any, ...]:
        client = _gurux_client(MANAGEMENT_SAP, Authentication.HIGH_GMAC)
        cipher = client.settings.cipher
        cipher.security = Security.AUTHENTICATION_ENCRYPTION
        cipher.systemTitle = bytearray(CLIENT_TITLE)
        cipher.blockCipherKey = bytearray(ENCRYPTION_KEY)
        cipher.authenticationKey = bytearray(AUTHENTICATION_KEY)
        cipher.invocationCounter = 1
        client.maxReceivePDUSize = SMALL_PDU
        session = GuruxSession(HOST, server.port, client)
        session.associate()
        try:
            values = _gurux_read_clock_and_energy(session)
            breaker = GXDLMSDisconnectControl("0.0.96.3.10.255")
            session.read(breaker, 2)
            before = breaker.outputState
            session.exchange(client.method(breaker, 1, 0, DataType.INT8))
            session.read(breaker, 2)
            after = breaker.outputState
            profile = GXDLMSProfileGeneric("1.0.99.1.0.255")
            session.read(profile, 3)
            reply = session.exchange(
                client.readRowsByRange(profile, GXDateTime(start), GXDateTime(end))
            )
            client.updateValue(profile, 2, reply.value)
            rows = profile.buffer
        finally:
            session.close()
        return values, before, after, rows

    values, before, after, rows = await asyncio.to_thread(run)
    _check_gurux_values(values)
    assert (before, after) == (True, False)
    assert meter.disconnect.control_state is ControlState.DISCONNECTED
    assert len(rows) == 96
    assert [row[1] for row in rows] == list(range(1010, 1106))
    assert len(served_apdus) > 12  # AARQ, pass 3, the reads, ACTION, next-block requests
    assert all(apdu[0] in (0x60, 0x62, 0xC8, 0xCB) for apdu in served_apdus)  # glo-*
