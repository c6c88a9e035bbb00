"""The simulated concentrator over real TCP, read with our own DlmsClient."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import itertools
import socket
from collections.abc import AsyncIterator

import pytest

from smmc.dlms.apdu import AuthenticationMechanism, DataNotification
from smmc.dlms.apdu.selective_access import CLOCK_TIME, CaptureObjectDefinition, EntryDescriptor
from smmc.dlms.axdr import Data
from smmc.dlms.client import ClientSettings, DlmsClient, Link, SecurityPolicy
from smmc.dlms.connection import ClientConnection
from smmc.dlms.cosem.disconnect_control import DISCONNECT_CONTROL_OBIS
from smmc.dlms.cosem_time import CosemDateTime
from smmc.dlms.errors import AccessDenied, AssociationRejected, DlmsError, DlmsTimeout
from smmc.dlms.framing.wrapper import WrapperDecoder, WrapperFrame
from smmc.dlms.obis import Obis
from smmc.domain.concentrator_status import decode_status_word
from smmc.domain.error_catalog import ErrorKey, parse_error
from smmc.domain.spontaneous import PowerEvent, decode_power_frame
from smmc.domain.time import to_local
from smmc.sim.anomalies import AnomalyRates
from smmc.sim.clock import SimClock
from smmc.sim.concentrator import (
    ACK_LOG_OBIS,
    COLLECTED_DAILY_OBIS,
    COLLECTED_LOAD_PROFILE_OBIS,
    COLLECTED_STATUS_OBIS,
    GATEWAY_BASE,
    MANAGEMENT_CLIENT,
    NODE_MANAGEMENT_CLASS,
    NODE_MANAGEMENT_OBIS,
    NODE_TABLE_OBIS,
    PUBLIC_CLIENT,
    STATUS_WORD_OBIS,
    ConcentratorFleet,
    ConcentratorServer,
    HeadEndAddress,
    gateway_address,
)
from smmc.sim.fleet import ClockDrift, FaultRates, FleetPlan, default_fleet
from smmc.sim.meter_device import HEAD_END_SAP, MeterDevices, meter_lls_password
from smmc.sim.plc import LinkSettings
from smmc.sim.runner import FleetRunner

HOST = "127.0.0.1"
NOW = dt.datetime(2026, 4, 10, 15, 7, 30, tzinfo=dt.UTC)
CLOCK = Obis(0, 0, 1, 0, 0, 255)
SERIAL = Obis(0, 0, 96, 1, 0, 255)
ACTIVE_IMPORT_TOTAL = Obis(1, 0, 1, 8, 0, 255)
NO_ANOMALIES = AnomalyRates(*(0.0,) * 9)
METERS = 5
_titles = itertools.count(1)


class Wall:
    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now


def make_plan(
    *,
    unreachable: float = 0.0,
    repeater: float = 0.0,
    wrong_key: float = 0.0,
    down: float = 0.0,
    phase_missing: float = 0.0,
) -> FleetPlan:
    base = default_fleet().sized(1, METERS, 0)
    fleet = dataclasses.replace(
        base,
        anomalies=NO_ANOMALIES,
        faults=FaultRates(unreachable, repeater, phase_missing, wrong_key, down),
        clock_drift=ClockDrift(mean_ppm=0.0, sd_ppm=0.0, tolerance_s=60.0),
        time=dataclasses.replace(base.time, history_days=3),
    )
    return fleet.build(NOW)


def make_dc(
    plan: FleetPlan, *, link: LinkSettings | None = None, head_end: HeadEndAddress | None = None
) -> ConcentratorServer:
    clock = SimClock(plan.epoch, 1.0, plan.fleet.time.history_days, wall=Wall(NOW))
    return ConcentratorServer(
        plan,
        plan.concentrators[0],
        clock,
        meters=MeterDevices(plan, clock),
        host=HOST,
        port=0,
        link=link or LinkSettings(latency_s=0.0, bytes_per_s=1e9),
        head_end=head_end,
        idle_timeout=10.0,
    )


@pytest.fixture
async def dc() -> AsyncIterator[ConcentratorServer]:
    async with make_dc(make_plan()) as running:
        yield running


def management(dc: ConcentratorServer) -> ClientSettings:
    return ClientSettings(
        client_sap=MANAGEMENT_CLIENT,
        mechanism=AuthenticationMechanism.LOW,
        password=dc.spec.maa_password.encode("ascii"),
        timeout=10.0,
    )


def meter_settings(dc: ConcentratorServer, node_address: int) -> ClientSettings:
    """The head-end's HLS association with the meter's provisioned keys, through the DC."""
    index = dc.nodes[node_address].index
    encryption_key, authentication_key = dc.plan.meter(index).keys
    return ClientSettings(
        client_sap=HEAD_END_SAP,
        server_logical_address=gateway_address(node_address),
        mechanism=AuthenticationMechanism.HIGH_GMAC,
        encryption_key=encryption_key,
        authentication_key=authentication_key,
        system_title=b"SMMC" + next(_titles).to_bytes(4, "big"),
        security=SecurityPolicy(authenticated=True, encrypted=True),
        timeout=10.0,
    )


def stamp(value: Data) -> dt.datetime:
    raw = value.value
    assert isinstance(raw, bytes)
    return CosemDateTime.from_bytes(raw).to_datetime()


def items(value: Data | None) -> tuple[Data, ...]:
    """The elements of an array or structure."""
    assert value is not None
    assert isinstance(value.value, tuple)
    return value.value


def plain(value: Data | None) -> list[object]:
    """The Python values of a structure's elements."""
    return [item.value for item in items(value)]


