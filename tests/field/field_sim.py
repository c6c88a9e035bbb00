"""A small simulated fleet served over real TCP and provisioned into the test database.

Shared by the field and activity tests: `SimFleet` builds a plan on free ports, writes its
provisioning files, imports them with the store's own importer (so the database holds
exactly the simulated fleet, keys sealed) and serves the point-to-point meters and the
concentrators with a simulated time the test moves by hand.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from smmc.domain.geo import CHILE
from smmc.field.drivers import DriverSettings, FieldDrivers
from smmc.field.sessions import SessionLimits, SessionManager, load_permits
from smmc.sim.anomalies import AnomalyRates
from smmc.sim.clock import SimClock
from smmc.sim.concentrator import ConcentratorFleet, ConcentratorServer
from smmc.sim.fleet import ClockDrift, FaultRates, FleetPlan, default_fleet
from smmc.sim.plc import LinkSettings
from smmc.sim.provisioning_files import write_provisioning_files
from smmc.sim.runner import FleetRunner
from smmc.store import tables as t
from smmc.store.provisioning import ImportOptions, import_file, import_order
from smmc.store.secrets import SecretBox

NOW = dt.datetime(2026, 4, 10, 15, 7, 30, tzinfo=dt.UTC)
NO_ANOMALIES = AnomalyRates(*(0.0,) * 9)


class Wall:
    """The wall clock the simulation runs on: frozen unless a test moves it."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, delta: dt.timedelta) -> None:
        self.now += delta


def _free_ports(count: int) -> int:
    """A base port with ``count`` consecutive free ports on 127.0.0.1."""
    for _ in range(200):
        base = random.randint(30000, 60000 - count)
        try:
            probes = []
            for port in range(base, base + count):
                probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                probes.append(probe)
                probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            for probe in probes:
                probe.close()
        return base
    raise RuntimeError("no free port range")


def make_plan(concentrators: int, per_concentrator: int, point_to_point: int) -> FleetPlan:
    base = default_fleet().sized(concentrators, per_concentrator, point_to_point)
    fleet = dataclasses.replace(
        base,
        anomalies=NO_ANOMALIES,
        faults=FaultRates(0.0, 0.0, 0.0, 0.0, 0.0),
        clock_drift=ClockDrift(mean_ppm=0.0, sd_ppm=0.0, tolerance_s=60.0),
        time=dataclasses.replace(base.time, history_days=3),
        concentrators=dataclasses.replace(
            base.concentrators, first_port=_free_ports(max(concentrators, 1))
        ),
        point_to_point=dataclasses.replace(
            base.point_to_point,
            first_host=f"127.{random.randint(100, 250)}.{random.randint(1, 250)}.1",
        ),
    )
    return fleet.build(NOW)


def provision(engine: Engine, box: SecretBox, plan: FleetPlan, directory: Path) -> None:
    files = write_provisioning_files(plan, directory / "provisioning")
    for path in import_order(list(files.values())):
        result = import_file(engine, box, path, ImportOptions(CHILE, directory / "reports"))
        if result.fatal or result.rejected:
            raise RuntimeError(f"{path.name}: {result.fatal or result.issues}")


@dataclass
class SimFleet:
    plan: FleetPlan
    wall: Wall
    clock: SimClock
    runner: FleetRunner
    engine: Engine
    box: SecretBox

    _dcs: list[ConcentratorServer] = dataclasses.field(default_factory=list)

    def meter_id(self, serial: str) -> int:
        with self.engine.connect() as conn:
            found = conn.execute(
                sa.select(t.meters.c.id).where(t.meters.c.serial_number == serial)
            ).scalar_one()
        return int(found)

    def concentrator_id(self, name: str) -> int:
        with self.engine.connect() as conn:
            found = conn.execute(
                sa.select(t.concentrators.c.id).where(t.concentrators.c.name == name)
            ).scalar_one()
        return int(found)

    def p2p_serials(self) -> list[str]:
        return [self.plan.meter(i).serial for i in self.runner.point_to_point]

    def dc(self, index: int = 0) -> ConcentratorServer:
        return self._dcs[index]

    def gateway_serials(self, dc: ConcentratorServer) -> list[str]:
        return [node.serial for _, node in sorted(dc.nodes.items())]

    def drivers(self, limits: SessionLimits | None = None, **settings: float) -> FieldDrivers:
        sessions = SessionManager(limits, load_permits(self.engine))
        return FieldDrivers(
            self.engine,
            self.box,
            sessions,
            DriverSettings(**settings),  # type: ignore[arg-type]
        )


@asynccontextmanager
async def sim_fleet(
    engine: Engine,
    box: SecretBox,
    directory: Path,
    *,
    concentrators: int = 1,
    per_concentrator: int = 3,
    point_to_point: int = 2,
    link: LinkSettings | None = None,
    collects_measurands: bool = True,
) -> AsyncIterator[SimFleet]:
    plan = make_plan(concentrators, per_concentrator, point_to_point)
    provision(engine, box, plan, directory)
    wall = Wall(NOW)
    clock = SimClock(plan.epoch, 1.0, plan.fleet.time.history_days, wall=wall)
    holder: list[ConcentratorFleet] = []

    def hook(plan: FleetPlan, meters: object, clock: SimClock) -> ConcentratorFleet:
        made = partial(
            ConcentratorFleet,
            link=link or LinkSettings(latency_s=0.0, bytes_per_s=1e9),
            idle_timeout=30.0,
            collects_measurands=collects_measurands,
        )(plan, meters, clock)  # type: ignore[arg-type]
        holder.append(made)
        return made

    runner = FleetRunner(plan, clock, concentrators=hook, idle_timeout=30.0)
    async with runner:
        fleet = SimFleet(plan, wall, clock, runner, engine, box)
        fleet._dcs = holder[0].concentrators if holder else []
        yield fleet
