"""Events benchmark (issue 6): decode + store + outbox throughput, and a last-gasp storm.

    python benchmarks/events.py --events 50000 --storm 100000 [--postgres URL]

1. **Throughput**: N meter alarm pushes (wrapper + DataNotification, built by the
   simulator's ``alarm_notification``, each raising PUP on a distinct registered meter) are
   queued on a running ``SpontaneousListener`` (no sockets) and decoded and written by its
   writer in batches of up to 5,000 - raw message, event, last status words, outage membership and
   outbox row in one transaction per batch, on two lanes on PostgreSQL. Rates: events per
   second of wall time and of the benchmark process's CPU time.
2. **Storm**: a simulated fleet of 100 concentrators of 1,000 meters (each DC on its own
   transformer) in a separate simulator process loses supply: every meter's last gasp (PUP)
   is found by its DC's own alarm scan (``ConcentratorServer.new_alarms``, worked out before
   the clock starts: the simulator computes ~1 ms of meter model per meter), then all 100
   DCs relay theirs at once, one TCP connection each (``relay_alarms``), to a running
   ``SpontaneousListener``. Reported: time from the first relay to the first outage incident
   committed, time to store everything, and the counts that prove nothing was lost
   (messages, PUP events, outbox rows, incident members, one incident per transformer).

Runs on a fresh SQLite file and, if reachable, a fresh PostgreSQL database.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import multiprocessing
import os
import platform
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any, Literal

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from smmc.events.listener import Received, SpontaneousListener
from smmc.process import settle_heap
from smmc.sim.clock import SimClock
from smmc.sim.concentrator import ConcentratorServer, HeadEndAddress, alarm_notification
from smmc.sim.fleet import default_fleet
from smmc.sim.meter_device import MeterDevices
from smmc.sim.meter_model import StatusWords
from smmc.store import tables as t
from smmc.store.db import create_engine
from smmc.store.events import Applied, default_catalog
from smmc.store.migrate import upgrade

BATCH = 5000
STAMP = datetime(2026, 4, 10, 12, 0, 0)
NOW = datetime(2026, 4, 10, 15, 0, tzinfo=UTC)


def serial(dc: int, meter: int) -> str:
    return f"BENCH{dc:04d}M{meter:05d}"


def push(dc: int, meter: int) -> bytes:
    """A relayed alarm with PUP set, as the simulator's DCs send it."""
    return alarm_notification(serial(dc, meter), meter + 1, StatusWords(normal1=1), STAMP)


Layout = list[tuple[str, str, list[str]]]
"""Per concentrator: its name, its serial and its meters' serials."""


def provision(engine: Engine, layout: Layout) -> None:
    """Each concentrator on its own transformer, with its meters."""
    with engine.begin() as conn:
        sub = conn.execute(
            t.substations.insert().values(name="SE-BENCH").returning(t.substations.c.id)
        ).scalar_one()
        for number, (name, dc_serial, meters) in enumerate(layout):
            tr = conn.execute(
                t.transformers.insert()
                .values(code=f"TR-{number}", substation_id=sub)
                .returning(t.transformers.c.id)
            ).scalar_one()
            dc_id = conn.execute(
                t.concentrators.insert()
                .values(name=name, serial_number=dc_serial, transformer_id=tr)
                .returning(t.concentrators.c.id)
            ).scalar_one()
            conn.execute(
                t.meters.insert(),
                [{"serial_number": meter, "concentrator_id": dc_id} for meter in meters],
            )