def table_rows(buffer: Data) -> list[tuple[Data, ...]]:
    return [items(row) for row in items(buffer)]


def nodes(dc: ConcentratorServer) -> list[int]:
    return sorted(dc.nodes)


async def ack_log(dc: ConcentratorServer) -> list[tuple[Data, ...]]:
    async with DlmsClient.connect(HOST, dc.port, management(dc)) as client:
        buffer = await client.get(7, ACK_LOG_OBIS, 2)
    return table_rows(buffer)


# -- management logical device -----------------------------------------------------------------


async def test_dc_clock_and_status_word_read_and_clock_set(dc: ConcentratorServer) -> None:
    public = ClientSettings(client_sap=PUBLIC_CLIENT, timeout=10.0)
    async with DlmsClient.connect(HOST, dc.port, public) as client:
        clock = stamp(await client.get(8, CLOCK, 2))
        word = await client.get(1, STATUS_WORD_OBIS, 2)
        serial = await client.get(1, SERIAL, 2)
        with pytest.raises(DlmsError):
            await client.get(7, NODE_TABLE_OBIS, 2)
    assert clock == to_local(NOW, dc.spec.time_zone)
    assert serial.value == dc.spec.serial.encode()
    assert isinstance(word.value, int)
    assert decode_status_word(word.value) == {"B", "O", "E", "G", "C"}
    # The head-end synchronises the DC at every connection.
    wanted = NOW + dt.timedelta(minutes=3)
    async with DlmsClient.connect(HOST, dc.port, management(dc)) as client:
        await client.set(
            8, CLOCK, 2, Data.octet_string(CosemDateTime.from_datetime(wanted).to_bytes())
        )
        assert stamp(await client.get(8, CLOCK, 2)) == wanted
    assert dc.now() == wanted


async def test_status_word_follows_dc_faults() -> None:
    plan = make_plan(phase_missing=1.0)
    async with make_dc(plan) as dc:
        dc.modem_failed = True
        dc.extra_letters.add("L")
        async with DlmsClient.connect(HOST, dc.port, management(dc)) as client:
            word = (await client.get(1, STATUS_WORD_OBIS, 2)).value
    phase_letter = "IJK"["RST".index(plan.concentrators[0].missing_phase or "")]
    assert isinstance(word, int)
    assert decode_status_word(word) == {"B", "O", "G", "C", "U", "L", phase_letter}


async def test_node_table_lists_every_meter(dc: ConcentratorServer) -> None:
    async with DlmsClient.connect(HOST, dc.port, management(dc)) as client:
        buffer = await client.get(7, NODE_TABLE_OBIS, 2)
        first_two = await client.get(
            7, NODE_TABLE_OBIS, 2, EntryDescriptor(1, 2, 1, 2).to_access_selection()
        )
    rows = table_rows(buffer)
    expected = [dc.plan.meter(i) for i in range(METERS)]
    assert [r[0].value for r in rows] == [m.serial.encode() for m in expected]
    assert [r[1].value for r in rows] == [m.node_address for m in expected]
    assert all(r[2].value is True and r[3].value is True for r in rows)
    assert [r[4].value for r in rows] == ["RST" if m.polyphase else m.phase for m in expected]
    assert all(r[6].value is None for r in rows)
    assert [plain(r) for r in items(first_two)] == [
        [m.serial.encode(), m.node_address] for m in expected[:2]
    ]


async def test_collected_load_profile_by_range_has_a_row_per_meter_per_interval(
    dc: ConcentratorServer,
) -> None:
    start = dt.datetime(2026, 4, 10, 10, 0, tzinfo=dt.UTC)
    end = dt.datetime(2026, 4, 10, 11, 0, tzinfo=dt.UTC)
    async with DlmsClient.connect(HOST, dc.port, management(dc)) as client:
        rows = await client.read_profile(COLLECTED_LOAD_PROFILE_OBIS, start, end)
    # Captures at 10:00, 10:15, 10:30, 10:45, 11:00 for each meter (bounds included).
    assert len(rows) == 5 * METERS
    for node in dc.nodes.values():
        mine = [r for r in rows if r[1].value == node.serial.encode()]
        model_rows = dc.model(node.index).load_profile(start - dt.timedelta(seconds=1), end)
        assert [stamp(r[0]) for r in mine] == [m.clock for m in model_rows]
        assert [r[3].value for r in mine] == [m.active_import_wh for m in model_rows]
        assert [r[4].value for r in mine] == [m.active_export_wh for m in model_rows]


