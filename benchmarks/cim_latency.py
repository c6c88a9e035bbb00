"""CIM latency (issue 8): SOAP disconnect → outcome on the high-priority queue, p50/p99.

    python benchmarks/cim_latency.py --requests 200 --concurrency 1
    python benchmarks/cim_latency.py --requests 200 --concurrency 8 --worker-poll 0.05

A simulated fleet (zero PLC latency) is provisioned into a fresh SQLite database (WAL) and
served from a **separate process** (``work_orders.serve``). In this process: the API
(uvicorn, authentication on, ``/cim`` with an integration token), one ``Worker`` with the
field executors, the ``OutboxPublisher`` on RabbitMQ (two fresh queues, deleted at the end)
and the Legacy simulator — its zeep client and its queue consumer. Each request is one
CreateEndDeviceControls for one meter (disconnect, then connect on the next round, so the
breaker really moves); its latency runs from just before the SOAP call to the moment the
consumer stored the outcome with the request's CorrelationID. ``--concurrency`` clients
send in parallel, each waiting for its outcome before the next request.

CPU time is the primary figure (the machine is shared): this process's CPU (API, worker,
publisher, and the Legacy simulator's client and consumer — all of the round trip but the
meters and the broker) and the simulator process's CPU, per request.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import statistics
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from work_orders import free_port_base, install_probes, make_fleet, provision, serve

from smmc.config import OutboxSettings
from smmc.domain.access import Role
from smmc.engine.activities import FieldContext, register_field_executors
from smmc.engine.executors import ExecutorRegistry
from smmc.engine.worker import Worker, WorkerConfig
from smmc.field.drivers import DriverSettings, FieldDrivers
from smmc.field.sessions import SessionLimits, SessionManager, load_permits
from smmc.integration.outbox import OutboxPublisher, PublisherTiming
from smmc.integration.soap import CimService
from smmc.sim.legacy import LegacyClient, LegacyStore, QueueConsumer, ThreadedServer
from smmc.sim.legacy import received_messages as legacy_messages
from smmc.store import tables as t
from smmc.store.secrets import SecretBox
from smmc.store.users import AccessStore
from smmc.store.work_orders import WorkOrderQueue
from smmc.web.app import create_app


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class Arrivals:
    """Wakes the waiting clients whenever the consumer stored a message, so waiting for an
    outcome costs no polling CPU; the arrival time itself is the consumer's."""

    def __init__(self, store: LegacyStore) -> None:
        self.store = store
        self.changed = threading.Condition()
        receive = store.receive

        def notify(channel: str, body: bytes, *, redelivered: bool = False) -> str | None:
            found = receive(channel, body, redelivered=redelivered)
            with self.changed:
                self.changed.notify_all()
            return found

        store.receive = notify  # type: ignore[method-assign]

    def arrived(self, correlation_id: str) -> datetime | None:
        m = legacy_messages.c
        with self.store.engine.connect() as conn:
            return conn.execute(
                sa.select(m.first_received_at).where(m.correlation_id == correlation_id).limit(1)
            ).scalar_one_or_none()

    def wait(self, correlation_id: str, timeout: float) -> datetime | None:
        deadline = time.monotonic() + timeout
        while (at := self.arrived(correlation_id)) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            with self.changed:
                self.changed.wait(min(left, 1.0))
        return at


