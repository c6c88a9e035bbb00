"""Our own DlmsClient reads a simulated meter over real TCP; values must be the model's."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
from collections.abc import AsyncIterator

import pytest

from smmc.dlms.apdu import AuthenticationMechanism
from smmc.dlms.axdr import Data
from smmc.dlms.client import ClientSettings, DlmsClient, SecurityPolicy
from smmc.dlms.cosem.register import Unit
from smmc.dlms.cosem_time import CosemDateTime
from smmc.dlms.errors import AccessDenied, AssociationRejected, DlmsError
from smmc.dlms.obis import Obis
from smmc.dlms.server import DlmsServer
from smmc.domain.time import interval_count, local_day_bounds, to_local
from smmc.sim.anomalies import AnomalyRates
from smmc.sim.clock import SimClock
from smmc.sim.fleet import ClockDrift, FaultRates, FleetPlan, default_fleet
from smmc.sim.meter_device import (
    BILLING,
    CLOCK,
    DISCONNECT,
    FIRMWARE_VERSION,
    HEAD_END_SAP,
    IMAGE_TRANSFER,
    LOAD_PROFILE,
    MANAGEMENT_SAP,
    MEASURAND_PROFILE,
    MeterDevice,
    MeterDevices,
    build_meter_device,
    meter_lls_password,
    meter_system_title,
)

HOST = "127.0.0.1"
TZ = "America/Santiago"
ACTIVE_IMPORT = [Obis(1, 0, 1, 8, tier, 255) for tier in range(7)]
NO_ANOMALIES = AnomalyRates(*(0.0,) * 9)


class Wall:
    """A wall clock the test moves by hand, so simulated time is exact."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now


def make_plan(
    now: dt.datetime, *, drift_ppm: float = 0.0, wrong_key: float = 0.0, history_days: int = 7
) -> FleetPlan:
    base = default_fleet().sized(0, 0, 3)
    fleet = dataclasses.replace(
        base,
        anomalies=NO_ANOMALIES,
        faults=FaultRates(0.0, 0.0, 0.0, wrong_key, 0.0),
        clock_drift=ClockDrift(mean_ppm=drift_ppm, sd_ppm=0.0, tolerance_s=60.0),
        time=dataclasses.replace(base.time, history_days=history_days),
    )
    return fleet.build(now)


class Served:
    def __init__(self, meter: MeterDevice, server: DlmsServer, wall: Wall) -> None:
        self.meter = meter
        self.server = server
        self.wall = wall


async def serve(plan: FleetPlan, index: int, wall: Wall) -> AsyncIterator[Served]:
    clock = SimClock(plan.epoch, 1.0, plan.fleet.time.history_days, wall=wall)
    meter = build_meter_device(plan, index, clock)
    async with DlmsServer({1: meter.served}, host=HOST, port=0, idle_timeout=10.0) as server:
        yield Served(meter, server, wall)


NOW = dt.datetime(2026, 4, 10, 15, 7, 30, tzinfo=dt.UTC)


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    plan = make_plan(NOW)
    async for running in serve(plan, 1, Wall(NOW)):
        yield running


def stamp(value: Data) -> dt.datetime:
    raw = value.value
    assert isinstance(raw, bytes)
    return CosemDateTime.from_bytes(raw).to_datetime()


async def test_clock_and_registers_equal_the_model(served: Served) -> None:
    meter = served.meter
    plan_meter = meter.spec.index
    assert plan_meter == 1
    async with DlmsClient.connect(HOST, served.server.port, head_end_settings(served)) as client:
        clock = stamp(await client.get(8, CLOCK, 2))
        values = await client.get_many([(3, obis, 2) for obis in ACTIVE_IMPORT])
        scalers = await client.get_many([(3, obis, 3) for obis in ACTIVE_IMPORT])
        export_total = await client.get(3, Obis(1, 0, 2, 8, 0, 255), 2)
        reactive_t3 = await client.get(3, Obis(1, 0, 3, 8, 3, 255), 2)
        reactive_unit = await client.get(3, Obis(1, 0, 3, 8, 3, 255), 3)
    expected_clock = meter.model.meter_time(NOW)
    assert abs((clock - expected_clock).total_seconds()) < 0.01
    assert clock.utcoffset() == to_local(NOW, TZ).utcoffset()
    registers = meter.model.registers(NOW)
    totals = [registers.active_import.total, *registers.active_import.tiers]
    assert [v.value for v in values if isinstance(v, Data)] == totals
    assert sum(totals[1:]) == totals[0] > 0
    for scaler_unit in scalers:
        assert isinstance(scaler_unit, Data)
        assert [item.value for item in scaler_unit.value] == [0, Unit.WATT_HOUR]  # type: ignore[union-attr]
    assert export_total.value == registers.active_export.total
    assert reactive_t3.value == registers.reactive_import.tiers[2]
    assert [item.value for item in reactive_unit.value] == [0, Unit.VAR_HOUR]  # type: ignore[union-attr]