async def test_collected_daily_closure_and_status_words(dc: ConcentratorServer) -> None:
    start = dt.datetime(2026, 4, 8, 4, 0, tzinfo=dt.UTC)  # local midnight (UTC-4) of the 8th
    end = dt.datetime(2026, 4, 10, 4, 0, tzinfo=dt.UTC)
    outaged = dc.nodes[nodes(dc)[0]]
    dc.model(outaged.index).power_outage(
        dt.datetime(2026, 4, 8, 10, tzinfo=dt.UTC), dt.datetime(2026, 4, 8, 11, tzinfo=dt.UTC)
    )
    async with DlmsClient.connect(HOST, dc.port, management(dc)) as client:
        daily = await client.read_profile(COLLECTED_DAILY_OBIS, start, end)
        words = await client.read_profile(COLLECTED_STATUS_OBIS, start, end)
        columns = await client.get(7, COLLECTED_DAILY_OBIS, 3)
    # Clock, serial, then the meter's billing registers: per energy the total and T1..T6.
    registers = [(c, tier) for c in (1, 2, 3, 4) for tier in range(7)]
    assert columns == Data.array(
        d.to_data()
        for d in (
            CLOCK_TIME,
            CaptureObjectDefinition(1, Obis(0, 0, 96, 1, 0, 255), 2),
            *(CaptureObjectDefinition(3, Obis(1, 0, c, 8, t, 255), 2) for c, t in registers),
        )
    )
    assert len(daily) == 3 * METERS == len(words)
    times = [stamp(r[0]) for r in daily]
    assert times == sorted(times)
    assert [r[:2] for r in words] == [r[:2] for r in daily]
    pup = [bool(int(str(r[2].value)) & 1) for r in words if r[1].value == outaged.serial.encode()]
    assert pup == [False, True, True]  # closures of the 7th, 8th and 9th
    for row in words:
        node = dc.node_by_serial(bytes(row[1].value).decode())  # type: ignore[arg-type]
        assert node is not None
        captured = stamp(row[0])
        status = dc.model(node.index).status_words(captured)
        assert [c.value for c in row[2:6]] == [
            status.normal1,
            status.normal2,
            status.extended1,
            status.extended2,
        ]
    for node in dc.nodes.values():
        mine = [r for r in daily if r[1].value == node.serial.encode()]
        model = dc.model(node.index)
        for row, day in zip(
            mine, (dt.date(2026, 4, 7), dt.date(2026, 4, 8), dt.date(2026, 4, 9)), strict=True
        ):
            billing = model.billing_row(day)
            assert billing is not None
            assert stamp(row[0]) == billing.clock
            sets = billing.registers
            expected = [
                value
                for one in (
                    sets.active_import,
                    sets.active_export,
                    sets.reactive_import,
                    sets.reactive_export,
                )
                for value in (one.total, *one.tiers)
            ]
            assert [c.value for c in row[2:]] == expected
            assert sum(int(str(c.value)) for c in row[3:9]) == row[2].value


async def test_unreachable_meters_have_no_collected_rows(dc: ConcentratorServer) -> None:
    silent = nodes(dc)[0]
    dc.nodes[silent].reachable = False
    start, end = NOW - dt.timedelta(hours=1), NOW
    async with DlmsClient.connect(HOST, dc.port, management(dc)) as client:
        rows = await client.read_profile(COLLECTED_LOAD_PROFILE_OBIS, start, end)
        table = await client.get(7, NODE_TABLE_OBIS, 2)
    assert rows
    assert dc.nodes[silent].serial.encode() not in {r[1].value for r in rows}
    reachable = {r[1].value: r[3].value for r in table_rows(table)}
    assert reachable[silent] is False


# -- gateway ------------------------------------------------------------------------------------


async def test_end_to_end_meter_association_through_the_gateway(dc: ConcentratorServer) -> None:
    node_address = nodes(dc)[1]
    node = dc.nodes[node_address]
    async with DlmsClient.connect(HOST, dc.port, meter_settings(dc, node_address)) as client:
        serial = await client.get(1, SERIAL, 2)
        total = await client.get(3, ACTIVE_IMPORT_TOTAL, 2)
        tiers = await client.get_many([(3, Obis(1, 0, 1, 8, t, 255), 2) for t in range(1, 7)])
    assert serial.value == node.serial.encode()
    registers = dc.model(node.index).registers(NOW)
    assert total.value == registers.active_import.total
    assert [t.value for t in tiers if isinstance(t, Data)] == list(registers.active_import.tiers)
    assert node.last_contact == to_local(NOW, dc.spec.time_zone)
    exchanges = [e for e in dc.link.history if e.node_address == node_address]
    assert len(exchanges) >= 5  # AARQ, HLS pass 3, GET, GET with-list, RLRQ


async def test_meter_keys_are_the_meters_not_the_dcs(dc: ConcentratorServer) -> None:
    node_address = nodes(dc)[0]
    other = dc.plan.meter(dc.nodes[nodes(dc)[1]].index)
    wrong = dataclasses.replace(
        meter_settings(dc, node_address),
        encryption_key=other.encryption_key,
        authentication_key=other.authentication_key,
    )
    with pytest.raises(AssociationRejected):
        async with DlmsClient.connect(HOST, dc.port, wrong):
            pass
    rows = await ack_log(dc)
    assert parse_error(str(rows[-1][6].value)).key is ErrorKey.WRONG_KEY


