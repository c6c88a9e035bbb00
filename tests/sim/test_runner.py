"""The fleet runner serves point-to-point meters on their own loopback addresses."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import dataclasses
import datetime as dt
import resource
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from smmc.dlms.apdu import AuthenticationMechanism, DataNotification
from smmc.dlms.axdr import Data
from smmc.dlms.client import ClientSettings, DlmsClient, SecurityPolicy
from smmc.dlms.framing.wrapper import WrapperDecoder
from smmc.dlms.obis import Obis
from smmc.sim.anomalies import LABEL_COLUMNS
from smmc.sim.clock import SimClock
from smmc.sim.concentrator import PUBLIC_CLIENT
from smmc.sim.fleet import Fleet, FleetPlan, default_fleet
from smmc.sim.meter_device import CLOCK, HEAD_END_SAP, PUSH_SETUP, MeterDevices, alarm_bits
from smmc.sim.runner import (
    FleetRunner,
    RunnerError,
    parse_destination,
    prepare,
    raise_open_file_limit,
    serve_concentrators,
)

SERIAL = Obis(0, 0, 96, 1, 0, 255)
NOW = dt.datetime(2026, 6, 15, 12, tzinfo=dt.UTC)
FIRST_HOST = "127.77.0.1"


def free_port(host: str = FIRST_HOST) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def small_fleet(port: int, count: int = 3) -> Fleet:
    base = default_fleet().sized(2, 4, count)
    return dataclasses.replace(
        base,
        point_to_point=dataclasses.replace(base.point_to_point, first_host=FIRST_HOST, port=port),
    )


async def read_serial(host: str, port: int) -> bytes:
    async with DlmsClient.connect(host, port, ClientSettings(client_sap=16, timeout=5.0)) as client:
        value = (await client.get(1, SERIAL, 2)).value
    assert isinstance(value, bytes)
    return value


async def test_point_to_point_meters_answer_on_their_own_addresses(tmp_path: Path) -> None:
    port = free_port()
    plan, clock = prepare(small_fleet(port), start=NOW)
    labels = tmp_path / "labels" / "labels.csv"
    runner = FleetRunner(plan, clock, labels=labels)
    async with runner:
        endpoints = runner.endpoints()
        assert [e.kind for e in endpoints] == ["meter"] * 3
        assert [e.host for e in endpoints] == ["127.77.0.1", "127.77.0.2", "127.77.0.3"]
        assert {e.port for e in endpoints} == {port}
        for endpoint, index in zip(endpoints, runner.point_to_point, strict=True):
            assert endpoint.name == plan.meter(index).serial
            assert await read_serial(endpoint.host, endpoint.port) == endpoint.name.encode()
        # Devices of meters behind concentrators are not built until someone asks.
        assert runner.meters.cached == 3
        assert runner.open_file_limit == resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    for endpoint in endpoints:
        with pytest.raises(ConnectionRefusedError):
            await read_serial(endpoint.host, endpoint.port)
    with labels.open(encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert tuple(rows[0]) == LABEL_COLUMNS
    assert len(rows) - 1 == len(list(plan.labels())) > 0


async def test_the_concentrator_hook_runs_while_the_fleet_is_served() -> None:
    calls: list[str] = []
    seen: list[MeterDevices] = []

    @contextlib.asynccontextmanager
    async def concentrators(
        plan: FleetPlan, meters: MeterDevices, clock: SimClock
    ) -> AsyncIterator[None]:
        calls.append("start")
        seen.append(meters)
        yield
        calls.append("stop")

    plan, clock = prepare(small_fleet(free_port(), count=1), start=NOW)
    async with FleetRunner(plan, clock, concentrators=concentrators) as runner:
        assert calls == ["start"]
        assert seen == [runner.meters]
        kinds = [e.kind for e in runner.endpoints()]
        assert kinds == ["concentrator", "concentrator", "meter"]
        assert seen[0].get(3).spec.concentrator == 0
    assert calls == ["start", "stop"]


async def test_concentrators_are_served_on_their_own_endpoints() -> None:
    fleet = small_fleet(free_port(), count=1)
    fleet = dataclasses.replace(
        fleet,
        concentrators=dataclasses.replace(
            fleet.concentrators, host=FIRST_HOST, first_port=free_port()
        ),
    )
    plan, clock = prepare(fleet, start=NOW)
    async with FleetRunner(plan, clock, concentrators=serve_concentrators) as runner:
        dcs = [e for e in runner.endpoints() if e.kind == "concentrator"]
        assert [(e.name, e.port) for e in dcs] == [(c.name, c.port) for c in plan.concentrators]
        for endpoint in dcs:
            settings = ClientSettings(client_sap=PUBLIC_CLIENT, timeout=5.0)
            async with DlmsClient.connect(endpoint.host, endpoint.port, settings) as client:
                assert (await client.get(8, CLOCK, 2)).value
    for endpoint in dcs:
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection(endpoint.host, endpoint.port)


async def test_an_address_in_use_fails_the_start_and_frees_the_others() -> None:
    port = free_port()
    blocker = socket.socket()
    blocker.bind(("127.77.0.2", port))
    blocker.listen()
    try:
        plan, clock = prepare(small_fleet(port), start=NOW)
        with pytest.raises(RunnerError, match=r"127\.77\.0\.2"):
            async with FleetRunner(plan, clock):
                pass
        with pytest.raises(ConnectionRefusedError):
            await read_serial("127.77.0.1", port)
    finally:
        blocker.close()


def test_prepare_applies_time_overrides() -> None:
    fleet = small_fleet(4059)
    plan, clock = prepare(fleet, accelerate=60.0, history_days=3, start=NOW)
    assert clock.factor == 60.0
    assert plan.epoch == NOW
    assert plan.history_start == NOW - dt.timedelta(days=3) == clock.history_start
    plan, clock = prepare(fleet, start=NOW)
    assert clock.factor == 1.0
    assert plan.history_start == NOW - dt.timedelta(days=fleet.time.history_days)


def test_open_file_limit_is_raised_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 256), hard))
    try:
        assert raise_open_file_limit() == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_push_destinations_parse() -> None:
    assert parse_destination(b"127.0.0.1:4059") == ("127.0.0.1", 4059)
    for bad in (b"", b"127.0.0.1", b"host:0", b"host:99999", b":4059"):
        with pytest.raises(ValueError, match="host:port"):
            parse_destination(bad)


async def test_a_push_reaches_the_destination_the_head_end_set() -> None:
    received: asyncio.Queue[bytes] = asyncio.Queue()

    async def head_end(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.put_nowait(await reader.read(4096))
        writer.close()

    listener = await asyncio.start_server(head_end, "127.0.0.1", 0)
    listen_port = listener.sockets[0].getsockname()[1]
    plan, clock = prepare(small_fleet(free_port(), count=1), start=NOW)
    async with listener, FleetRunner(plan, clock) as runner:
        index = runner.point_to_point[0]
        spec = plan.meter(index)
        settings = ClientSettings(
            client_sap=HEAD_END_SAP,
            mechanism=AuthenticationMechanism.HIGH_GMAC,
            encryption_key=spec.device_keys[0],
            authentication_key=spec.device_keys[1],
            system_title=b"SMMC\x00\x00\x00\x01",
            security=SecurityPolicy(authenticated=True, encrypted=True),
        )
        assert spec.host is not None
        assert spec.port is not None
        async with DlmsClient.connect(spec.host, spec.port, settings) as client:
            destination = f"127.0.0.1:{listen_port}".encode()
            await client.set(
                40,
                PUSH_SETUP,
                3,
                Data.structure((Data.enum(0), Data.octet_string(destination), Data.enum(0))),
            )
            await client.action(40, PUSH_SETUP, 1, Data.integer(0))
        payload = await asyncio.wait_for(received.get(), 5.0)
        expected_alarms = alarm_bits(runner.meters.model(index).alarm_register(clock.now()))
    (frame,) = WrapperDecoder().feed(payload)
    notification = DataNotification.from_bytes(frame.payload)
    body = notification.body.value
    assert isinstance(body, tuple)
    assert [item.value for item in body] == [
        PUSH_SETUP.to_bytes(),
        f"NXM{index:013d}".encode(),
        expected_alarms,
    ]