def head_end_settings(served: Served) -> ClientSettings:
    spec = served.meter.spec
    encryption_key, authentication_key = spec.keys
    return ClientSettings(
        client_sap=HEAD_END_SAP,
        mechanism=AuthenticationMechanism.HIGH_GMAC,
        encryption_key=encryption_key,
        authentication_key=authentication_key,
        system_title=b"SMMC\x00\x00\x00\x01",
        security=SecurityPolicy(authenticated=True, encrypted=True),
        timeout=10.0,
    )


@pytest.mark.parametrize(
    ("now", "day", "rows"),
    [
        # Chile leaves DST at 24:00 on Saturday 4 April 2026: a 25-hour day.
        (dt.datetime(2026, 4, 8, 12, tzinfo=dt.UTC), dt.date(2026, 4, 4), 100),
        # and enters it at 24:00 on Saturday 5 September 2026: Sunday has 23 hours.
        (dt.datetime(2026, 9, 9, 12, tzinfo=dt.UTC), dt.date(2026, 9, 6), 92),
        (dt.datetime(2026, 9, 9, 12, tzinfo=dt.UTC), dt.date(2026, 9, 8), 96),
    ],
)
async def test_load_profile_by_range_on_dst_days(now: dt.datetime, day: dt.date, rows: int) -> None:
    plan = make_plan(now)
    assert interval_count(day, TZ) == rows
    start, end = local_day_bounds(day, TZ)
    async for running in serve(plan, 0, Wall(now)):
        async with DlmsClient.connect(
            HOST, running.server.port, head_end_settings(running)
        ) as client:
            buffer = await client.read_profile(LOAD_PROFILE, start + dt.timedelta(seconds=1), end)
            measurands = await client.read_profile(
                MEASURAND_PROFILE, start + dt.timedelta(seconds=1), end
            )
        expected = running.meter.model.load_profile_day(day)
    assert len(buffer) == rows == len(expected) == len(measurands)
    # UTC instants: aware datetimes in a repeated hour never compare equal across zones.
    captured = [stamp(row[0]).timestamp() for row in buffer]
    assert captured == [row.clock.timestamp() for row in expected]
    assert captured[-1] == end.timestamp()
    assert [row[2].value for row in buffer] == [row.active_import_wh for row in expected]
    assert [row[4].value for row in buffer] == [row.reactive_import_varh for row in expected]
    assert all(220 * 10 * 0.9 < row[2].value < 220 * 10 * 1.1 for row in measurands)  # type: ignore[operator]


async def test_billing_rows_are_captured_at_local_midnight(served: Served) -> None:
    start = dt.datetime(2026, 4, 5, 0, tzinfo=dt.UTC)
    async with DlmsClient.connect(HOST, served.server.port, head_end_settings(served)) as client:
        rows = await client.read_profile(BILLING, start, NOW)
    model = served.meter.model
    days = [dt.date(2026, 4, 3) + dt.timedelta(days=n) for n in range(8)]
    # Closures of 4..9 April: their ends (local midnights) fall inside [start, NOW].
    expected = [
        model.billing_row(day)
        for day in days
        if start <= local_day_bounds(day + dt.timedelta(days=1), TZ)[0] <= NOW
    ]
    assert len(rows) == len(expected) == 6
    for row, billing in zip(rows, expected, strict=True):
        assert billing is not None
        clock = stamp(row[0])
        assert (clock.hour, clock.minute, clock.second) == (0, 0, 0)
        assert clock == billing.clock
        assert len(row) == 30
        assert row[2].value == billing.registers.active_import.total
        assert [r.value for r in row[3:9]] == list(billing.registers.active_import.tiers)
        assert sum(r.value for r in row[3:9]) == row[2].value  # type: ignore[misc]