@pytest.mark.parametrize(
    ("fault", "code", "key", "transient"),
    [
        ("unreachable", "TB_ACK_21", ErrorKey.NODE_NOT_REACHABLE, True),
        ("repeater", "TB_ACK_4", ErrorKey.REPEATER_FAILURE, True),
        ("phase", "TB_ACK_50", ErrorKey.PHASE_MISSING, True),
        ("procedure", "", ErrorKey.TB_PROCEDURE_NOT_ENABLED, False),
        ("modem", "", ErrorKey.MODEM_PLC_FAILURE, True),
        ("decommissioned", "", ErrorKey.CE_NOT_IN_TABLE, False),
        ("unknown node", "", ErrorKey.CE_NOT_IN_TABLE, False),
    ],
)
async def test_each_fault_produces_its_documented_code(
    fault: str, code: str, key: ErrorKey, transient: bool
) -> None:
    plan = make_plan(phase_missing=1.0 if fault == "phase" else 0.0)
    async with make_dc(plan) as dc:
        node_address = nodes(dc)[2]
        node = dc.nodes[node_address]
        if fault == "unreachable":
            node.reachable = False
        elif fault == "repeater":
            node.repeater_failed, node.repeater_level = True, 2
        elif fault == "phase":
            missing = plan.concentrators[0].missing_phase
            node.polyphase, node.phase = False, missing or "R"
        elif fault == "procedure":
            dc.procedure_enabled = False
        elif fault == "modem":
            dc.modem_failed = True
        elif fault == "decommissioned":
            node.commissioned = False
        settings = meter_settings(dc, node_address)
        if fault == "unknown node":
            settings = dataclasses.replace(settings, server_logical_address=GATEWAY_BASE + 999)
        with pytest.raises(AssociationRejected) as refused:
            async with DlmsClient.connect(HOST, dc.port, settings):
                pass
        dc.procedure_enabled, dc.modem_failed = True, False
        rows = await ack_log(dc)
    assert refused.value.result == (2 if transient else 1)
    assert len(rows) == 1
    row = rows[0]
    expected_node = 999 if fault == "unknown node" else node_address
    assert row[1].value == expected_node
    assert row[3].value == "GATEWAY_ASSOCIATE"
    if fault == "repeater":
        assert row[4].value == "TB_ACK_41"
        assert row[5].value == "REPEATER 2 FAILURE"
    else:
        assert row[4].value == code
    failure = parse_error(str(row[6].value))
    assert failure.key is key
    assert failure.operation == ("GATEWAY_ASSOCIATE" if code else None)
    assert stamp(row[0]) == to_local(NOW, dc.spec.time_zone)


async def test_plan_faults_reach_the_node_table_and_the_gateway() -> None:
    async with make_dc(make_plan(repeater=1.0)) as dc:
        levels = {n.repeater_level for n in dc.nodes.values()}
        assert all(1 <= level <= 3 for level in levels)
        node_address = nodes(dc)[0]
        with pytest.raises(AssociationRejected):
            async with DlmsClient.connect(HOST, dc.port, meter_settings(dc, node_address)):
                pass
        row = (await ack_log(dc))[0]
    assert row[4].value == f"TB_ACK_{39 + dc.nodes[node_address].repeater_level}"


async def test_wrong_key_meter_is_refused_and_logged() -> None:
    async with make_dc(make_plan(wrong_key=1.0)) as dc:
        node_address = nodes(dc)[0]
        with pytest.raises(AssociationRejected) as refused:
            async with DlmsClient.connect(HOST, dc.port, meter_settings(dc, node_address)):
                pass
        rows = await ack_log(dc)
    assert refused.value.result == 1
    assert rows[-1][5].value == "Wrong Key"
    assert parse_error(str(rows[-1][6].value)).key is ErrorKey.WRONG_KEY


async def test_busy_medium_answers_response_not_present_yet() -> None:
    plan = make_plan()
    slow = LinkSettings(latency_s=0.3, bytes_per_s=1e9, max_wait_s=0.05)
    async with make_dc(plan, link=slow) as dc:
        first, second = nodes(dc)[:2]

        async def hold_medium() -> None:
            await dc.link.exchange(first, b"x", lambda _: [b"y"])

        holder = asyncio.create_task(hold_medium())
        await asyncio.sleep(0.05)
        with pytest.raises(AssociationRejected) as refused:
            async with DlmsClient.connect(HOST, dc.port, meter_settings(dc, second)):
                pass
        await holder
        rows = await ack_log(dc)
    assert refused.value.result == 2
    assert parse_error(str(rows[-1][6].value)).key is ErrorKey.RESPONSE_NOT_PRESENT_YET


async def test_dc_down_refuses_connections() -> None:
    async with make_dc(make_plan(down=1.0)) as dc:
        assert dc.spec.down
        assert not dc.running
        with pytest.raises(ConnectionRefusedError):
            async with DlmsClient.connect(HOST, dc.port, management(dc)):
                pass


