"""Fleet-day benchmark (issue 7): one day of a whole fleet from the simulator through DLMS
over TCP into the store.

    python benchmarks/fleet_day.py --meters 100000 --backend sqlite

Per meter: 96 quarter hours × 4 energies (A+, A−, R+, R−) of the load profile and the
daily closure (T1..T6 and total of each of the four energies), as a head-end collects
them: per concentrator, one management association (LLS) reading the DC's collected-data
profiles in bulk by range (`0.128.99.1.0.255` load profile, `0.128.98.1.0.255` daily
closure) through the field layer's drivers (`FieldDrivers.concentrator`, the same session
and `read_profile` calls the collection executor makes), decoded into
`IntervalValue`/`RegisterRead` and stored with `ingest_intervals`/`ingest_register_reads`.

Separate processes, so each one's CPU time and peak RSS (``ru_maxrss``) are its own:

* this one builds the fleet plan, provisions the database from the simulator's provisioning
  files with the store's importer (setup: timed, not part of the fleet-day), starts the
  others, checks the store at the end;
* ``--simulators`` (default 2) **simulator** processes, each a `FleetRunner` serving its
  share of the concentrators, every DC on its own TCP port, the simulated "now" shortly
  after the local midnight that closes the day collected;
* the **head-end**: with ``--via direct`` (default) ``--concurrency`` concentrators read at
  a time (asyncio), decoding in the event loop, the store writes in one thread,
  ``--dcs-per-transaction`` concentrators per transaction; with ``--via work-orders`` the
  scheduler's collection entries create the orders and a worker runs them with the
  collection executors (which store only the channels and closures each meter's energy
  profiles ask for: the default "LP Active" is A+ alone; ``--load-profile "LP Four
  Quadrants"`` assigns that profile, and the "DailyClosure Energy Profile", to every meter
  beforehand — setup, timed with the provisioning). The issue's fleet-day is the load
  profile and the closure: the concentrators' measurand entry is left out
  (``measurands_cron=None``) unless ``--measurands`` keeps it, which adds one more bulk
  read per DC (``0.128.99.2.0.255``, 96 × 2 values per meter: L1 voltage and current).

The fleet has no communication faults (every meter is collected, so the stored count is
exact) but keeps the default clock drift and anomalies. Reported: wall time of the
collection, CPU time of each process (and, on PostgreSQL, of the server backends the
head-end used, from /proc: same machine), peak RSS of each process, and where the head-end's
time went (waiting for reads, decoding, storing).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import dataclasses
import functools
import gc
import json
import multiprocessing
import os
import platform
import resource
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection as Pipe
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from smmc.dlms.axdr import Data
from smmc.dlms.cosem_time import CosemDateTime
from smmc.domain.geo import CHILE
from smmc.domain.readings import (
    DEFAULT_DAILY_CLOSURE_PROFILE,
    DEFAULT_LOAD_PROFILE_PROFILE,
    LOAD_PROFILE_PROFILES,
    TIER_COUNT,
    Energy,
    interval_type,
    profile_status_quality,
)
from smmc.domain.time import local_day_bounds, to_local
from smmc.domain.work_orders import load_policies
from smmc.engine.activities import FieldContext, register_field_executors
from smmc.engine.executors import ExecutorRegistry
from smmc.engine.scheduler import Scheduler, add_collection_schedules
from smmc.engine.worker import Worker, WorkerConfig
from smmc.field.drivers import (
    COLLECTED_DAILY,
    COLLECTED_LOAD_PROFILE,
    DriverSettings,
    FieldDrivers,
)
from smmc.field.sessions import SessionLimits, SessionManager, load_permits
from smmc.process import settle_heap
from smmc.sim.clock import SimClock
from smmc.sim.concentrator import ConcentratorServer
from smmc.sim.fleet import FaultRates, Fleet, FleetPlan, default_fleet
from smmc.sim.meter_device import MeterDevices
from smmc.sim.provisioning_files import write_provisioning_files
from smmc.sim.runner import FleetRunner
from smmc.store.db import create_engine
from smmc.store.migrate import upgrade
from smmc.store.provisioning import ImportOptions, import_file, import_order
from smmc.store.readings import (
    IntervalValue,
    RegisterRead,
    assign_energy_profiles,
    ingest_intervals,
    ingest_register_reads,
)
from smmc.store.secrets import SecretBox
from smmc.store.tables import (
    concentrators,
    interval_readings,
    meters,
    register_reads,
    work_orders,
)
from smmc.store.work_orders import WorkOrderQueue

POSTGRES_ADMIN_URL = os.environ.get(
    "SMMC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
# The DC's order of the energies: load-profile columns 3..6, daily-closure register sets.
DC_ENERGIES = (
    Energy.ACTIVE_FORWARD,
    Energy.ACTIVE_REVERSE,
    Energy.REACTIVE_FORWARD,
    Energy.REACTIVE_REVERSE,
)
CHANNELS = tuple(interval_type(e).id for e in DC_ENERGIES)


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_fleet(args: argparse.Namespace) -> Fleet:
    per = args.per_concentrator
    base = default_fleet().sized(args.meters // per, per, 0)
    return dataclasses.replace(
        base,
        faults=FaultRates(0.0, 0.0, 0.0, 0.0, 0.0),
        concentrators=dataclasses.replace(
            base.concentrators, host=args.host, first_port=args.first_port
        ),
        time=dataclasses.replace(base.time, history_days=args.history_days, start=args.now),
    )


# -- simulator process ---------------------------------------------------------------------


def _profiled(args: argparse.Namespace, name: str, work: Callable[[], Any]) -> Any:
    """Run ``work``, under cProfile when ``--profile DIR`` asks (stats to DIR/name.prof)."""
    if args.profile is None:
        return work()
    profile = cProfile.Profile()
    try:
        return profile.runcall(work)
    finally:
        profile.dump_stats(args.profile / f"{name}.prof")


@contextlib.asynccontextmanager
async def _serve_share(
    plan: FleetPlan, meters: MeterDevices, clock: SimClock, *, share: int, shares: int
) -> AsyncIterator[list[ConcentratorServer]]:
    """A ``ConcentratorHook`` serving every ``shares``-th DC of the plan from ``share`` on."""
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(ConcentratorServer(plan, spec, clock, meters=meters))
            for spec in plan.concentrators[share::shares]
        ]


def simulator(args: argparse.Namespace, share: int, pipe: Pipe) -> None:
    _profiled(args, f"simulator{share}", lambda: asyncio.run(_simulate(args, share, pipe)))


async def _simulate(args: argparse.Namespace, share: int, pipe: Pipe) -> None:
    plan = make_fleet(args).build(args.now)
    clock = SimClock(args.now, 1.0, args.history_days)
    hook = functools.partial(_serve_share, share=share, shares=args.simulators)
    runner = FleetRunner(plan, clock, concentrators=hook)
    async with runner:
        settle_heap()  # as `smmc sim run` does
        pipe.send("ready")
        await asyncio.to_thread(pipe.recv)  # "stop"
        pipe.send({"cpu_s": _cpu(), "peak_rss_mib": _peak_mib()})


# -- head-end process ----------------------------------------------------------------------


@dataclasses.dataclass
class Tally:
    read_s: float = 0.0
    decode_cpu_s: float = 0.0
    store_s: float = 0.0
    store_cpu_s: float = 0.0
    rows: int = 0
    intervals: int = 0
    inserted: int = 0
    closures: int = 0
    concentrators: int = 0
    backend_pids: set[int] = dataclasses.field(default_factory=set)


def _octets(cell: Data) -> bytes:
    if not isinstance(cell.value, bytes):
        raise ValueError(f"expected an octet-string, got {cell.tag.name}")
    return cell.value


def _integer(cell: Data) -> int:
    if isinstance(cell.value, bool) or not isinstance(cell.value, int):
        raise ValueError(f"expected an integer, got {cell.tag.name}")
    return cell.value


class Decoder:
    """Collected rows → store tuples; a DC's rows repeat the same few clock values and
    status bytes, so each is decoded once."""

    def __init__(self, meter_ids: dict[bytes, int]) -> None:
        self.meter_ids = meter_ids
        self.stamps: dict[bytes, datetime] = {}
        self.qualities: dict[int, int] = {}

    def stamp(self, cell: Data) -> datetime:
        raw = _octets(cell)
        found = self.stamps.get(raw)
        if found is None:
            moment = CosemDateTime.from_bytes(raw).to_datetime()
            if moment.tzinfo is None:
                raise ValueError(f"collected clock {raw.hex()} has no deviation")
            found = self.stamps[raw] = moment.astimezone(UTC)
        return found

    def quality(self, cell: Data) -> int:
        status = _integer(cell)
        found = self.qualities.get(status)
        if found is None:
            found = self.qualities[status] = int(profile_status_quality(status))
        return found

    def load_profile(self, rows: Sequence[tuple[Data, ...]]) -> list[IntervalValue]:
        """Per meter and channel in time order: the store's key order."""
        by_meter: dict[int, list[tuple[Data, ...]]] = defaultdict(list)
        for row in rows:
            by_meter[self.meter_ids[_octets(row[1])]].append(row)
        values: list[IntervalValue] = []
        append = values.append
        for meter_id in sorted(by_meter):
            decoded = [
                (self.stamp(row[0]), self.quality(row[2]), row) for row in by_meter[meter_id]
            ]
            for column, type_id in enumerate(CHANNELS, start=3):
                for end, quality, row in decoded:
                    append(
                        IntervalValue(meter_id, type_id, end, float(_integer(row[column])), quality)
                    )
        return values

    def closures(self, rows: Sequence[tuple[Data, ...]]) -> list[RegisterRead]:
        """The simulated DC's layout: clock · serial · per energy (A+, A−, R+, R−) the total
        and T1..T6 (the collection executor reads the capture objects instead)."""
        width = TIER_COUNT + 1
        return [
            RegisterRead(
                self.meter_ids[_octets(row[1])],
                energy,
                self.stamp(row[0]),
                tuple(_integer(cell) for cell in row[first + 1 : first + width]),
                _integer(row[first]),
            )
            for row in rows
            for energy, first in zip(DC_ENERGIES, range(2, 2 + 4 * width, width), strict=True)
        ]


