"""Web UI benchmark (issue 9): server-side render time of the operator pages.

    python benchmarks/ui_render.py --meters 100000 --repeat 30
    python benchmarks/ui_render.py --url postgresql://postgres@127.0.0.1:5432/smmc_ui_bench

Fills a database (a fresh SQLite file by default, or the PostgreSQL database named by
``--url``, created if missing and filled if empty) with ``--meters`` meters on their own
service points behind ``meters / 100`` concentrators, one MeterSync batch over the whole
fleet of which half the orders have ended (so the pending and the completed views each count
and page through 50,000 orders), ``--events`` meter events over the last day and
``--history-events`` closed ones over the 30 days before (a control room's database has a
history, and a window must not read it); then asks
the app in process (an ASGI client, logged in as an operator, authentication enforced) for
each page ``--repeat`` times after one warm-up request.

Per request it records the wall time through the app (routing, authentication, queries,
rendering; no network, no browser) and the CPU time of this process (the app, the client
and, on SQLite, the database engine). On PostgreSQL it also reads the CPU time the
database's server processes of this benchmark spent (``/proc/<pid>/stat``, same host).
The machine is shared, so CPU time is the steadier figure.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine, make_url

from smmc.domain.access import Role
from smmc.domain.work_orders import ActivityType, State, View
from smmc.store import tables as t
from smmc.store.db import create_engine, normalise_url
from smmc.store.migrate import upgrade
from smmc.store.users import AccessStore
from smmc.store.work_orders import TargetRef, WorkOrderQueue
from smmc.web.app import create_app

PAGES = {
    "works view (no view, first page)": "/works",
    **{f"works view `{view.value}`": f"/works?view={view.value}" for view in View},
    "works view `pending`, page 500": "/works?view=pending&page=500",
    "works view (filter by concentrator)": "/works?concentrator=DC-00042",
    "meter list (first page)": "/assets/meters",
    "meter list (serial search)": "/assets/meters?q=UAA0042",
    "meter list (comuna filter)": "/assets/meters?comuna=Comuna%207",
    "concentrator list": "/assets/concentrators",
    "service point list": "/assets/service-points",
    "control room (24 h)": "/control-room",
    "map data: meters for the map page": "/map/meters.json",
    "map data: meters GeoJSON (REST API)": "/api/map/meters",
    "map data: concentrators GeoJSON": "/api/map/concentrators",
}
CHUNK = 10_000
APPLICATION_NAME = "smmc-ui-bench"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _chunks(rows: list[dict[str, object]]) -> list[list[dict[str, object]]]:
    return [rows[i : i + CHUNK] for i in range(0, len(rows), CHUNK)]


def _events(
    rng: random.Random, meter_count: int, count: int, newest: datetime, span: timedelta
) -> list[dict[str, object]]:
    """``count`` meter events opened over ``span`` before ``newest``; a third still active
    among the recent ones, the older ones all closed."""
    dcs = max(1, meter_count // 100)
    recent = span <= timedelta(days=1)
    seconds = int(span.total_seconds())
    return [
        {
            "message_id": str(uuid.uuid4()),
            "device_kind": "meter",
            "device": f"UAA{m:07d}",
            "meter_id": m,
            "concentrator_id": 1 + m % dcs,
            "key": f"k{i}" if recent else f"h{i}",
            "code": rng.choice(["3.26.0.185", "3.12.0.257", "3.26.0.216"]),
            "acronym": "EVT",
            "description": "benchmark event",
            "severity": 2,
            "priority": rng.choice(["HIGH", "MEDIUM", "LOW"]),
            "category": "power",
            "routing": "control_room",
            "is_active": recent and i % 3 == 0,
            "opened_at": newest - timedelta(seconds=rng.randrange(seconds)),
            "source": "benchmark",
        }
        for i, m in enumerate(rng.choices(range(1, meter_count + 1), k=count))
    ]


def fill(engine: Engine, meter_count: int, event_count: int, history_count: int) -> None:
    upgrade(engine)
    rng = random.Random(9)
    dcs = max(1, meter_count // 100)
    since = datetime(2025, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            t.concentrators.insert(),
            [
                {
                    "name": f"DC-{i:05d}",
                    "comuna": f"Comuna {i % 40}",
                    "reachable": i % 7 != 0,
                    "latitude": -33.45 + rng.gauss(0, 0.1),
                    "longitude": -70.66 + rng.gauss(0, 0.1),
                }
                for i in range(1, dcs + 1)
            ],
        )
        points = [
            {
                "name": f"POD-{i:07d}",
                "comuna": f"Comuna {i % 40}",
                "latitude": -33.45 + rng.gauss(0, 0.1),
                "longitude": -70.66 + rng.gauss(0, 0.1),
            }
            for i in range(1, meter_count + 1)
        ]
        for chunk in _chunks(points):
            conn.execute(t.service_points.insert(), chunk)
        fleet = [
            {
                "serial_number": f"UAA{i:07d}",
                "concentrator_id": 1 + i % dcs,
                "commissioned": i % 5 != 0,
                "reachable": i % 3 != 0,
                "in_dc_table": i % 4 != 0,
            }
            for i in range(1, meter_count + 1)
        ]
        for chunk in _chunks(fleet):
            conn.execute(t.meters.insert(), chunk)
        links = [
            {"meter_id": i, "service_point_id": i, "valid_from": since}
            for i in range(1, meter_count + 1)
        ]
        for chunk in _chunks(links):
            conn.execute(t.meter_links.insert(), chunk)
        now = datetime.now(UTC)
        happened = _events(rng, meter_count, event_count, now, timedelta(days=1))
        happened += _events(
            rng, meter_count, history_count, now - timedelta(days=1), timedelta(days=30)
        )
        for chunk in _chunks(happened):
            conn.execute(t.events.insert(), chunk)
    WorkOrderQueue(engine).submit(
        ActivityType.METER_SYNC,
        [TargetRef(meter=f"UAA{i:07d}") for i in range(1, meter_count + 1)],
    )
    wo = t.work_orders.c
    with engine.begin() as conn:  # every other order ended in the last day
        conn.execute(
            t.work_orders.update()
            .where(wo.id % 2 == 0)
            .values(state=State.COMPLETED.value, ended_at=datetime.now(UTC) - timedelta(hours=3))
        )
    AccessStore(engine).create_user("bench", Role.OPERATOR, "benchmark-password")
    if engine.dialect.name == "postgresql":  # what autovacuum does soon after a bulk load
        with engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")


def _backend_cpu(admin: Engine | None) -> Callable[[], float]:
    """Seconds of CPU spent so far by the PostgreSQL processes serving the benchmark's
    connections (0 on SQLite, whose engine runs inside this process)."""
    if admin is None:
        return lambda: 0.0

    def read() -> float:
        with admin.connect() as conn:
            pids = conn.execute(
                sa.text("SELECT pid FROM pg_stat_activity WHERE application_name = :name"),
                {"name": APPLICATION_NAME},
            ).scalars()
            ticks = 0
            for pid in pids:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / CLOCK_TICKS

    return read


@dataclass
class Timing:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    database_cpu: float = 0.0


def measure(engine: Engine, admin: Engine | None, repeat: int) -> dict[str, Timing]:
    app = create_app(engine, auth_required=True)
    timings = {name: Timing() for name in PAGES}
    database_cpu = _backend_cpu(admin)
    with TestClient(app, base_url="https://testserver") as client:
        form = client.get("/login").text
        csrf = form.split('name="csrf_token" value="')[1].split('"')[0]
        client.post(
            "/login",
            data={"csrf_token": csrf, "username": "bench", "password": "benchmark-password"},
        )
        for name, path in PAGES.items():
            client.get(path)  # warm: templates compiled, statements cached
            timing = timings[name]
            server_before = database_cpu()
            for _ in range(repeat):
                started, cpu_started = time.perf_counter(), time.process_time()
                response = client.get(path)
                timing.cpu.append(time.process_time() - cpu_started)
                timing.wall.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise SystemExit(f"{path}: HTTP {response.status_code}")
            timing.database_cpu = (database_cpu() - server_before) / repeat
    return timings


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def _postgres_database(url: str) -> Engine:
    """The admin engine of a PostgreSQL URL; creates the named database if missing."""
    target = make_url(normalise_url(url))
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(
            sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": target.database}
        ).first()
        if exists is None:
            conn.exec_driver_sql(f'CREATE DATABASE "{target.database}"')
    return admin


def _is_filled(engine: Engine) -> bool:
    if not sa.inspect(engine).has_table("meters"):
        return False
    with engine.connect() as conn:
        return conn.execute(sa.select(t.meters.c.id).limit(1)).first() is not None


def run(url: str, args: argparse.Namespace) -> None:
    admin = _postgres_database(url) if url.startswith("postgres") else None
    if admin is not None:
        url = (
            make_url(normalise_url(url))
            .update_query_dict({"application_name": APPLICATION_NAME})
            .render_as_string(hide_password=False)
        )
    engine = create_engine(url)
    if not _is_filled(engine):
        started = time.perf_counter()
        fill(engine, args.meters, args.events, args.history_events)
        print(f"filled {args.meters:,} meters in {time.perf_counter() - started:.1f} s")
    upgrade(engine)  # a kept database gets the indexes of newer migrations
    timings = measure(engine, admin, args.repeat)
    engine.dispose()
    print(
        f"{engine.dialect.name}, python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.1f}, {args.repeat} requests per page"
    )
    server = " | database CPU (mean)" if admin is not None else ""
    print(f"| page | CPU median | CPU p95 | wall median | wall p95{server} |")
    print("|---|---|---|---|---|" + ("---|" if admin is not None else ""))
    for name, timing in timings.items():
        extra = f" | {timing.database_cpu * 1000:.0f} ms" if admin is not None else ""
        print(
            f"| {name} | {statistics.median(timing.cpu) * 1000:.0f} ms "
            f"| {p95(timing.cpu) * 1000:.0f} ms "
            f"| {statistics.median(timing.wall) * 1000:.0f} ms "
            f"| {p95(timing.wall) * 1000:.0f} ms{extra} |"
        )
    if admin is not None:
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=20_000, help="over the last day")
    parser.add_argument(
        "--history-events", type=int, default=200_000, help="closed, over the 30 days before"
    )
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument(
        "--database", type=Path, help="SQLite file to fill (if new) and keep for later runs"
    )
    parser.add_argument("--url", help="a PostgreSQL URL instead of SQLite (kept, filled if empty)")
    args = parser.parse_args()
    if args.url:
        run(args.url, args)
        return
    with tempfile.TemporaryDirectory() as folder:
        path = args.database or Path(folder) / "ui.db"
        run(f"sqlite:///{path}", args)


if __name__ == "__main__":
    main()