async def test_plc_medium_serialises_exchanges_of_concurrent_head_end_sessions() -> None:
    plan = make_plan()
    async with make_dc(plan, link=LinkSettings(latency_s=0.01, bytes_per_s=20000.0)) as dc:

        async def read(node_address: int) -> object:
            async with DlmsClient.connect(HOST, dc.port, meter_settings(dc, node_address)) as c:
                return (await c.get(3, ACTIVE_IMPORT_TOTAL, 2)).value

        values = await asyncio.gather(*(read(n) for n in nodes(dc)[:3]))
    assert all(isinstance(v, int) for v in values)
    history = list(dc.link.history)
    assert len({e.node_address for e in history}) == 3
    for before, after in itertools.pairwise(history):
        assert after.started >= before.finished
    # The sessions really interleaved on the medium, one exchange at a time.
    order = [e.node_address for e in history]
    assert order != sorted(order)


# -- commissioning ------------------------------------------------------------------------------


async def test_commissioning_and_decommissioning_change_the_node_table(
    dc: ConcentratorServer,
) -> None:
    node = dc.nodes[nodes(dc)[3]]
    serial = Data.octet_string(node.serial.encode())
    async with DlmsClient.connect(HOST, dc.port, management(dc)) as client:
        done = await client.action(NODE_MANAGEMENT_CLASS, NODE_MANAGEMENT_OBIS, 2, serial)
        after_decommission = await client.get(7, NODE_TABLE_OBIS, 2)
        again = await client.action(NODE_MANAGEMENT_CLASS, NODE_MANAGEMENT_OBIS, 2, serial)
        back = await client.action(NODE_MANAGEMENT_CLASS, NODE_MANAGEMENT_OBIS, 1, serial)
        after_commission = await client.get(7, NODE_TABLE_OBIS, 2)

    def commissioned(table: Data) -> bool:
        for row in table_rows(table):
            if row[0].value == node.serial.encode():
                return bool(row[2].value)
        raise AssertionError("node missing from the table")

    assert plain(done) == [True, "Meter decommissioned"]
    assert commissioned(after_decommission) is False
    assert plain(again) == [False, "CE not present in the table"]
    assert plain(back) == [True, "Meter commissioned"]
    assert commissioned(after_commission) is True


@pytest.mark.parametrize(
    ("fault", "text"),
    [
        ("unreachable", "Meter not commissioned because not reachable"),
        ("wrong key", "Meter not commissioned for wrong keys"),
    ],
)
async def test_commissioning_failures_use_the_catalog_texts(fault: str, text: str) -> None:
    async with make_dc(make_plan(wrong_key=1.0 if fault == "wrong key" else 0.0)) as dc:
        node = dc.nodes[nodes(dc)[0]]
        node.commissioned = False
        node.reachable = fault != "unreachable"
        async with DlmsClient.connect(HOST, dc.port, management(dc)) as client:
            result = await client.action(
                NODE_MANAGEMENT_CLASS,
                NODE_MANAGEMENT_OBIS,
                1,
                Data.octet_string(node.serial.encode()),
            )
    assert plain(result) == [False, text]
    assert node.commissioned is False


async def test_procedure_switch_is_written_by_the_management_client(
    dc: ConcentratorServer,
) -> None:
    dc.procedure_enabled = False
    async with DlmsClient.connect(HOST, dc.port, management(dc)) as client:
        await client.set(NODE_MANAGEMENT_CLASS, NODE_MANAGEMENT_OBIS, 2, Data.boolean(True))
    assert dc.procedure_enabled is True
    public = ClientSettings(client_sap=PUBLIC_CLIENT, timeout=10.0)
    async with DlmsClient.connect(HOST, dc.port, public) as client:
        with pytest.raises((AccessDenied, DlmsError)):
            await client.set(NODE_MANAGEMENT_CLASS, NODE_MANAGEMENT_OBIS, 2, Data.boolean(False))
    assert dc.procedure_enabled is True


# -- spontaneous messages -----------------------------------------------------------------------