def _store(engine: Engine, batches: list[tuple[list[IntervalValue], list[RegisterRead]]]) -> int:
    with engine.begin() as conn:
        inserted = 0
        for values, closures in batches:
            inserted += ingest_intervals(conn, values).inserted
            ingest_register_reads(conn, closures)
    return inserted


def head_end(args: argparse.Namespace, url: str, master_key: bytes, pipe: Pipe) -> None:
    collect = _collect_work_orders if args.via == "work-orders" else _collect
    pipe.send(_profiled(args, "head_end", lambda: asyncio.run(collect(args, url, master_key))))


def _drivers(args: argparse.Namespace, engine: Engine, master_key: bytes) -> FieldDrivers:
    limits = SessionLimits(max_sessions=max(args.concurrency, 2), reserved_high=1)
    return FieldDrivers(
        engine,
        SecretBox(master_key),
        SessionManager(limits, load_permits(engine)),
        # A DC computes and sends a day of 100 meters in one reply; under load that takes
        # longer than an interactive read's timeout. A bulk reader negotiates big blocks.
        DriverSettings(timeout=args.timeout, max_pdu_size=args.pdu_size),
    )


def _remember_backends(engine: Engine, pids: set[int]) -> None:
    if engine.dialect.name == "postgresql":

        def remember(dbapi_connection: Any, _record: Any) -> None:
            pids.add(dbapi_connection.info.backend_pid)

        sa.event.listen(engine, "connect", remember)


