"""Outbox → RabbitMQ benchmark (issue 8): messages per second with publisher confirms.

    python benchmarks/outbox_rabbitmq.py --messages 20000 [--batch 1000] [--postgres URL]

N alarm events are written to the outbox through the events layer (not timed), then the
publisher (``OutboxPublisher.drain_once``, the code ``run`` loops over) drains them into two
fresh durable queues on the broker at ``SMMC_AMQP_URL`` (default the local one): read a
batch of rows in id order, render each as a ``created EndDeviceEvents`` 61968-100 message,
publish the batch as persistent messages and await the broker's confirms together, then
mark the batch delivered in one statement. Reported per database:

- messages/s of wall time and of CPU time, the benchmark process's CPU
  (``time.process_time``: the publisher and its database driver) and the broker's
  (``beam.smp``'s utime+stime from /proc, when its pid is readable);
- the same rows rendered only (no broker, no database) and published only (pre-rendered,
  no database), to show where the time goes.

The queues are deleted at the end. Runs on a fresh SQLite file and, if reachable, a fresh
PostgreSQL database.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import aio_pika
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from events import count as count_rows  # benchmarks/events.py: same database setup
from events import database
from smmc.config import OutboxSettings
from smmc.integration.outbound import Renderer
from smmc.integration.outbox import OutboxPublisher, RabbitBackend
from smmc.store import tables as t
from smmc.store.events import METER, Occurrence, apply_events

NOW = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
TICKS = os.sysconf("SC_CLK_TCK")


def broker_pid() -> int | None:
    """beam.smp's pid (the broker's Erlang VM), if this user can see it."""
    try:
        found = subprocess.run(
            ["pgrep", "-f", "beam.smp.*rabbit"], capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    pids = [int(p) for p in found.stdout.split()]
    return pids[0] if pids else None


def cpu_of(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS


def fill(engine: Engine, count: int) -> None:
    """Alarm events of distinct meters, one in five on the normal queue."""
    for start in range(0, count, 5000):
        with engine.begin() as conn:
            apply_events(
                conn,
                occurrences=[
                    Occurrence(
                        METER,
                        f"B{n:07d}",
                        "METER_COMMISSIONED" if n % 5 == 0 else "WO_OK",
                        NOW + timedelta(milliseconds=n),
                        "bench",
                    )
                    for n in range(start, min(count, start + 5000))
                ],
                now=NOW,
            )


async def delete_queues(settings: OutboxSettings) -> None:
    async with await aio_pika.connect(settings.amqp_url, timeout=30) as connection:
        channel = await connection.channel()
        for name in (settings.queue_high, settings.queue_normal):
            await channel.queue_delete(name)


def line(label: str, count: int, wall: float, cpu: float, broker: float | None) -> None:
    broker_text = "n/a" if broker is None else f"{broker:6.2f} s ({count / broker:8,.0f}/s)"
    print(
        f"  {label:<28} {count:>7,} msgs  wall {wall:6.2f} s ({count / wall:8,.0f}/s)  "
        f"cpu {cpu:6.2f} s ({count / cpu:8,.0f}/s)  broker cpu {broker_text}"
    )


async def run(engine: Engine, settings: OutboxSettings, count: int) -> None:
    pid = broker_pid()
    with engine.connect() as conn:
        rows = [
            dict(r) for r in conn.execute(sa.select(t.outbox).order_by(t.outbox.c.id)).mappings()
        ]
    renderer = Renderer()

    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    rendered = [renderer.render(row) for row in rows]
    line("render only", count, time.perf_counter() - wall0, time.process_time() - cpu0, None)

    # publish only: the pre-rendered messages, windows of one batch, confirms awaited
    scratch = OutboxSettings(
        queue_high=f"{settings.queue_high}-scratch",
        queue_normal=f"{settings.queue_normal}-scratch",
        amqp_url=settings.amqp_url,
    )
    backend = RabbitBackend(
        scratch.amqp_url, {"high": scratch.queue_high, "normal": scratch.queue_normal}
    )
    await backend.open()
    broker0 = cpu_of(pid)
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    for start in range(0, count, settings.batch_size):
        result = await backend.publish(rendered[start : start + settings.batch_size])
        assert result.unavailable is None, result.unavailable
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    broker1 = cpu_of(pid)
    await backend.close()
    await delete_queues(scratch)
    line(
        "publish only (confirms)",
        count,
        wall,
        cpu,
        None if broker0 is None or broker1 is None else broker1 - broker0,
    )

    publisher = OutboxPublisher(engine, settings)
    await publisher.backend.open()
    broker0 = cpu_of(pid)
    cpu0 = time.process_time()
    wall0 = time.perf_counter()
    while await publisher.drain_once():
        pass
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    broker1 = cpu_of(pid)
    await publisher.backend.close()
    left = count_rows(engine, t.outbox, t.outbox.c.delivered_at.is_(None))
    assert left == 0, f"{left} rows still pending"
    assert publisher.delivered == count, publisher.delivered
    line(
        "outbox → RabbitMQ",
        count,
        wall,
        cpu,
        None if broker0 is None or broker1 is None else broker1 - broker0,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    args = parser.parse_args()
    print(
        f"outbox → RabbitMQ, {args.messages:,} messages, batch {args.batch}; "
        f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]}, aio-pika {aio_pika.__version__}, "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, load average {os.getloadavg()[0]:.1f}"
    )
    for kind in ("sqlite", "postgresql"):
        if args.only and kind != args.only:
            continue
        with database(kind, args.postgres) as engine:
            if engine is None:
                continue
            tag = uuid.uuid4().hex[:8]
            settings = OutboxSettings(
                backend="rabbitmq",
                amqp_url=os.environ.get("SMMC_AMQP_URL", OutboxSettings().amqp_url),
                queue_high=f"h8a-bench-{tag}-high",
                queue_normal=f"h8a-bench-{tag}-normal",
                batch_size=args.batch,
            )
            fill(engine, args.messages)
            print(f"{kind} (load average {os.getloadavg()[0]:.1f}):")
            try:
                asyncio.run(run(engine, settings, args.messages))
            finally:
                asyncio.run(delete_queues(settings))


if __name__ == "__main__":
    main()
