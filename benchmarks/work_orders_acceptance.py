"""Issue 5 acceptance at full size: two `smmc worker` processes share a 10,000-order batch
over 100 simulated concentrators on PostgreSQL.

    python benchmarks/work_orders_acceptance.py --concentrators 100 --meters 50

A fresh PostgreSQL database (dropped afterwards unless ``--keep``) is provisioned with a
simulated fleet through the store's importer; this process serves the fleet over TCP (zero
PLC latency, one permit per concentrator) and submits one StatusWordRead and one OutageCheck
order per meter; two real ``smmc worker`` processes run the batch. Reported: wall time, the
CPU seconds of each worker process (rusage) and of the simulator process, and the checks of
the acceptance test at this size, from the simulator's own record: every meter associated
exactly once per order, no concentrator ever above one association at once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import psycopg
import sqlalchemy as sa
from work_orders import NOW, free_port_base, make_fleet

from smmc.domain.geo import CHILE
from smmc.domain.work_orders import ActivityType
from smmc.process import settle_heap
from smmc.sim.clock import SimClock
from smmc.sim.concentrator import ConcentratorFleet, gateway_address
from smmc.sim.fleet import FleetPlan
from smmc.sim.meter_device import MeterDevices
from smmc.sim.plc import LinkSettings
from smmc.sim.provisioning_files import write_provisioning_files
from smmc.sim.runner import FleetRunner
from smmc.store import tables as t
from smmc.store.db import create_engine
from smmc.store.migrate import upgrade
from smmc.store.provisioning import ImportOptions, import_file, import_order
from smmc.store.secrets import SecretBox
from smmc.store.work_orders import TargetRef, WorkOrderQueue

ADMIN_URL = os.environ.get(
    "SMMC_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
ACTIVITIES = (ActivityType.STATUS_WORD_READ, ActivityType.OUTAGE_CHECK)


def provision(engine: sa.Engine, box: SecretBox, plan: FleetPlan, workdir: Path) -> None:
    files = write_provisioning_files(plan, workdir / "provisioning")
    for path in import_order(list(files.values())):
        result = import_file(engine, box, path, ImportOptions(CHILE, workdir / "reports"))
        if result.fatal or result.rejected:
            raise SystemExit(f"{path.name}: {result.fatal or result.issues[:3]}")


def finished(queue: WorkOrderQueue, batches: list[int]) -> bool:
    progress = [queue.batch_progress(batch) for batch in batches]
    return all(p.finished == p.total for p in progress)


def spawn(url: str, key: bytes, name: str, in_flight: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SMMC_DATABASE_URL": url, "SMMC_SECRET_KEY": key.hex()}
    command = [str(Path(sys.executable).with_name("smmc")), "worker", "--name", name]
    command += ["--max-in-flight", str(in_flight), "--lease-seconds", "60"]
    command += ["--poll-seconds", "0.1", "--no-scheduler"]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)


def stop(process: subprocess.Popen[bytes]) -> tuple[int, float]:
    """SIGTERM, then the exit code and the CPU seconds (user + system) of the process."""
    process.send_signal(signal.SIGTERM)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return process.returncode, usage.ru_utime + usage.ru_stime


async def run(args: argparse.Namespace, url: str, workdir: Path) -> None:
    engine = create_engine(url)
    upgrade(engine)
    fleet = make_fleet(args.concentrators, args.meters, free_port_base(args.concentrators))
    plan = fleet.build(NOW)
    key = os.urandom(32)
    provision(engine, SecretBox(key), plan, workdir)
    serials = [plan.meter(i).serial for i in range(len(plan))]
    queue = WorkOrderQueue(engine)
    batches = []
    for activity in ACTIVITIES:
        submitted = queue.submit(activity, [TargetRef(meter=s) for s in serials])
        if submitted.batch_id is None:
            raise SystemExit(f"{activity.value}: nothing accepted: {submitted.rejected[:3]}")
        batches.append(submitted.batch_id)
    total = len(serials) * len(ACTIVITIES)
    made: list[ConcentratorFleet] = []

    def hook(plan: FleetPlan, meters: MeterDevices, clock: SimClock) -> ConcentratorFleet:
        served = ConcentratorFleet(
            plan, meters, clock, link=LinkSettings(latency_s=0.0, bytes_per_s=1e9)
        )
        made.append(served)
        return served

    clock = SimClock(NOW, 1.0, fleet.time.history_days)
    async with FleetRunner(plan, clock, concentrators=hook):
        settle_heap()  # as `smmc sim run` does
        sim_cpu = time.process_time()
        started = time.perf_counter()
        workers = [spawn(url, key, name, args.in_flight) for name in ("first", "second")]
        try:
            while not await asyncio.to_thread(finished, queue, batches):
                if any(w.poll() is not None for w in workers):
                    raise SystemExit("a worker exited before the batch was done")
                await asyncio.sleep(0.5)
        except BaseException:
            for w in workers:
                w.kill()
            raise
        elapsed = time.perf_counter() - started
        sim_cpu = time.process_time() - sim_cpu
        stopped = [stop(w) for w in workers]
        records = {dc.spec.name: dc.record for dc in made[0].concentrators}
        associations = Counter(
            (dc.spec.name, span.address) for dc in made[0].concentrators for span in dc.record.spans
        )
        expected = {
            (dc.spec.name, gateway_address(node))
            for dc in made[0].concentrators
            for node in dc.nodes
        }
    with engine.connect() as conn:
        states = Counter(conn.execute(sa.select(t.work_orders.c.state)).scalars())
        a = t.work_order_attempts.c
        by_worker = Counter(conn.execute(sa.select(a.worker)).scalars())
        attempts = int(
            conn.execute(sa.select(sa.func.count()).select_from(t.work_order_attempts)).scalar_one()
        )
    engine.dispose()
    once = set(associations) == expected and set(associations.values()) == {len(ACTIVITIES)}
    peak = max(r.peak for r in records.values())
    overlap = max(r.overlapping() for r in records.values())
    print(f"machine: {platform.node()}, {os.cpu_count()} CPU, Python {platform.python_version()}")
    print(f"{args.concentrators} concentrators x {args.meters} meters, {total} orders, 2 workers")
    print(f"states: {dict(states)}; attempts: {attempts}; by worker: {dict(by_worker)}")
    print(
        f"simulator: every meter associated once per order: {once}; "
        f"peak associations on one DC: {peak} (by spans: {overlap})"
    )
    print(f"wall time: {elapsed:.1f} s, {states.get('COMPLETED', 0) / elapsed:.1f} orders/s")
    worker_cpu = [cpu for _, cpu in stopped]
    print(
        "CPU: workers "
        + ", ".join(f"{cpu:.1f} s" for cpu in worker_cpu)
        + f" ({sum(worker_cpu) / total * 1000:.1f} ms per order), simulator {sim_cpu:.1f} s;"
        f" exit codes {[code for code, _ in stopped]}; load average {os.getloadavg()[0]:.1f}"
    )
    if not once or peak > 1 or states != {"COMPLETED": total} or attempts != total:
        raise SystemExit("acceptance checks failed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concentrators", type=int, default=100)
    parser.add_argument("--meters", type=int, default=50, help="meters per concentrator")
    parser.add_argument("--in-flight", type=int, default=32, help="orders per worker at once")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()
    name = f"smmc_bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    try:
        with tempfile.TemporaryDirectory(prefix="h5acc-bench-") as tmp:
            asyncio.run(run(args, url, Path(tmp)))
    finally:
        if not args.keep:
            with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