async def test_breaker_action_really_stops_consumption(served: Served) -> None:
    wall = served.wall
    total = ACTIVE_IMPORT[0]
    settings = head_end_settings(served)
    async with DlmsClient.connect(HOST, served.server.port, settings) as client:
        before = (await client.get(3, total, 2)).value
        await client.action(70, DISCONNECT, 1, Data.integer(0))
        assert (await client.get(70, DISCONNECT, 2)).value is False
        assert (await client.get(70, DISCONNECT, 3)).value == 0
    wall.now += dt.timedelta(hours=3)
    settings = dataclasses.replace(settings, invocation_counter=100)
    async with DlmsClient.connect(HOST, served.server.port, settings) as client:
        during = (await client.get(3, total, 2)).value
        power = (await client.get(3, Obis(1, 0, 1, 7, 0, 255), 2)).value
        await client.action(70, DISCONNECT, 2, Data.integer(0))
        assert (await client.get(70, DISCONNECT, 2)).value is True
    assert during == before
    assert power == 0
    wall.now += dt.timedelta(hours=3)
    assert served.meter.model.registers(wall.now).active_import.total > during  # type: ignore[operator]


async def test_clock_set_corrects_drift() -> None:
    plan = make_plan(NOW, drift_ppm=800.0)
    async for running in serve(plan, 2, Wall(NOW)):
        settings = head_end_settings(running)
        async with DlmsClient.connect(HOST, running.server.port, settings) as client:
            drifted = stamp(await client.get(8, CLOCK, 2))
            # 800 ppm over the 7 days since the clock was set: about 484 s fast.
            assert 470 < (drifted - NOW).total_seconds() < 500
            true_local = to_local(NOW, TZ)
            await client.set(
                8, CLOCK, 2, Data.octet_string(CosemDateTime.from_datetime(true_local).to_bytes())
            )
            corrected = stamp(await client.get(8, CLOCK, 2))
        assert abs((corrected - NOW).total_seconds()) < 1
        assert abs(running.meter.model.clock_error(NOW).total_seconds()) < 1


async def test_firmware_activation_changes_the_version(served: Served) -> None:
    image = b"0123456789"
    identifier = b"NXM-2.1.0"
    async with DlmsClient.connect(HOST, served.server.port, head_end_settings(served)) as client:
        assert (await client.get(1, FIRMWARE_VERSION, 2)).value == b"NXM-1.0.0"
        await client.action(
            18,
            IMAGE_TRANSFER,
            1,
            Data.structure((Data.octet_string(identifier), Data.double_long_unsigned(len(image)))),
        )
        await client.action(
            18,
            IMAGE_TRANSFER,
            2,
            Data.structure((Data.double_long_unsigned(0), Data.octet_string(image))),
        )
        await client.action(18, IMAGE_TRANSFER, 3, Data.integer(0))
        await client.action(18, IMAGE_TRANSFER, 4, Data.integer(0))
        assert (await client.get(1, FIRMWARE_VERSION, 2)).value == identifier
    assert served.meter.model.firmware_version(NOW) == "2.1.0"


async def test_capture_period_set_by_the_head_end_changes_the_rows(served: Served) -> None:
    wall = served.wall
    async with DlmsClient.connect(HOST, served.server.port, head_end_settings(served)) as client:
        assert (await client.get(7, LOAD_PROFILE, 4)).value == 900
        await client.set(7, LOAD_PROFILE, 4, Data.double_long_unsigned(1800))
        assert (await client.get(7, LOAD_PROFILE, 4)).value == 1800
        with pytest.raises(DlmsError):
            await client.set(7, LOAD_PROFILE, 4, Data.double_long_unsigned(7 * 60))
    wall.now += dt.timedelta(hours=4)
    settings = dataclasses.replace(head_end_settings(served), invocation_counter=200)
    async with DlmsClient.connect(HOST, served.server.port, settings) as client:
        rows = await client.read_profile(LOAD_PROFILE, NOW + dt.timedelta(hours=1), wall.now)
    times = [stamp(row[0]) for row in rows]
    assert len(times) == 6  # 16:30 … 19:00 UTC every 30 minutes
    assert all(b - a == dt.timedelta(minutes=30) for a, b in itertools.pairwise(times))


