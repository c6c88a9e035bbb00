"""Bulk ingest benchmark: load-profile values through `smmc.store.readings.ingest_intervals`
on SQLite (executemany) and PostgreSQL (COPY into a staging table, day partitions).

    python benchmarks/readings_ingest.py --meters 10000 --days 1 --backend both

Values are 96 quarter hours × 4 channels per meter and day, ingested in batches of
``--batch-meters`` meters, one transaction each; a second pass offers the same values again
(the idempotent path: every value is a duplicate). Only the ingest calls are timed, not the
generation of the values. Each backend runs in its own process so its peak RSS is its own.

The machine is shared, so besides wall time the benchmark reports CPU time: this process's
(``time.process_time``) and, on PostgreSQL, the server backend's (from /proc, the server
runs on the same machine); ``cpu_values_per_s`` divides by their sum.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

import psycopg
import sqlalchemy as sa

from smmc.domain.readings import Energy, interval_type
from smmc.domain.time import interval_ends
from smmc.store.db import create_engine
from smmc.store.migrate import upgrade
from smmc.store.readings import IntervalValue, ingest_intervals
from smmc.store.tables import concentrators, meters

POSTGRES_ADMIN_URL = os.environ.get(
    "SMMC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TZ = "America/Santiago"
FIRST_DAY = date(2026, 5, 11)
CHANNELS = [interval_type(e).id for e in Energy]


def _values(meter_ids: list[int], day: date) -> list[IntervalValue]:
    ends = interval_ends(day, TZ)
    return [
        IntervalValue(m, t, end, float((m * 7 + n * 13 + t) % 900))
        for m in meter_ids
        for t in CHANNELS
        for n, end in enumerate(ends)
    ]


def _backend_cpu(conn: sa.Connection) -> float:
    """CPU seconds used so far by the PostgreSQL backend serving ``conn`` (same machine)."""
    pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_one(
    backend: str, meter_count: int, days: int, batch: int, workdir: Path
) -> dict[str, object]:
    database = None
    if backend == "sqlite":
        url = f"sqlite:///{workdir / 'bench.db'}"
    else:
        database = f"smmc_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        url = f"{POSTGRES_ADMIN_URL.rsplit('/', 1)[0]}/{database}"
    engine = create_engine(url)
    try:
        upgrade(engine)
        with engine.begin() as conn:
            dc = conn.execute(
                concentrators.insert()
                .values(name="TD-BENCH", time_zone=TZ)
                .returning(concentrators.c.id)
            ).scalar_one()
            conn.execute(
                meters.insert(),
                [
                    {"serial_number": f"BENCH{n:08d}", "concentrator_id": dc, "commissioned": True}
                    for n in range(meter_count)
                ],
            )
            ids = list(conn.execute(sa.select(meters.c.id).order_by(meters.c.id)).scalars())
        timings = {"first": 0.0, "again": 0.0}
        cpu = {"first": 0.0, "again": 0.0}
        offered = inserted = 0
        for day_number in range(days):
            day = date.fromordinal(FIRST_DAY.toordinal() + day_number)
            for start in range(0, len(ids), batch):
                values = _values(ids[start : start + batch], day)
                for label in ("first", "again"):
                    began, began_cpu = time.perf_counter(), time.process_time()
                    with engine.begin() as conn:
                        server = _backend_cpu(conn) if database else 0.0
                        result = ingest_intervals(conn, values)
                        server = _backend_cpu(conn) - server if database else 0.0
                    timings[label] += time.perf_counter() - began
                    cpu[label] += time.process_time() - began_cpu + server
                    if label == "first":
                        offered += result.offered
                        inserted += result.inserted
        with engine.connect() as conn:
            stored = conn.execute(sa.text("SELECT count(*) FROM interval_readings")).scalar()
    finally:
        engine.dispose()
        if database is not None:
            with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    if stored != offered or inserted != offered:
        raise SystemExit(f"{backend}: offered {offered}, inserted {inserted}, stored {stored}")
    return {
        "backend": backend,
        "meters": meter_count,
        "days": days,
        "values": offered,
        "first_s": round(timings["first"], 2),
        "values_per_s": round(offered / timings["first"]),
        "cpu_s": round(cpu["first"], 2),
        "cpu_values_per_s": round(offered / cpu["first"]),
        "duplicates_s": round(timings["again"], 2),
        "duplicates_per_s": round(offered / timings["again"]),
        "duplicates_cpu_s": round(cpu["again"], 2),
        "load_average": round(os.getloadavg()[0], 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--batch-meters", type=int, default=2_500)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child or args.backend != "both":
        with tempfile.TemporaryDirectory() as tmp:
            result = run_one(args.backend, args.meters, args.days, args.batch_meters, Path(tmp))
        print(json.dumps(result))
        return
    print(f"# {platform.node()} Python {platform.python_version()} load {os.getloadavg()[0]:.1f}")
    for backend in ("sqlite", "postgresql"):
        command = [
            sys.executable,
            __file__,
            "--backend",
            backend,
            "--meters",
            str(args.meters),
            "--days",
            str(args.days),
            "--batch-meters",
            str(args.batch_meters),
            "--child",
        ]
        print(subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
