"""Work-order benchmarks (issue 5): head-end overhead and field efficiency.

    python benchmarks/work_orders.py overhead   --concentrators 20 --meters 25 --rounds 2
    python benchmarks/work_orders.py efficiency --concentrators 200 --meters 5 --latency 0.1

Both provision a simulated fleet into a fresh SQLite database (WAL) through the store's own
importer, serve the fleet in a **separate process** (the simulator beside the head-end on
this 2-core machine), submit one OutageCheck order (HLS-GMAC association, clock read,
release: one meter operation including association) per meter and round, and run one
`Worker` with the field executors until the batch is done.

* ``overhead``: zero-latency PLC, several permits per concentrator: orders per second the
  head-end sustains (leasing, sessions, DLMS, ciphering, outcomes, events).
* ``efficiency``: a PLC latency per exchange (× (1 + repeater hops), as the simulator
  models it) and **one** session per concentrator: the batch's wall time against its lower
  bound, the busiest concentrator's medium time (the sum of its exchanges, taken from the
  simulator's own PLC history).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import itertools
import multiprocessing
import os
import platform
import tempfile
import threading
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from smmc.domain.geo import CHILE
from smmc.domain.work_orders import ActivityType, State
from smmc.engine.activities import FieldContext, register_field_executors
from smmc.engine.activities import base as activities_base
from smmc.engine.executors import ExecutorRegistry
from smmc.engine.worker import Worker, WorkerConfig
from smmc.field.credentials import CounterStore, CredentialStore
from smmc.field.drivers import DriverSettings, FieldDrivers
from smmc.field.sessions import SessionLimits, SessionManager, load_permits
from smmc.process import settle_heap
from smmc.sim.clock import SimClock
from smmc.sim.concentrator import ConcentratorFleet
from smmc.sim.fleet import Fleet, FleetPlan, default_fleet
from smmc.sim.meter_device import MeterDevices
from smmc.sim.plc import Exchange, LinkSettings
from smmc.sim.provisioning_files import write_provisioning_files
from smmc.sim.runner import FleetRunner
from smmc.store import tables as t
from smmc.store.db import create_engine
from smmc.store.migrate import upgrade
from smmc.store.provisioning import ImportOptions, import_file, import_order
from smmc.store.secrets import SecretBox
from smmc.store.work_orders import TargetRef, WorkOrderQueue

NOW = datetime(2026, 4, 10, 15, 0, tzinfo=UTC)


def make_fleet(concentrators: int, meters: int, first_port: int) -> Fleet:
    base = default_fleet().sized(concentrators, meters, 0).without_faults()
    return dataclasses.replace(
        base,
        time=dataclasses.replace(base.time, history_days=1),
        concentrators=dataclasses.replace(base.concentrators, first_port=first_port),
    )


def serve(fleet: Fleet, latency: float, ready: Event, stop: Event, out: Any) -> None:
    """The simulator process: serve every concentrator until told to stop, then report the
    medium time of each (seconds the PLC link was busy, first and last use on the system-wide
    monotonic clock) and its own CPU seconds while serving."""

    async def main() -> None:
        plan = fleet.build(NOW)
        clock = SimClock(NOW, 1.0, fleet.time.history_days)
        dcs: list[ConcentratorFleet] = []

        def hook(plan: FleetPlan, meters: MeterDevices, clock: SimClock) -> ConcentratorFleet:
            made = ConcentratorFleet(
                plan,
                meters,
                clock,
                link=LinkSettings(latency_s=latency, bytes_per_s=1e9),
                idle_timeout=120.0,
            )
            dcs.append(made)
            return made

        async with FleetRunner(plan, clock, concentrators=hook):
            settle_heap()  # as `smmc sim run` does
            ready.set()
            cpu = time.process_time()
            await asyncio.get_running_loop().run_in_executor(None, stop.wait)
            cpu = time.process_time() - cpu
            busy = {dc.spec.name: medium_use(list(dc.link.history)) for dc in dcs[0].concentrators}
        out.put((busy, cpu))

    asyncio.run(main())


class CpuProbes:
    """CPU seconds (``time.thread_time`` of the calling thread) and calls of selected
    blocking functions, which the head-end runs in its worker threads; a probe ``inside``
    another is counted in its own line only."""

    def __init__(self) -> None:
        self.cpu: defaultdict[str, float] = defaultdict(float)
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def wrap(self, owner: Any, name: str, label: str, inside: str | None = None) -> None:
        original = getattr(owner, name)

        def probe(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                spent = time.thread_time() - start
                with self._lock:
                    self.cpu[label] += spent
                    self.calls[label] += 1
                    if inside is not None:
                        self.cpu[inside] -= spent

        setattr(owner, name, probe)


def install_probes() -> CpuProbes:
    probes = CpuProbes()
    # The worker stores outcomes and leases in one transaction (`record_and_lease`): its
    # own line is what is left of it, the connection, BEGIN and the commit.
    probes.wrap(WorkOrderQueue, "record_and_lease", "store: outcome+lease transaction")
    probes.wrap(WorkOrderQueue, "_lease", "store: lease", inside="store: outcome+lease transaction")
    probes.wrap(
        WorkOrderQueue, "_record", "store: outcomes", inside="store: outcome+lease transaction"
    )
    probes.wrap(activities_base, "store_events", "store: events", inside="store: outcomes")
    probes.wrap(CredentialStore, "meters", "store: credentials")
    probes.wrap(CounterStore, "reserve_many", "store: counter blocks")
    probes.wrap(CounterStore, "save_received_many", "store: replay guards")
    return probes


def medium_use(history: list[Exchange]) -> tuple[float, float, float, float]:
    """Seconds the medium was busy, its first and last use (system-wide monotonic clock) and
    the idle seconds between two sessions (consecutive exchanges with different nodes)."""
    if not history:
        return 0.0, 0.0, 0.0, 0.0
    between = sum(
        later.started - earlier.finished
        for earlier, later in itertools.pairwise(history)
        if later.node_address != earlier.node_address
    )
    return (
        sum(e.finished - e.started for e in history),
        history[0].started,
        history[-1].finished,
        between,
    )


def provision(fleet: Fleet, workdir: Path) -> tuple[sa.Engine, SecretBox]:
    engine = create_engine(f"sqlite:///{workdir / 'bench.db'}")
    upgrade(engine)
    box = SecretBox(os.urandom(32))
    files = write_provisioning_files(fleet.build(NOW), workdir / "provisioning")
    for path in import_order(list(files.values())):
        result = import_file(engine, box, path, ImportOptions(CHILE, workdir / "reports"))
        if result.fatal or result.rejected:
            raise SystemExit(f"{path.name}: {result.fatal or result.issues[:3]}")
    return engine, box


async def run_batch(
    engine: sa.Engine, box: SecretBox, permits: int, rounds: int, in_flight: int
) -> tuple[int, float, float, float, float, dict[str, int], tuple[int, int]]:
    queue = WorkOrderQueue(engine)
    with engine.connect() as conn:
        names = list(conn.execute(sa.select(t.concentrators.c.name)).scalars())
        serials = list(
            conn.execute(
                sa.select(t.meters.c.serial_number).where(t.meters.c.concentrator_id.is_not(None))
            ).scalars()
        )
    for name in names:
        queue.set_permits(name, permits)
    for _ in range(rounds):
        queue.submit(ActivityType.OUTAGE_CHECK, [TargetRef(meter=s) for s in serials])
    sessions = SessionManager(
        SessionLimits(max_sessions=max(in_flight, 2), reserved_high=1), load_permits(engine)
    )
    drivers = FieldDrivers(engine, box, sessions, DriverSettings(gateway_timeout=120.0))
    registry = ExecutorRegistry()
    register_field_executors(registry, FieldContext(drivers))
    worker = Worker(
        queue, registry, WorkerConfig(name="bench", max_in_flight=in_flight, poll_interval=0.05)
    )
    settle_heap()  # as `smmc worker` does
    started, loop_cpu, batch_cpu = time.monotonic(), time.thread_time(), time.process_time()
    await worker.run_until_idle()
    elapsed, loop_cpu = time.monotonic() - started, time.thread_time() - loop_cpu
    batch_cpu = time.process_time() - batch_cpu
    drivers.close()
    with engine.connect() as conn:
        states: dict[str, int] = {
            str(state): int(count)
            for state, count in conn.execute(
                sa.select(t.work_orders.c.state, sa.func.count()).group_by(t.work_orders.c.state)
            )
        }
    connections = (drivers.links.opened, drivers.links.reused)
    return len(serials) * rounds, started, elapsed, loop_cpu, batch_cpu, states, connections


def free_port_base(count: int) -> int:
    import random
    import socket

    for _ in range(100):
        base = random.randint(30000, 60000 - count)
        try:
            for port in range(base, base + count):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise SystemExit("no free port range")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("overhead", "efficiency"))
    parser.add_argument("--concentrators", type=int, default=20)
    parser.add_argument("--meters", type=int, default=25, help="meters per concentrator")
    parser.add_argument("--rounds", type=int, default=1, help="orders per meter")
    parser.add_argument("--latency", type=float, default=0.0, help="PLC seconds per exchange")
    parser.add_argument("--permits", type=int, default=None)
    parser.add_argument("--in-flight", type=int, default=None)
    parser.add_argument(
        "--breakdown", action="store_true", help="CPU of the event loop and of each store call"
    )
    args = parser.parse_args()
    overhead = args.mode == "overhead"
    permits = args.permits or (4 if overhead else 1)
    in_flight = args.in_flight or (64 if overhead else args.concentrators * permits)
    latency = 0.0 if overhead else args.latency
    probes = install_probes() if args.breakdown else None
    fleet = make_fleet(args.concentrators, args.meters, free_port_base(args.concentrators))
    with tempfile.TemporaryDirectory() as tmp:
        engine, box = provision(fleet, Path(tmp))
        context = multiprocessing.get_context("spawn")
        ready, stop, out = context.Event(), context.Event(), context.Queue()
        simulator = context.Process(target=serve, args=(fleet, latency, ready, stop, out))
        simulator.start()
        try:
            if not ready.wait(120):
                raise SystemExit("the simulator did not start")
            cpu_before = time.process_time()
            orders, started, elapsed, loop_cpu, batch_cpu, states, (opened, reused) = asyncio.run(
                run_batch(engine, box, permits, args.rounds, in_flight)
            )
            cpu = time.process_time() - cpu_before
        finally:
            stop.set()
        busy, sim_cpu = out.get(timeout=60)
        simulator.join(30)
    done = states.get(State.COMPLETED.value, 0)
    print(f"machine: {platform.node()}, {os.cpu_count()} CPU, Python {platform.python_version()}")
    print(
        f"{args.concentrators} concentrators x {args.meters} meters, {args.rounds} round(s), "
        f"latency {latency} s/exchange, {permits} permit(s) per DC, {in_flight} in flight"
    )
    print(f"orders: {orders}, states: {states}")
    print(f"TCP connections to concentrators: {opened} opened, {reused} reused")
    print(f"wall time: {elapsed:.2f} s, {done / elapsed:.1f} completed meter operations/s")
    print(
        f"head-end CPU (all threads): {cpu:.2f} s, "
        f"{cpu / max(done, 1) * 1000:.1f} ms per operation, "
        f"{done / cpu:.1f} operations per CPU-second; load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"  of which while the batch ran (the rest is set-up: orders submitted, modules "
        f"imported): {batch_cpu:.2f} s, {batch_cpu / max(done, 1) * 1000:.1f} ms per operation"
    )
    print(
        f"simulator CPU: {sim_cpu:.2f} s, {sim_cpu / max(done, 1) * 1000:.1f} ms per operation; "
        f"both processes: {(cpu + sim_cpu) / max(done, 1) * 1000:.1f} ms per operation"
    )
    if probes is not None:
        per_op = 1000 / max(done, 1)
        print(f"  event loop thread: {loop_cpu * per_op:.2f} ms per operation")
        for label, spent in sorted(probes.cpu.items(), key=lambda item: -item[1]):
            print(
                f"  {label}: {spent * per_op:.2f} ms per operation "
                f"({probes.calls[label]} calls, {spent / probes.calls[label] * 1000:.2f} ms each)"
            )
        rest = cpu - loop_cpu - sum(probes.cpu.values())
        print(f"  other threads (thread pool hand-over, start-up): {rest * per_op:.2f} ms")
    if not overhead:
        name, (bound, first, last, between) = max(busy.items(), key=lambda item: item[1][0])
        print(
            f"lower bound (busiest DC {name}, medium busy): {bound:.2f} s; "
            f"batch / bound = {elapsed / bound:.3f} ({(elapsed / bound - 1) * 100:+.1f} %)"
        )
        print(
            f"  busiest DC: first exchange {first - started:.2f} s after the start, medium "
            f"idle {last - first - bound:.2f} s between exchanges ({between:.2f} s of it "
            f"between sessions), last exchange {started + elapsed - last:.2f} s before the end"
        )


if __name__ == "__main__":
    main()
