"""A simulated point-to-point meter read by independent clients: dlms-cosem 21.3.2 and Gurux.

The fleet runner serves the meter on its own loopback address; both blocking clients run in
a worker thread, associate with HLS-GMAC (authenticated and encrypted) using the meter's
keys, read registers with scaler/unit, the clock and the load profile by range, and
toggle the breaker. Simulated time stands still, so every value must equal the model's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from smmc.dlms.cosem_time import CosemDateTime
from smmc.sim.clock import SimClock
from smmc.sim.fleet import MeterSpec, default_fleet
from smmc.sim.meter_model import MeterModel
from smmc.sim.runner import FleetRunner

pytestmark = pytest.mark.interop

dlms_cosem = pytest.importorskip("dlms_cosem")
gurux = pytest.importorskip("gurux_dlms")

from dlms_cosem import cosem as dc_cosem  # noqa: E402
from dlms_cosem import enumerations as dc_enums  # noqa: E402
from dlms_cosem.clients.dlms_client import DlmsClient as DcClient  # noqa: E402
from dlms_cosem.cosem.capture_object import CaptureObject  # noqa: E402
from dlms_cosem.cosem.selective_access import RangeDescriptor as DcRange  # noqa: E402
from dlms_cosem.utils import parse_as_dlms_data  # noqa: E402
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

HOST = "127.80.0.1"
NOW = dt.datetime(2026, 5, 20, 15, 7, 30, tzinfo=dt.UTC)
HEAD_END_SAP = 48
CLIENT_TITLE = b"SMMC\x00\x00\x00\x01"
RANGE = (
    dt.datetime(2026, 5, 20, 10, 0, tzinfo=dt.UTC),
    dt.datetime(2026, 5, 20, 12, 0, tzinfo=dt.UTC),
)


@dataclasses.dataclass
class Served:
    spec: MeterSpec
    model: MeterModel
    port: int


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    port = _free_port()
    base = default_fleet().sized(0, 0, 1)
    fleet = dataclasses.replace(
        base,
        point_to_point=dataclasses.replace(base.point_to_point, first_host=HOST, port=port),
    )
    plan = fleet.build(NOW)
    clock = SimClock(NOW, 1.0, fleet.time.history_days, wall=lambda: NOW)
    async with FleetRunner(plan, clock) as runner:
        yield Served(plan.meter(0), runner.meters.model(0), port)


def _expected(served: Served) -> tuple[int, list[int], dt.datetime]:
    rows = served.model.load_profile(RANGE[0] - dt.timedelta(seconds=1), RANGE[1])
    total = served.model.registers(NOW).active_import.total
    return total, [row.active_import_wh for row in rows], served.model.meter_time(NOW)


# -- dlms-cosem 21.3.2 ------------------------------------------------------------------


def _dc_attribute(interface: Any, obis: str, attribute: int) -> Any:
    return dc_cosem.CosemAttribute(
        interface=interface, instance=dc_cosem.Obis.from_string(obis), attribute=attribute
    )


CLOCK_TIME = _dc_attribute(dc_enums.CosemInterface.CLOCK, "0.0.1.0.0.255", 2)
ENERGY_VALUE = _dc_attribute(dc_enums.CosemInterface.REGISTER, "1.0.1.8.0.255", 2)
ENERGY_SCALER = _dc_attribute(dc_enums.CosemInterface.REGISTER, "1.0.1.8.0.255", 3)
BREAKER_OUTPUT = _dc_attribute(dc_enums.CosemInterface.DISCONNECT_CONTROL, "0.0.96.3.10.255", 2)
PROFILE_BUFFER = _dc_attribute(dc_enums.CosemInterface.PROFILE_GENERIC, "1.0.99.1.0.255", 2)
BREAKER = dc_cosem.Obis.from_string("0.0.96.3.10.255")


async def test_dlms_cosem_reads_the_simulated_meter_and_toggles_its_breaker(
    served: Served,
) -> None:
    encryption_key, authentication_key = served.spec.device_keys

    def breaker(client: Any, method: int) -> Any:
        client.action(
            dc_cosem.CosemMethod(dc_enums.CosemInterface.DISCONNECT_CONTROL, BREAKER, method),
            bytes([0x0F, 0x00]),
        )
        return parse_as_dlms_data(client.get(BREAKER_OUTPUT))

    def run() -> tuple[Any, ...]:
        client = DcClient.with_tcp_transport(
            host=HOST,
            port=served.port,
            client_logical_address=HEAD_END_SAP,
            server_logical_address=1,
            timeout=5,
            authentication_method=dc_enums.AuthenticationMechanism.HLS_GMAC,
            encryption_key=encryption_key,
            authentication_key=authentication_key,
            client_system_title=CLIENT_TITLE,
            client_initial_invocation_counter=1,
        )
        with client.session():
            clock = parse_as_dlms_data(client.get(CLOCK_TIME))
            energy = parse_as_dlms_data(client.get(ENERGY_VALUE))
            scaler_unit = parse_as_dlms_data(client.get(ENERGY_SCALER))
            descriptor = DcRange(
                restricting_object=CaptureObject(cosem_attribute=CLOCK_TIME),
                from_value=RANGE[0],
                to_value=RANGE[1],
            )
            rows = parse_as_dlms_data(client.get(PROFILE_BUFFER, access_descriptor=descriptor))
            opened = breaker(client, 1)
            closed_after_open = served.model.breaker_closed(NOW)
            closed = breaker(client, 2)
        return clock, energy, scaler_unit, rows, opened, closed_after_open, closed

    clock, energy, scaler_unit, rows, opened, closed_after_open, closed = await asyncio.to_thread(
        run
    )
    total, profile, meter_time = _expected(served)
    assert energy == total
    assert scaler_unit == [0, 30]
    shown = CosemDateTime.from_bytes(bytes(clock)).to_datetime()
    assert abs((shown - meter_time).total_seconds()) < 0.01
    assert shown.utcoffset() == dt.timedelta(hours=-4)  # Santiago in May: no DST
    assert len(rows) == len(profile) == 9
    assert [row[2] for row in rows] == profile
    assert (opened, closed_after_open, closed) == (False, False, True)
    assert served.model.breaker_closed(NOW)


# -- Gurux ------------------------------------------------------------------------------


async def test_gurux_reads_the_simulated_meter_and_toggles_its_breaker(served: Served) -> None:
    encryption_key, authentication_key = served.spec.device_keys

    def run() -> tuple[Any, ...]:
        client = GXDLMSSecureClient(
            True, HEAD_END_SAP, 1, Authentication.HIGH_GMAC, None, InterfaceType.WRAPPER
        )
        cipher = client.settings.cipher
        cipher.security = Security.AUTHENTICATION_ENCRYPTION
        cipher.systemTitle = bytearray(CLIENT_TITLE)
        cipher.blockCipherKey = bytearray(encryption_key)
        cipher.authenticationKey = bytearray(authentication_key)
        cipher.invocationCounter = 1
        session = GuruxSession(HOST, served.port, client)
        session.associate()
        try:
            clock = GXDLMSClock("0.0.1.0.0.255")
            register = GXDLMSRegister("1.0.1.8.0.255")
            session.read(register, 3)
            session.read(register, 2)
            session.read(clock, 2)
            profile = GXDLMSProfileGeneric("1.0.99.1.0.255")
            session.read(profile, 3)
            reply = session.exchange(
                client.readRowsByRange(profile, GXDateTime(RANGE[0]), GXDateTime(RANGE[1]))
            )
            client.updateValue(profile, 2, reply.value)
            breaker = GXDLMSDisconnectControl("0.0.96.3.10.255")
            session.exchange(client.method(breaker, 1, 0, DataType.INT8))
            session.read(breaker, 2)
            opened = breaker.outputState
            closed_after_open = served.model.breaker_closed(NOW)
            session.exchange(client.method(breaker, 2, 0, DataType.INT8))
            session.read(breaker, 2)
            closed = breaker.outputState
        finally:
            session.close()
        return (
            clock.time.value,
            register.value,
            register.scaler,
            register.unit,
            profile.buffer,
            opened,
            closed_after_open,
            closed,
        )

    time, value, scaler, unit, rows, opened, closed_after_open, closed = await asyncio.to_thread(
        run
    )
    total, profile, meter_time = _expected(served)
    assert value == total
    assert scaler == 1
    assert int(unit) == 30
    assert abs((time - meter_time).total_seconds()) < 1
    assert len(rows) == len(profile) == 9
    assert [row[2] for row in rows] == profile
    assert (opened, closed_after_open, closed) == (False, False, True)
    assert served.model.breaker_closed(NOW)