@contextmanager
def database(kind: str, postgres: str) -> Iterator[Engine | None]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            engine = create_engine(f"sqlite:///{tmp}/bench.db")
            upgrade(engine)
            yield engine
            engine.dispose()
        return
    name = f"smmc_bench_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(postgres, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL not reachable ({exc}); skipped", file=sys.stderr)
        yield None
        return
    engine = create_engine(f"{postgres.rsplit('/', 1)[0]}/{name}")
    try:
        upgrade(engine)
        yield engine
    finally:
        engine.dispose()
        with psycopg.connect(postgres, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def count(engine: Engine, table: sa.Table, *where: sa.ColumnElement[bool]) -> int:
    with engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(table).where(*where)
        return int(conn.execute(query).scalar_one())


class BackendCpu:
    """CPU seconds (user + system) used by the PostgreSQL server processes that served
    ``engine``'s connections, read from ``/proc`` (the server runs on this machine)."""

    def __init__(self, engine: Engine) -> None:
        self.pids: set[int] = set()
        if engine.dialect.name == "postgresql":
            sa.event.listen(engine, "checkout", self._note)

    def _note(self, dbapi_connection: psycopg.Connection[object], *_args: object) -> None:
        self.pids.add(int(dbapi_connection.info.backend_pid))

    def seconds(self) -> float:
        ticks = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for pid in self.pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / ticks
        return total


def throughput(engine: Engine, events: int) -> dict[str, float]:
    """Events per second of wall time, of this process's CPU time and (PostgreSQL) of this
    process's plus the server backends' CPU time. The machine is shared: CPU rates are the
    ones that do not depend on the neighbours. The pushes are handed to a running
    ``SpontaneousListener`` as its sockets would (each with its own receive time), so its
    writer does the work: decoding, batches, lanes."""
    per_dc = 1000
    dcs = -(-events // per_dc)
    provision(
        engine,
        [
            (f"TD-B{dc}", f"DCB{dc:04d}", [serial(dc, m) for m in range(per_dc)])
            for dc in range(dcs)
        ],
    )
    frames = [push(n // per_dc, n % per_dc) for n in range(events)]
    now = datetime.now(UTC)
    received = [
        Received(frame, now + timedelta(microseconds=n), "tcp", "127.0.0.1", 1)
        for n, frame in enumerate(frames)
    ]
    server = BackendCpu(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
    elapsed, cpu_used, server_used = asyncio.run(_write_all(engine, received, server))
    stored = count(engine, t.events)
    outboxed = count(engine, t.outbox, t.outbox.c.kind == "event")
    if stored != events or outboxed != events:
        raise SystemExit(f"lost events: {stored} stored, {outboxed} outboxed of {events}")
    return {
        "wall": events / elapsed,
        "cpu": events / cpu_used,
        "cpu_with_server": events / (cpu_used + server_used),
        "server_cpu_s": server_used,
    }


async def _write_all(
    engine: Engine, received: list[Received], server: BackendCpu
) -> tuple[float, float, float]:
    """Wall seconds, process CPU seconds and server CPU seconds from the first message
    queued to the last one stored."""
    async with SpontaneousListener(engine, host="127.0.0.1", port=0, batch_size=BATCH) as listener:
        server_start = server.seconds()
        start = time.perf_counter()
        cpu = time.process_time()
        for item in received:
            listener.enqueue(item)
        await listener.drain()
        elapsed = time.perf_counter() - start
        cpu_used = time.process_time() - cpu
        server_used = server.seconds() - server_start
    return elapsed, cpu_used, server_used


def simulate(
    concentrators: int,
    meters: int,
    port: int,
    transport: Literal["tcp", "udp"],
    ready: Event,
    go: Event,
    out: Queue[Any],
) -> None:
    """The simulator process: every meter of the fleet loses supply; each DC's alarm scan
    finds its meters' last gasps before ``go``, then every DC relays its own at once. Puts
    the fleet's layout, then (first relay, last relay done, alarms relayed, send errors)."""

    async def main() -> None:
        base = default_fleet().sized(concentrators, meters, 0).without_faults()
        fleet = dataclasses.replace(base, time=dataclasses.replace(base.time, history_days=1))
        plan = fleet.build(NOW)
        clock = SimClock(NOW, 1.0, fleet.time.history_days)
        devices = MeterDevices(plan, clock)
        head_end = HeadEndAddress("127.0.0.1", port, transport)
        dcs = [
            ConcentratorServer(plan, spec, clock, meters=devices, port=0, head_end=head_end)
            for spec in plan.concentrators
        ]
        out.put(
            [(dc.spec.name, dc.spec.serial, [n.serial for n in dc.nodes.values()]) for dc in dcs]
        )
        for dc in dcs:
            for node in dc.nodes.values():
                dc.model(node.index).power_outage(
                    NOW - timedelta(minutes=1), NOW + timedelta(hours=1)
                )
        alarms = [dc.new_alarms() for dc in dcs]
        ready.set()
        await asyncio.to_thread(go.wait)
        start = time.perf_counter()
        await asyncio.gather(
            *(dc.relay_alarms(found) for dc, found in zip(dcs, alarms, strict=True))
        )
        errors = sum(len(dc.errors) for dc in dcs)
        out.put((start, time.perf_counter(), sum(map(len, alarms)), errors))

    asyncio.run(main())


async def storm(engine: Engine, total: int, transport: Literal["tcp", "udp"]) -> dict[str, float]:
    dcs, per_dc = 100, total // 100
    first_incident: list[float] = []

    def note_incident(applied: Applied) -> None:
        if applied.incidents_opened and not first_incident:
            first_incident.append(time.perf_counter())

    server = BackendCpu(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
    async with SpontaneousListener(
        engine, host="127.0.0.1", port=0, batch_size=BATCH, on_applied=note_incident
    ) as listener:
        context = multiprocessing.get_context("spawn")
        ready, go, out = context.Event(), context.Event(), context.Queue()
        simulator = context.Process(
            target=simulate, args=(dcs, per_dc, listener.bound_port, transport, ready, go, out)
        )
        simulator.start()
        try:
            layout = await asyncio.to_thread(out.get, True, 600)
            provision(engine, layout)
            if not await asyncio.to_thread(ready.wait, 1200):
                raise SystemExit("the simulator did not prepare its alarms")
            server_start = server.seconds()
            cpu = time.process_time()
            go.set()
            start, relayed_at, relayed, errors = await asyncio.to_thread(out.get, True, 600)
            if errors or relayed != total:
                raise SystemExit(f"the simulator relayed {relayed} of {total}, {errors} errors")
            arrived = await _arrivals(listener, total)
            await listener.drain()
            done = time.perf_counter()
            cpu_used = time.process_time() - cpu
            server_used = server.seconds() - server_start
        finally:
            go.set()
            simulator.join(60)
    counts = {
        "messages": count(engine, t.spontaneous_messages),
        "pup_events": count(engine, t.events, t.events.c.code == "3.26.0.85"),
        "event_outbox": count(engine, t.outbox, t.outbox.c.kind == "event"),
        "incidents": count(engine, t.outage_incidents),
        "members": count(engine, t.outage_members),
    }
    # Over TCP every alarm arrives; over UDP the kernel may drop datagrams before the
    # listener sees them (counted apart). Of what arrived, nothing may be lost.
    if transport == "tcp" and arrived != total:
        raise SystemExit(f"storm over TCP: {arrived} of {total} arrived")
    expected = {"messages": arrived, "pup_events": arrived, "event_outbox": arrived,
                "incidents": _feeders(engine), "members": arrived}  # fmt: skip
    if transport == "tcp" and expected["incidents"] != dcs:
        raise SystemExit(f"storm over TCP: {expected['incidents']} of {dcs} feeders heard")
    if counts != expected:
        raise SystemExit(f"storm lost data: {counts} != {expected}")
    return {
        "not_arrived": float(total - arrived),
        "sent_s": relayed_at - start,
        "first_incident_s": (first_incident[0] - start) if first_incident else float("nan"),
        "all_stored_s": done - start,
        "cpu_s": cpu_used,
        "server_cpu_s": server_used,
        **{k: float(v) for k, v in counts.items()},
    }


def _feeders(engine: Engine) -> int:
    """Concentrators (each on its own transformer) with a meter among the outage members:
    one incident each."""
    with engine.connect() as conn:
        query = sa.select(sa.func.count(sa.distinct(t.meters.c.concentrator_id))).select_from(
            t.outage_members.join(t.meters, t.meters.c.serial_number == t.outage_members.c.device)
        )
        return int(conn.execute(query).scalar_one())


async def _arrivals(listener: SpontaneousListener, total: int, quiet: float = 3.0) -> int:
    """Messages the listener received: all ``total``, or as many as came before ``quiet``
    seconds passed without one (datagrams the kernel dropped never come)."""
    seen, since = listener.received, time.perf_counter()
    while listener.received < total:
        await asyncio.sleep(0.01)
        if listener.received != seen:
            seen, since = listener.received, time.perf_counter()
        elif time.perf_counter() - since > quiet:
            break
    return listener.received


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--storm", type=int, default=100_000)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("SMMC_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )  # fmt: skip
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument(
        "--storm-transport",
        choices=["tcp", "udp"],
        default="tcp",
        help="how the simulated DCs relay the storm (udp: one datagram per alarm)",
    )
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs")
    # read once per process (a service's first batch); not part of any rate below
    default_catalog()
    settle_heap()  # as `smmc events listen` does
    for kind in ("sqlite", "postgresql"):
        if args.only and kind != args.only:
            continue
        with database(kind, args.postgres) as engine:
            if engine is None:
                continue
            rates = throughput(engine, args.events)
            server = (
                f", {rates['cpu_with_server']:,.0f}/s of client + server CPU"
                if kind == "postgresql"
                else ""
            )
            print(
                f"{kind}: {args.events} events decoded + stored + outboxed: "
                f"{rates['wall']:,.0f}/s wall, {rates['cpu']:,.0f}/s of client CPU{server} "
                f"(load average {os.getloadavg()[0]:.1f})"
            )
        with database(kind, args.postgres) as engine:
            if engine is None:
                continue
            result = asyncio.run(storm(engine, args.storm, args.storm_transport))
            print(
                f"{kind}: storm of {args.storm} last gasps relayed by the simulator's "
                f"100 DCs over {args.storm_transport.upper()}: relayed in "
                f"{result['sent_s']:.1f} s, first incident at {result['first_incident_s']:.2f} s, "
                f"all stored at {result['all_stored_s']:.1f} s (process CPU "
                f"{result['cpu_s']:.1f} s, server CPU {result['server_cpu_s']:.1f} s); "
                f"messages {result['messages']:.0f}, "
                f"PUP events {result['pup_events']:.0f}, outbox {result['event_outbox']:.0f}, "
                f"incidents {result['incidents']:.0f}, members {result['members']:.0f}; "
                f"not arrived (dropped before the listener) {result['not_arrived']:.0f}"
            )


if __name__ == "__main__":
    main()