class Listener:
    """A head-end's spontaneous-message port: collects every TCP message."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[bytes] = asyncio.Queue()
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Listener:
        self.server = await asyncio.start_server(self._accept, HOST, 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def port(self) -> int:
        assert self.server is not None
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.messages.put_nowait(await reader.read())
        writer.close()

    async def next(self) -> bytes:
        return await asyncio.wait_for(self.messages.get(), 5.0)


async def test_power_off_and_on_frames_reach_the_head_end() -> None:
    async with Listener() as listener:
        dc = make_dc(make_plan(), head_end=HeadEndAddress(HOST, listener.port))
        async with dc:
            port = dc.port
            await dc.power_off()
            off = decode_power_frame(await listener.next())
            with pytest.raises(ConnectionRefusedError):
                async with DlmsClient.connect(HOST, port, management(dc)):
                    pass
            await dc.power_on()
            on = decode_power_frame(await listener.next())
            async with DlmsClient.connect(HOST, dc.port, management(dc)) as client:
                word = (await client.get(1, STATUS_WORD_OBIS, 2)).value
    local = to_local(NOW, dc.spec.time_zone).replace(tzinfo=None)
    assert (off.event, off.serial, off.local_time) == (PowerEvent.OFF, dc.spec.serial, local)
    assert (on.event, on.serial, on.local_time) == (PowerEvent.ON, dc.spec.serial, local)
    assert on.sequence == off.sequence + 1
    assert dc.port == port
    assert isinstance(word, int)
    assert "A" in decode_status_word(word)


async def test_power_frame_over_udp() -> None:
    loop = asyncio.get_running_loop()
    received: asyncio.Queue[bytes] = asyncio.Queue()

    class Collect(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            received.put_nowait(data)

    transport, _ = await loop.create_datagram_endpoint(Collect, local_addr=(HOST, 0))
    try:
        udp_port = transport.get_extra_info("sockname")[1]
        dc = make_dc(make_plan(), head_end=HeadEndAddress(HOST, udp_port, "udp"))
        async with dc:
            await dc.power_off()
        frame = decode_power_frame(await asyncio.wait_for(received.get(), 5.0))
    finally:
        transport.close()
    assert frame.event is PowerEvent.OFF


async def test_meter_alarm_is_pushed_once_as_a_data_notification() -> None:
    plan = make_plan()
    async with Listener() as listener:
        dc = make_dc(plan, head_end=HeadEndAddress(HOST, listener.port))
        async with dc:
            node = dc.nodes[nodes(dc)[0]]
            model = dc.model(node.index)
            model.power_outage(NOW - dt.timedelta(hours=2), NOW - dt.timedelta(hours=1))
            pushed = await dc.scan_alarms()
            message = await listener.next()
            assert await dc.scan_alarms() == []
    assert [n.node_address for n, _ in pushed] == [node.node_address]
    frames = WrapperDecoder().feed(message)
    assert len(frames) == 1
    assert frames[0].source_wport == gateway_address(node.node_address)
    notification = DataNotification.from_bytes(frames[0].payload)
    body = plain(notification.body)
    assert body[0] == node.serial.encode()
    assert body[1] == node.node_address
    assert isinstance(body[2], int)
    assert body[2] & 1  # PUP: the meter's last gasp


async def test_one_scan_relays_every_new_alarm_over_one_connection() -> None:
    plan = make_plan()
    async with Listener() as listener:
        dc = make_dc(plan, head_end=HeadEndAddress(HOST, listener.port))
        async with dc:
            for node in dc.nodes.values():
                dc.model(node.index).power_outage(
                    NOW - dt.timedelta(hours=2), NOW - dt.timedelta(hours=1)
                )
            pushed = await dc.scan_alarms()
            message = await listener.next()
            assert listener.messages.empty()  # one connection carried them all
    frames = WrapperDecoder().feed(message)
    assert len(pushed) == len(dc.nodes) > 1
    assert [frame.source_wport for frame in frames] == [
        gateway_address(node.node_address) for node, _ in pushed
    ]
    bodies = [plain(DataNotification.from_bytes(frame.payload).body) for frame in frames]
    assert [body[0] for body in bodies] == [node.serial.encode() for node, _ in pushed]
    assert all(body[2] & 1 for body in bodies)  # PUP on every one


async def test_node_lost_mid_session_gets_an_exception_response_and_a_logged_code(
    dc: ConcentratorServer,
) -> None:
    node_address = nodes(dc)[0]

    async def read_while_the_node_is_lost() -> None:
        async with DlmsClient.connect(HOST, dc.port, meter_settings(dc, node_address)) as client:
            await client.get(1, SERIAL, 2)
            dc.nodes[node_address].reachable = False
            await client.get(1, SERIAL, 2)

    with pytest.raises(DlmsError):
        await read_while_the_node_is_lost()
    rows = await ack_log(dc)
    assert [(r[3].value, r[4].value) for r in rows] == [("GATEWAY_RELAY", "TB_ACK_21")]
    assert parse_error(str(rows[0][6].value)).key is ErrorKey.NODE_NOT_REACHABLE


FLEET_HOST = "127.78.0.1"  # its own loopback address: no client socket of another test uses it


def free_ports(host: str, count: int) -> int:
    """The first of ``count`` consecutive ports free on ``host`` (the fleet numbers its DCs
    from one port up); a run that is not wholly free is skipped."""
    while True:
        with contextlib.ExitStack() as stack:
            first = stack.enter_context(socket.socket())
            first.bind((host, 0))
            port: int = first.getsockname()[1]
            try:
                for offset in range(1, count):
                    stack.enter_context(socket.socket()).bind((host, port + offset))
            except OSError:
                continue
            return port


async def test_fleet_runner_serves_every_concentrator_through_the_hook() -> None:
    base = default_fleet().sized(2, 3, 0)
    fleet = dataclasses.replace(
        base,
        anomalies=NO_ANOMALIES,
        faults=FaultRates(0.0, 0.0, 0.0, 0.0, 0.0),
        concentrators=dataclasses.replace(
            base.concentrators, host=FLEET_HOST, first_port=free_ports(FLEET_HOST, 2)
        ),
    )
    plan = fleet.build(NOW)
    clock = SimClock(plan.epoch, 1.0, 1, wall=Wall(NOW))
    created: list[ConcentratorFleet] = []

    def hook(plan: FleetPlan, meters: MeterDevices, clock: SimClock) -> ConcentratorFleet:
        created.append(ConcentratorFleet(plan, meters, clock, idle_timeout=10.0))
        return created[-1]

    async with FleetRunner(plan, clock, concentrators=hook) as runner:
        dcs = created[0].concentrators
        assert [dc.spec.name for dc in dcs] == [c.name for c in plan.concentrators]
        assert [dc.port for dc in dcs] == [c.port for c in plan.concentrators]
        assert dcs[0].meters is runner.meters
        assert dcs[1].meters is runner.meters
        for dc in dcs:
            assert sorted(n.index for n in dc.nodes.values()) == [
                i for i in range(len(plan)) if plan.meter(i).concentrator == dc.spec.index
            ]
            async with DlmsClient.connect(FLEET_HOST, dc.port, management(dc)) as client:
                assert (await client.get(1, SERIAL, 2)).value == dc.spec.serial.encode()
    assert len(created) == 1
    assert all(not dc.running for dc in dcs)


async def test_alarm_scan_runs_on_its_own_interval() -> None:
    async with Listener() as listener:
        plan = make_plan()
        clock = SimClock(plan.epoch, 1.0, plan.fleet.time.history_days, wall=Wall(NOW))
        dc = ConcentratorServer(
            plan,
            plan.concentrators[0],
            clock,
            host=HOST,
            port=0,
            head_end=HeadEndAddress(HOST, listener.port),
            alarm_interval_s=0.01,
        )
        node = dc.nodes[nodes(dc)[1]]
        dc.model(node.index).set_clock(NOW - dt.timedelta(hours=1), NOW)  # 1 h fast: ORD
        async with dc:
            message = await listener.next()
    notification = DataNotification.from_bytes(WrapperDecoder().feed(message)[0].payload)
    body = plain(notification.body)
    assert body[1] == node.node_address
    assert isinstance(body[2], int)
    assert body[2] & 2  # ORD: clock not aligned


async def test_meter_own_refusals_travel_unchanged_and_are_not_dc_codes(
    dc: ConcentratorServer,
) -> None:
    node_address = nodes(dc)[0]
    index = dc.nodes[node_address].index
    lls = ClientSettings(
        client_sap=1,
        server_logical_address=gateway_address(node_address),
        mechanism=AuthenticationMechanism.LOW,
        password=meter_lls_password(dc.plan, index),
        timeout=10.0,
    )
    async with DlmsClient.connect(HOST, dc.port, lls) as client:
        assert (await client.get(1, SERIAL, 2)).value == dc.nodes[node_address].serial.encode()
    with pytest.raises(AssociationRejected) as refused:
        async with DlmsClient.connect(HOST, dc.port, dataclasses.replace(lls, password=b"0000")):
            pass
    assert (refused.value.result, refused.value.diagnostic) == (1, 13)
    assert await ack_log(dc) == []


@pytest.mark.parametrize(
    "garbage",
    [
        b"\xff" * 40,
        WrapperFrame(1, 16, 7, b"\x60\x00").to_bytes(),  # no logical device 7
        WrapperFrame(1, 48, GATEWAY_BASE + 2, b"\xc0\x01").to_bytes(),  # truncated GET, no AARQ
        WrapperFrame(1, 48, GATEWAY_BASE + 2, b"").to_bytes(),
        WrapperFrame(1, 1, 1, b"\x60\x05\xa1\x03\x06\x01").to_bytes(),  # truncated AARQ
    ],
)
async def test_garbage_drops_only_that_connection(dc: ConcentratorServer, garbage: bytes) -> None:
    reader, writer = await asyncio.open_connection(HOST, dc.port)
    writer.write(garbage)
    await writer.drain()
    # read() returns at end of stream: the DC closed this connection (else a timeout fails).
    await asyncio.wait_for(reader.read(), 5.0)
    assert reader.at_eof()
    writer.close()
    async with DlmsClient.connect(HOST, dc.port, management(dc)) as client:
        assert (await client.get(1, SERIAL, 2)).value == dc.spec.serial.encode()
    async with DlmsClient.connect(HOST, dc.port, meter_settings(dc, nodes(dc)[0])) as client:
        assert (await client.get(1, SERIAL, 2)).value == dc.nodes[nodes(dc)[0]].serial.encode()


# -- the DC's own record of its associations ------------------------------------------------------


async def test_record_counts_concurrent_associations_and_their_spans(
    dc: ConcentratorServer,
) -> None:
    first, second = nodes(dc)[:2]
    async with DlmsClient.connect(HOST, dc.port, meter_settings(dc, first)) as one:
        await one.get(1, SERIAL, 2)
        assert (dc.record.active, dc.record.peak) == (1, 1)
        async with DlmsClient.connect(HOST, dc.port, management(dc)) as other:
            await other.get(1, STATUS_WORD_OBIS, 2)
            assert (dc.record.active, dc.record.peak) == (2, 2)
        await one.get(1, SERIAL, 2)
    async with DlmsClient.connect(HOST, dc.port, meter_settings(dc, second)) as alone:
        await alone.get(1, SERIAL, 2)
    assert (dc.record.active, dc.record.peak, dc.record.opened) == (0, 2, 3)
    spans = sorted(dc.record.spans, key=lambda span: span.number)
    assert [span.address for span in spans] == [
        gateway_address(first),
        1,
        gateway_address(second),
    ]
    assert all(span.opened <= span.closed for span in spans)
    assert spans[0].opened < spans[1].opened < spans[1].closed < spans[0].closed
    assert spans[0].closed <= spans[2].opened  # released before the next one started
    assert dc.record.overlapping() == 2


async def test_sequential_associations_never_overlap_in_the_record(
    dc: ConcentratorServer,
) -> None:
    for node_address in nodes(dc):
        async with DlmsClient.connect(HOST, dc.port, meter_settings(dc, node_address)) as c:
            await c.get(1, SERIAL, 2)
    assert (dc.record.peak, dc.record.opened, dc.record.overlapping()) == (1, METERS, 1)


async def test_one_connection_carries_successive_associations(dc: ConcentratorServer) -> None:
    first, second = nodes(dc)[:2]
    link = await Link.open(HOST, dc.port, 5.0)
    try:
        for settings in (meter_settings(dc, first), management(dc), meter_settings(dc, second)):
            async with DlmsClient.over(link, settings) as client:
                await client.get(1, SERIAL, 2)
                assert dc.record.active == 1
            assert link.idle  # released: the DC keeps the connection open for the next one
    finally:
        link.close()
    spans = sorted(dc.record.spans, key=lambda span: span.number)
    assert [span.address for span in spans] == [
        gateway_address(first),
        1,
        gateway_address(second),
    ]
    assert all(a.closed <= b.opened for a, b in itertools.pairwise(spans))
    assert (dc.record.active, dc.record.peak, dc.record.opened) == (0, 1, 3)
    assert dc.errors == []


async def test_an_idle_connection_is_closed_quietly_at_the_idle_timeout() -> None:
    async with make_dc(make_plan()) as dc:
        dc.idle_timeout = 0.1
        link = await Link.open(HOST, dc.port, 5.0)
        async with DlmsClient.over(link, management(dc)) as client:
            await client.get(1, SERIAL, 2)
        await asyncio.sleep(0.3)
        assert not link.idle  # the DC closed it: no association was open on it
        assert dc.errors == []


async def test_the_idle_timeout_counts_from_the_last_request_not_from_the_connection() -> None:
    async with make_dc(make_plan()) as dc:
        dc.idle_timeout = 0.2
        link = await Link.open(HOST, dc.port, 5.0)
        try:
            async with DlmsClient.over(link, management(dc)) as client:
                for _ in range(5):  # 0.6 s in all, never 0.2 s silent
                    await asyncio.sleep(0.12)
                    await client.get(1, SERIAL, 2)
            assert link.idle
        finally:
            link.close()
        assert dc.errors == []


async def test_a_client_silent_inside_an_association_is_dropped_at_the_idle_timeout() -> None:
    async with make_dc(make_plan()) as dc:
        dc.idle_timeout = 0.1
        settings = management(dc)
        connection = ClientConnection(settings)
        connection.associate()
        reader, writer = await asyncio.open_connection(HOST, dc.port)
        try:
            for apdu in connection.data_to_send():
                writer.write(WrapperFrame(1, settings.client_sap, 1, apdu).to_bytes())
            answer = WrapperDecoder().feed(await asyncio.wait_for(reader.read(4096), 5))
            assert [frame.payload[0] for frame in answer] == [0x61]  # the AARE
            assert dc.record.active == 1
            assert await asyncio.wait_for(reader.read(10), 5) == b""  # then closed
        finally:
            writer.close()
        assert dc.record.active == 0
        assert [type(error) for error in dc.errors] == [DlmsTimeout]


async def test_record_keeps_every_breaker_access_with_the_state_around_it(
    dc: ConcentratorServer,
) -> None:
    node_address = nodes(dc)[0]
    serial = dc.nodes[node_address].serial
    async with DlmsClient.connect(HOST, dc.port, meter_settings(dc, node_address)) as c:
        await c.get(70, DISCONNECT_CONTROL_OBIS, 3)
        await c.action(70, DISCONNECT_CONTROL_OBIS, 1, Data.integer(0))
        await c.action(70, DISCONNECT_CONTROL_OBIS, 1, Data.integer(0))  # blind: no-op
        await c.get(1, SERIAL, 2)  # not the breaker: not recorded
    async with DlmsClient.connect(HOST, dc.port, meter_settings(dc, node_address)) as c:
        await c.action(70, DISCONNECT_CONTROL_OBIS, 2, Data.integer(0))
    accesses = [(a.session, a.serial, a.operation, a.before, a.after) for a in dc.record.breaker]
    assert accesses == [
        (1, serial, "read", 1, 1),
        (1, serial, "disconnect", 1, 0),
        (1, serial, "disconnect", 0, 0),
        (2, serial, "reconnect", 0, 1),
    ]
    assert dc.model(dc.nodes[node_address].index).breaker_closed(NOW)