async def test_wrong_keys_and_passwords_are_refused() -> None:
    plan = make_plan(NOW, wrong_key=1.0)
    async for running in serve(plan, 0, Wall(NOW)):
        spec = running.meter.spec
        assert spec.wrong_key
        port = running.server.port
        with pytest.raises(DlmsError):
            async with DlmsClient.connect(HOST, port, head_end_settings(running)):
                pass
        device_keys = dataclasses.replace(
            head_end_settings(running),
            encryption_key=spec.device_keys[0],
            authentication_key=spec.device_keys[1],
        )
        async with DlmsClient.connect(HOST, port, device_keys) as client:
            assert (await client.get(1, Obis(0, 0, 96, 1, 0, 255), 2)).value == spec.serial.encode()
        lls = ClientSettings(
            client_sap=MANAGEMENT_SAP,
            mechanism=AuthenticationMechanism.LOW,
            password=meter_lls_password(plan, 0),
        )
        async with DlmsClient.connect(HOST, port, lls) as client:
            assert (await client.get(8, CLOCK, 2)).value
            with pytest.raises(AccessDenied):
                await client.action(70, DISCONNECT, 1, Data.integer(0))
        with pytest.raises(AssociationRejected):
            async with DlmsClient.connect(
                HOST, port, dataclasses.replace(lls, password=b"00000000")
            ):
                pass
        assert running.server.devices[1].system_title == meter_system_title(0)


def test_devices_are_built_lazily_and_keep_their_state_across_evictions() -> None:
    plan = make_plan(NOW)
    wall = Wall(NOW)
    devices = MeterDevices(plan, SimClock(NOW, 1.0, 7, wall=wall), capacity=2)
    assert devices.cached == 0
    first = devices.get(0)
    first.device.action(70, DISCONNECT, 1)
    devices.get(1)
    devices.get(2)
    assert devices.cached == 2
    assert devices.builds == 3
    again = devices.get(0)
    assert again is not first
    assert devices.builds == 4
    assert again.device.get(70, DISCONNECT, 2).value is False
    assert devices.get(0) is again
    pinned = devices.pin(2)
    for index in (0, 1, 0, 1):
        devices.get(index)
    assert devices.get(2) is pinned
    assert devices.touched == 3


def test_each_device_binds_the_shared_live_objects_to_its_own_meter() -> None:
    """The live objects' factories are made once per process: every build must still bind
    them to its own meter's model and counters, never to the first meter built."""
    plan = make_plan(NOW)
    devices = MeterDevices(plan, SimClock(NOW, 1.0, 7, wall=Wall(NOW)))
    meters = [devices.get(index) for index in range(3)]
    meters[1].served.invocation_counter.take()
    meters[2].device.action(70, DISCONNECT, 1)
    for index, meter in enumerate(meters):
        total = meter.model.registers(NOW).active_import.total
        assert meter.device.get(3, ACTIVE_IMPORT[0], 2).value == total
        counter = meter.device.get(1, Obis(0, 0, 43, 1, 3, 255), 2).value
        assert counter == (2 if index == 1 else 1)
        assert meter.device.get(70, DISCONNECT, 2).value is (index != 2)
    objects = [set(map(id, m.device)) for m in meters]
    assert not objects[0] & objects[1]
    assert not objects[1] & objects[2]


async def test_status_words_alarm_register_and_filter(served: Served) -> None:
    model = served.meter.model
    model.power_outage(NOW - dt.timedelta(hours=2), NOW - dt.timedelta(hours=1))
    alarm, alarm_filter = Obis(0, 0, 97, 98, 0, 255), Obis(0, 0, 97, 98, 10, 255)
    normal1 = Obis(0, 0, 96, 5, 1, 255)
    async with DlmsClient.connect(HOST, served.server.port, head_end_settings(served)) as client:
        assert (await client.get(1, normal1, 2)).value == model.status_words(NOW).normal1
        assert (await client.get(1, normal1, 2)).value & 1  # type: ignore[operator]
        assert (await client.get(1, alarm, 2)).value == 1
        assert (await client.get(1, alarm_filter, 2)).value == 0xFFFF_FFFF
        await client.set(1, alarm_filter, 2, Data.double_long_unsigned(0xFFFF_FFFE))
        assert (await client.get(1, alarm, 2)).value == 0
        assert model.alarm_masks[0] & 1 == 0
        await client.set(1, alarm_filter, 2, Data.double_long_unsigned(0xFFFF_FFFF))
        assert (await client.get(1, alarm, 2)).value == 1
        await client.set(1, alarm, 2, Data.double_long_unsigned(0))
        assert (await client.get(1, alarm, 2)).value == 0
        assert (await client.get(1, normal1, 2)).value == 0
