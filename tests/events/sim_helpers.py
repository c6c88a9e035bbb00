"""A one-concentrator simulated fleet for the events tests, and its rows in the store."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt

from sqlalchemy.engine import Engine

from smmc.events.listener import SpontaneousListener
from smmc.sim.clock import SimClock
from smmc.sim.concentrator import ConcentratorServer, HeadEndAddress
from smmc.sim.fleet import ClockDrift, FleetPlan, default_fleet
from smmc.sim.meter_device import MeterDevices
from smmc.sim.plc import LinkSettings
from smmc.store import tables as t

HOST = "127.0.0.1"
NOW = dt.datetime(2026, 4, 10, 15, 7, 30, tzinfo=dt.UTC)


class Wall:
    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now


def make_plan(meters: int = 5) -> FleetPlan:
    base = default_fleet().sized(1, meters, 0).without_faults()
    fleet = dataclasses.replace(
        base,
        clock_drift=ClockDrift(mean_ppm=0.0, sd_ppm=0.0, tolerance_s=60.0),
        time=dataclasses.replace(base.time, history_days=3),
    )
    return fleet.build(NOW)


def make_dc(plan: FleetPlan, port: int, transport: str = "tcp") -> ConcentratorServer:
    clock = SimClock(plan.epoch, 1.0, plan.fleet.time.history_days, wall=Wall(NOW))
    return ConcentratorServer(
        plan,
        plan.concentrators[0],
        clock,
        meters=MeterDevices(plan, clock),
        host=HOST,
        port=0,
        link=LinkSettings(latency_s=0.0, bytes_per_s=1e9),
        head_end=HeadEndAddress(HOST, port, "udp" if transport == "udp" else "tcp"),
        idle_timeout=10.0,
    )


def provision(db: Engine, dc: ConcentratorServer) -> None:
    """The DC (with a transformer) and its meters as the head-end knows them."""
    with db.begin() as conn:
        sub = conn.execute(
            t.substations.insert().values(name="SE-SIM").returning(t.substations.c.id)
        ).scalar_one()
        transformer = conn.execute(
            t.transformers.insert()
            .values(code="TR-SIM", substation_id=sub)
            .returning(t.transformers.c.id)
        ).scalar_one()
        dc_id = conn.execute(
            t.concentrators.insert()
            .values(
                name=dc.spec.name,
                serial_number=dc.spec.serial,
                transformer_id=transformer,
                comuna="Santiago",
            )
            .returning(t.concentrators.c.id)
        ).scalar_one()
        conn.execute(
            t.meters.insert(),
            [
                {"serial_number": node.serial, "concentrator_id": dc_id}
                for node in dc.nodes.values()
            ],
        )


async def settle(listener: SpontaneousListener, expected: int) -> None:
    """Wait (at most a minute) until ``expected`` messages were received and stored."""

    async def wait() -> None:
        while listener.received < expected:
            await asyncio.sleep(0.01)
        await listener.drain()

    await asyncio.wait_for(wait(), 60)
