"""Real `smmc worker` processes against a simulated fleet (imported by the issue 5
acceptance tests).

The fleet is provisioned into the test's PostgreSQL database with the store's own importer
(keys sealed with a master key the workers get through ``SMMC_SECRET_KEY``) and served over
real TCP from the test's event loop, on real time, so a breaker opened and closed again
has a history the meters can tell apart. The workers run the CLI as an operator would.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "field"))  # the shared harness

from field_sim import make_plan, provision
from wo_process_worker import open_orders

from smmc.sim.clock import SimClock
from smmc.sim.concentrator import ConcentratorFleet, ConcentratorServer
from smmc.sim.fleet import FleetPlan
from smmc.sim.meter_device import MeterDevices
from smmc.sim.plc import LinkSettings
from smmc.sim.runner import FleetRunner
from smmc.store.secrets import SecretBox

SMMC = Path(sys.executable).with_name("smmc")


@dataclass
class ServedFleet:
    plan: FleetPlan
    runner: FleetRunner
    concentrators: list[ConcentratorServer]
    master_key: bytes

    def serials(self) -> list[str]:
        return [self.plan.meter(i).serial for i in range(len(self.plan))]


@asynccontextmanager
async def served_fleet(
    db: Engine, directory: Path, concentrators: int, per_concentrator: int
) -> AsyncIterator[ServedFleet]:
    """Concentrators with meters behind them (no point-to-point meters), zero PLC latency."""
    plan = make_plan(concentrators, per_concentrator, 0)
    master_key = os.urandom(32)
    await asyncio.to_thread(provision, db, SecretBox(master_key), plan, directory)
    clock = SimClock(plan.epoch, 1.0, plan.fleet.time.history_days)
    made: list[ConcentratorFleet] = []

    def hook(plan: FleetPlan, meters: MeterDevices, clock: SimClock) -> ConcentratorFleet:
        fleet = ConcentratorFleet(
            plan, meters, clock, link=LinkSettings(latency_s=0.0, bytes_per_s=1e9)
        )
        made.append(fleet)
        return fleet

    async with FleetRunner(plan, clock, concentrators=hook) as runner:
        yield ServedFleet(plan, runner, made[0].concentrators, master_key)


def spawn_worker(
    db: Engine, fleet: ServedFleet, name: str, *, lease_seconds: float, in_flight: int
) -> subprocess.Popen[bytes]:
    """``smmc worker`` on the test database with the fleet's master key, no scheduler."""
    env = {
        **os.environ,
        "SMMC_DATABASE_URL": db.url.render_as_string(hide_password=False),
        "SMMC_SECRET_KEY": fleet.master_key.hex(),
    }
    return subprocess.Popen(
        [
            str(SMMC),
            "worker",
            "--name",
            name,
            "--max-in-flight",
            str(in_flight),
            "--lease-seconds",
            str(lease_seconds),
            "--poll-seconds",
            "0.1",
            "--no-scheduler",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
    )


async def wait_for_batch(
    db: Engine, workers: Iterable[subprocess.Popen[bytes]], timeout: float
) -> None:
    """Until no order is open; fails if a worker dies meanwhile or time runs out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    running = list(workers)
    while await asyncio.to_thread(open_orders, db):
        for process in running:
            assert process.poll() is None, f"worker {process.pid} exited with {process.returncode}"
        assert loop.time() < deadline, "the batch did not finish in time"
        await asyncio.sleep(0.25)


async def stop_workers(workers: Iterable[subprocess.Popen[bytes]]) -> list[int]:
    """SIGTERM (a worker finishes its orders in flight), then their exit codes."""
    running = [process for process in workers if process.poll() is None]
    for process in running:
        process.send_signal(signal.SIGTERM)
    return [await asyncio.to_thread(process.wait, 60) for process in running]


def kill_all(workers: Iterable[subprocess.Popen[bytes]]) -> None:
    for process in workers:
        if process.poll() is None:
            process.kill()
            process.wait()