class GcClock:
    """CPU time spent in the garbage collector's passes, in whichever thread ran them, and
    how many full (generation 2) passes there were."""

    def __init__(self) -> None:
        self.cpu_s = 0.0
        self.full = 0
        self._began = threading.local()

    def __enter__(self) -> GcClock:
        gc.callbacks.append(self._note)
        return self

    def __exit__(self, *_: object) -> None:
        gc.callbacks.remove(self._note)

    def _note(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._began.cpu = time.thread_time()
            return
        self.cpu_s += time.thread_time() - getattr(self._began, "cpu", time.thread_time())
        self.full += info["generation"] == 2


async def _collect_work_orders(
    args: argparse.Namespace, url: str, master_key: bytes
) -> dict[str, Any]:
    """The scheduler's collection entries (all at local midnight, lookback one day) create
    one daily-closure and one load-profile order per concentrator (and one measurand order
    with ``--measurands``); a worker runs them with
    the collection executors, ``--concurrency`` at a time. The head-end clock stands at the
    simulation's start (the midnight closing the day), so every order reads that day."""
    engine = create_engine(url)
    pids: set[int] = set()
    _remember_backends(engine, pids)
    moments = [args.now - timedelta(hours=1)]  # the schedules are added before midnight
    queue = WorkOrderQueue(engine, load_policies(), clock=lambda: moments[0])
    scheduler = Scheduler(queue)
    add_collection_schedules(
        scheduler,
        daily_closure_cron="0 0 * * *",
        load_profile_cron="0 0 * * *",
        measurands_cron="0 0 * * *" if args.measurands else None,
        time_zone=args.time_zone,
        lookback_days=1,
    )
    moments[0] = args.now
    registry = ExecutorRegistry()
    register_field_executors(
        registry, FieldContext(_drivers(args, engine, master_key), now=lambda: moments[0])
    )
    worker = Worker(
        queue,
        registry,
        WorkerConfig(
            name="h7b-fleet-day",
            max_in_flight=args.concurrency,
            poll_interval=0.05,
            lease_for=timedelta(hours=1),
        ),
    )
    settle_heap()  # as `smmc worker` does
    wall, cpu, loop_cpu = time.perf_counter(), _cpu(), time.thread_time()
    with GcClock() as collector:
        batches = scheduler.run_due()
        await worker.run_until_idle()
    elapsed, used = time.perf_counter() - wall, _cpu() - cpu
    loop_used = time.thread_time() - loop_cpu
    server_cpu = _backend_cpu(pids)
    w = work_orders.c
    with engine.connect() as conn:
        by_state = sa.select(w.state, sa.func.count()).where(w.batch_id.in_(batches))
        states = {str(state): int(n) for state, n in conn.execute(by_state.group_by(w.state))}
        stored = conn.execute(
            sa.select(sa.func.count()).select_from(interval_readings)
        ).scalar_one()
    engine.dispose()
    return {
        "via": "work orders (scheduler + worker + collection executors)",
        "wall_s": round(elapsed, 1),
        "cpu_s": round(used, 1),
        "event_loop_cpu_s": round(loop_used, 1),
        "threads_cpu_s": round(used - loop_used, 1),
        "gc_cpu_s": round(collector.cpu_s, 1),
        "gc_full_passes": collector.full,
        "server_cpu_s": None if server_cpu is None else round(server_cpu, 1),
        "peak_rss_mib": round(_peak_mib()),
        "orders": states,
        "inserted": stored,
    }


async def _collect(args: argparse.Namespace, url: str, master_key: bytes) -> dict[str, Any]:
    engine = create_engine(url)
    tally = Tally()
    _remember_backends(engine, tally.backend_pids)
    with engine.connect() as conn:
        dcs = list(conn.execute(sa.select(concentrators.c.id)).scalars())
        serials = {
            serial.encode("ascii"): meter_id
            for meter_id, serial in conn.execute(sa.select(meters.c.id, meters.c.serial_number))
        }
    drivers = _drivers(args, engine, master_key)
    start, end = local_day_bounds(args.day, args.time_zone)
    queue: list[tuple[list[IntervalValue], list[RegisterRead]]] = []
    lock = threading.Lock()
    writes: list[asyncio.Future[int]] = []
    semaphore = asyncio.Semaphore(args.concurrency)

    def write(batches: list[tuple[list[IntervalValue], list[RegisterRead]]]) -> int:
        with lock:  # one writer at a time (SQLite has one anyway)
            began, cpu = time.perf_counter(), time.thread_time()
            inserted = _store(engine, batches)
            tally.store_s += time.perf_counter() - began
            tally.store_cpu_s += time.thread_time() - cpu
            return inserted

    async def one(dc_id: int) -> None:
        async with semaphore:
            began = time.perf_counter()
            async with drivers.concentrator(dc_id) as session:
                lp = await session.client.read_profile(
                    COLLECTED_LOAD_PROFILE, start + timedelta(seconds=1), end
                )
                daily = await session.client.read_profile(
                    COLLECTED_DAILY, end, end + timedelta(minutes=5)
                )
            tally.read_s += time.perf_counter() - began
        decode_began = time.process_time()
        decoder = Decoder(serials)
        values = decoder.load_profile(lp)
        closures = decoder.closures(daily)
        tally.decode_cpu_s += time.process_time() - decode_began
        tally.rows += len(lp) + len(daily)
        tally.intervals += len(values)
        tally.closures += len(closures)
        tally.concentrators += 1
        if tally.concentrators % args.progress_every == 0:
            print(
                f"progress: {tally.concentrators}/{len(dcs)} DCs, {tally.intervals:,} values "
                f"in {time.perf_counter() - wall:.0f} s wall, {_cpu() - cpu:.0f} s CPU, "
                f"load {os.getloadavg()[0]:.1f}",
                file=sys.stderr,
                flush=True,
            )
        queue.append((values, closures))
        if len(queue) >= args.dcs_per_transaction:
            batches = queue[:]
            queue.clear()
            # Back-pressure: at most two transactions waiting, so memory stays bounded
            # when storing is slower than reading.
            while sum(not w.done() for w in writes) >= 2:
                await asyncio.wait(
                    [w for w in writes if not w.done()], return_when=asyncio.FIRST_COMPLETED
                )
            writes.append(asyncio.ensure_future(asyncio.to_thread(write, batches)))

    wall, cpu = time.perf_counter(), _cpu()
    await asyncio.gather(*(one(dc_id) for dc_id in dcs))
    if queue:
        writes.append(asyncio.ensure_future(asyncio.to_thread(write, queue[:])))
    tally.inserted = sum(await asyncio.gather(*writes))
    elapsed, used = time.perf_counter() - wall, _cpu() - cpu
    server_cpu = _backend_cpu(tally.backend_pids)
    engine.dispose()
    return {
        "via": "direct driver calls",
        "wall_s": round(elapsed, 1),
        "cpu_s": round(used, 1),
        "server_cpu_s": None if server_cpu is None else round(server_cpu, 1),
        "peak_rss_mib": round(_peak_mib()),
        "concentrators": tally.concentrators,
        "profile_rows": tally.rows,
        "interval_values": tally.intervals,
        "inserted": tally.inserted,
        "closures": tally.closures,
        "read_wait_s_summed": round(tally.read_s, 1),
        "decode_cpu_s": round(tally.decode_cpu_s, 1),
        "store_s": round(tally.store_s, 1),
        "store_cpu_s": round(tally.store_cpu_s, 1),
    }


def _backend_cpu(pids: set[int]) -> float | None:
    if not pids:
        return None
    total = 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


# -- orchestration -------------------------------------------------------------------------


def provision(url: str, box: SecretBox, args: argparse.Namespace, directory: Path) -> float:
    began = time.perf_counter()
    plan = make_fleet(args).build(args.now)
    engine = create_engine(url)
    upgrade(engine)
    files = write_provisioning_files(plan, directory / "provisioning")
    for path in import_order(list(files.values())):
        result = import_file(engine, box, path, ImportOptions(CHILE, directory / "reports"))
        if result.fatal or result.rejected:
            raise SystemExit(f"{path.name}: {result.fatal or result.issues}")
    if args.load_profile is not None:
        with engine.begin() as conn:
            for meter_id in conn.execute(sa.select(meters.c.id)).scalars().all():
                assign_energy_profiles(
                    conn,
                    meter_id,
                    daily_closure=DEFAULT_DAILY_CLOSURE_PROFILE.name,
                    load_profile=args.load_profile,
                )
    engine.dispose()
    return time.perf_counter() - began


def check(url: str, via: str) -> dict[str, int]:
    """What the store holds, and the closures expected: the direct reads store the four
    energies of every meter, the executors those the daily-closure profile asks per meter
    type (every meter has the default one, assigned or not)."""
    engine = create_engine(url)
    with engine.connect() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(interval_readings))
        closures = conn.execute(sa.select(sa.func.count()).select_from(register_reads))
        counts = {"stored_intervals": stored.scalar_one(), "stored_closures": closures.scalar_one()}
        kinds = sa.select(meters.c.meter_type, sa.func.count()).group_by(meters.c.meter_type)
        types = conn.execute(kinds).all()
    engine.dispose()
    counts["expected_closures"] = sum(
        n * (4 if via == "direct" else len(DEFAULT_DAILY_CLOSURE_PROFILE.energies(kind)))
        for kind, n in ((k if k == "polyphase" else "monophase", n) for k, n in types)
    )
    return counts


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    database = None
    if args.backend == "sqlite":
        url = f"sqlite:///{workdir / 'fleet.db'}"
    else:
        database = f"smmc_h7b_fleet_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        url = f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{database}"
    master_key = os.urandom(32)
    spawn = multiprocessing.get_context("spawn")
    try:
        setup_s = provision(url, SecretBox(master_key), args, workdir)
        sims = []
        for share in range(args.simulators):
            sim_end, sim_pipe = spawn.Pipe()
            sim = spawn.Process(target=simulator, args=(args, share, sim_pipe), daemon=True)
            sim.start()
            sim_pipe.close()  # only the child's copy stays open: its death ends recv()
            sims.append((sim, sim_end))
        for _, sim_end in sims:
            if sim_end.recv() != "ready":
                raise SystemExit("a simulator did not start")
        load_before = os.getloadavg()[0]
        he_end, he_pipe = spawn.Pipe()
        began = time.perf_counter()
        he = spawn.Process(target=head_end, args=(args, url, master_key, he_pipe), daemon=True)
        he.start()
        he_pipe.close()
        try:
            collected = he_end.recv()
        except EOFError:
            raise SystemExit("the head-end process failed (its traceback is above)") from None
        finally:
            for _, sim_end in sims:
                sim_end.send("stop")
        total_s = time.perf_counter() - began
        he.join()
        simulated = [sim_end.recv() for _, sim_end in sims]
        for sim, _ in sims:
            sim.join()
        counts = check(url, args.via)
    finally:
        if database is not None:
            with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    # The direct reads store the 4 energies; the collection executors store what each
    # meter's energy profiles ask for (the default "LP Active": A+ only).
    profile = LOAD_PROFILE_PROFILES.get(args.load_profile or "", DEFAULT_LOAD_PROFILE_PROFILE)
    channels = 4 if args.via == "direct" else len(profile.energies) + (2 if args.measurands else 0)
    expected = args.meters * 96 * channels
    if counts["stored_intervals"] != collected["inserted"]:
        raise SystemExit(f"stored {counts} but the head-end inserted {collected['inserted']}")
    return {
        "backend": args.backend,
        "meters": args.meters,
        "day": args.day.isoformat(),
        "setup_provisioning_s": round(setup_s, 1),
        "load_average_before": round(load_before, 1),
        "load_average_after": round(os.getloadavg()[0], 1),
        "fleet_day_wall_s": round(total_s, 1),
        "head_end": collected,
        "simulators": [{k: round(v, 1) for k, v in one.items()} for one in simulated],
        "load_profile": profile.name if args.via == "work-orders" else "4 channels (direct)",
        **counts,
        "expected_intervals": expected,
        "complete": counts["stored_intervals"] == expected
        and counts["stored_closures"] == counts["expected_closures"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=10_000)
    parser.add_argument("--per-concentrator", type=int, default=100)
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--concurrency", type=int, default=4, help="DCs read at a time")
    parser.add_argument("--simulators", type=int, default=2, help="simulator processes")
    parser.add_argument(
        "--via",
        choices=["work-orders", "direct"],
        default="direct",
        help="scheduler + worker + collection executors, or the driver calls directly",
    )
    parser.add_argument(
        "--load-profile",
        choices=sorted(LOAD_PROFILE_PROFILES),
        help="assign this load-profile profile to every meter (with --via work-orders)",
    )
    parser.add_argument(
        "--measurands",
        action="store_true",
        help="keep the concentrators' measurand entry (with --via work-orders)",
    )
    parser.add_argument("--dcs-per-transaction", type=int, default=10)
    parser.add_argument("--timeout", type=float, default=300.0, help="DLMS reply timeout, s")
    parser.add_argument("--pdu-size", type=int, default=65535, help="client max PDU size")
    parser.add_argument("--host", default="127.84.0.1", help="host of every concentrator")
    parser.add_argument("--first-port", type=int, default=24000)
    parser.add_argument("--history-days", type=int, default=2)
    parser.add_argument("--workdir", type=Path, help="keep the database here (default: temp)")
    parser.add_argument("--progress-every", type=int, default=50, help="DCs between reports")
    parser.add_argument("--profile", type=Path, help="write each process's cProfile stats here")
    args = parser.parse_args()
    args.time_zone = default_fleet().concentrators.time_zone
    # The day collected is the latest complete local day; "now" is 10 minutes after it.
    today = to_local(datetime.now(UTC), args.time_zone).date()
    args.day = today - timedelta(days=1)
    args.now = local_day_bounds(today, args.time_zone)[0] + timedelta(minutes=10)
    print(
        f"# {platform.node()} Python {platform.python_version()} {os.cpu_count()} CPUs "
        f"load {os.getloadavg()[0]:.1f} · {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        result = run(args, args.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="h7b-fleet-") as tmp:
            result = run(args, Path(tmp))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