def client_loop(
    client: LegacyClient,
    arrivals: Arrivals,
    meters: list[str],
    requests: int,
    latencies: list[float],
    soap: list[float],
    failures: list[str],
) -> None:
    """Sequential requests over ``meters`` (disconnect round, then connect round, …)."""
    for k in range(requests):
        meter = meters[k % len(meters)]
        connect = (k // len(meters)) % 2 == 1
        correlation = str(uuid.uuid4())
        sent_at = datetime.now(UTC)
        started = time.perf_counter()
        if connect:
            sent = client.connect([meter], correlation_id=correlation)
        else:
            sent = client.disconnect([meter], correlation_id=correlation)
        soap.append(time.perf_counter() - started)
        if sent.result != "OK":
            failures.append(f"{meter}: {sent.result} {sent.codes}")
            continue
        at = arrivals.wait(correlation, 120)
        if at is None:
            failures.append(f"{meter}: no outcome for {correlation}")
        else:
            latencies.append((at - sent_at).total_seconds())


async def measure(
    args: argparse.Namespace, engine: sa.Engine, box: SecretBox, workdir: Path
) -> None:
    access = AccessStore(engine)
    access.create_user("bench-legacy", Role.INTEGRATION)
    token = access.issue_token("bench-legacy", "bench")
    with engine.connect() as conn:
        serials = list(
            conn.execute(sa.select(t.meters.c.serial_number).order_by(t.meters.c.id)).scalars()
        )
    settings = OutboxSettings(
        backend="rabbitmq",
        amqp_url=args.amqp_url,
        queue_high=f"bench-cim-high-{uuid.uuid4().hex[:8]}",
        queue_normal=f"bench-cim-normal-{uuid.uuid4().hex[:8]}",
    )
    queues = {"high": settings.queue_high, "normal": settings.queue_normal}
    store = LegacyStore(workdir / "legacy.db")
    arrivals = Arrivals(store)
    consumer = QueueConsumer(store, settings.amqp_url, queues)
    await consumer.start()
    sessions = SessionManager(SessionLimits(max_sessions=32, reserved_high=1), load_permits(engine))
    drivers = FieldDrivers(engine, box, sessions, DriverSettings(gateway_timeout=60.0))
    registry = ExecutorRegistry()
    register_field_executors(registry, FieldContext(drivers))
    worker = Worker(
        WorkOrderQueue(engine),
        registry,
        WorkerConfig(name="bench", max_in_flight=32, poll_interval=args.worker_poll),
    )
    publisher = OutboxPublisher(engine, settings, timing=PublisherTiming(poll=args.publisher_poll))
    tasks = [asyncio.create_task(worker.run()), asyncio.create_task(publisher.run())]
    latencies: list[float] = []
    soap: list[float] = []
    failures: list[str] = []
    per_client = args.requests // args.concurrency
    meters_each = max(1, min(args.meters_per_client, len(serials) // args.concurrency))
    try:
        with ThreadedServer(create_app(engine, auth_required=True)).running() as server:
            legacy = [LegacyClient(server.base_url, token, store) for _ in range(args.concurrency)]
            for client in legacy:  # the WSDL is fetched once per client, before measuring
                client.service("ExecuteEndDeviceControls")
            cpu, wall = time.process_time(), time.perf_counter()
            clients = [
                threading.Thread(
                    target=client_loop,
                    args=(
                        legacy[i],
                        arrivals,
                        serials[i * meters_each : (i + 1) * meters_each],
                        per_client,
                        latencies,
                        soap,
                        failures,
                    ),
                )
                for i in range(args.concurrency)
            ]
            for thread in clients:
                thread.start()
            while any(thread.is_alive() for thread in clients):
                await asyncio.sleep(0.05)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        worker.stop()
        publisher.stop()
        await asyncio.gather(*tasks)
        await consumer.stop()
        import aio_pika

        async with await aio_pika.connect(settings.amqp_url) as connection:
            channel = await connection.channel()
            for name in queues.values():
                await channel.queue_delete(name)
    done = len(latencies)
    print(
        f"requests: {done} with an outcome of {per_client * args.concurrency}, "
        f"concurrency {args.concurrency}, worker poll {args.worker_poll} s, "
        f"publisher poll {args.publisher_poll} s"
    )
    for failure in failures[:5]:
        print(f"  failure: {failure}")
    if done:
        print(
            f"SOAP-to-outcome latency: p50 {percentile(latencies, 0.5) * 1000:.0f} ms, "
            f"p99 {percentile(latencies, 0.99) * 1000:.0f} ms, "
            f"mean {statistics.fmean(latencies) * 1000:.0f} ms, "
            f"max {max(latencies) * 1000:.0f} ms"
        )
        print(
            f"SOAP answer (OK 0.3): p50 {percentile(soap, 0.5) * 1000:.0f} ms, "
            f"p99 {percentile(soap, 0.99) * 1000:.0f} ms"
        )
        print(
            f"head-end + Legacy simulator CPU: {cpu:.2f} s, {cpu / done * 1000:.1f} ms per "
            f"request; wall {wall:.1f} s, {done / wall:.1f} requests/s"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--concentrators", type=int, default=4)
    parser.add_argument("--meters", type=int, default=10, help="meters per concentrator")
    parser.add_argument("--meters-per-client", type=int, default=5)
    parser.add_argument("--worker-poll", type=float, default=0.5, help="as in smmc demo")
    parser.add_argument("--publisher-poll", type=float, default=PublisherTiming().poll)
    parser.add_argument("--amqp-url", default=OutboxSettings().amqp_url)
    parser.add_argument(
        "--breakdown", action="store_true", help="CPU of the SOAP handler, client, store calls"
    )
    args = parser.parse_args()
    probes = install_probes() if args.breakdown else None
    if probes is not None:
        probes.wrap(CimService, "handle", "SOAP: handle request (parse, checks, submit, store)")
        probes.wrap(LegacyClient, "_call", "Legacy: zeep request and answer")
        probes.wrap(LegacyStore, "receive", "Legacy: store a received message")
        probes.wrap(OutboxPublisher, "_select", "publisher: due rows, render")
        probes.wrap(OutboxPublisher, "_settle", "publisher: mark delivered")
    fleet = make_fleet(args.concentrators, args.meters, free_port_base(args.concentrators))
    with tempfile.TemporaryDirectory(prefix="h8b-cim-bench-") as tmp:
        engine, box = provision(fleet, Path(tmp))
        context = multiprocessing.get_context("spawn")
        ready, stop, out = context.Event(), context.Event(), context.Queue()
        simulator = context.Process(target=serve, args=(fleet, 0.0, ready, stop, out))
        simulator.start()
        try:
            if not ready.wait(120):
                raise SystemExit("the simulator did not start")
            asyncio.run(measure(args, engine, box, Path(tmp)))
        finally:
            stop.set()
        _, sim_cpu = out.get(timeout=60)
        simulator.join(30)
    if probes is not None:
        for label, spent in sorted(probes.cpu.items(), key=lambda item: -item[1]):
            print(f"  {label}: {spent:.2f} s CPU in {probes.calls[label]} calls")
    print(
        f"simulator process CPU: {sim_cpu:.2f} s; machine: {platform.node()}, "
        f"{os.cpu_count()} CPU, Python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )


if __name__ == "__main__":
    main()
