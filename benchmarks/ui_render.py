"""Web UI benchmark (issue 9): server-side render time of the operator pages.

    python benchmarks/ui_render.py --meters 100000 --repeat 30

Fills a fresh SQLite database (WAL) with ``--meters`` meters on their own service points
behind ``meters / 100`` concentrators, one MeterSync batch over the whole fleet (so the works
view filters and counts 100,000 orders) and ``--events`` meter events over the last day, then
asks the app in process (an ASGI client, logged in as an operator, authentication enforced)
for each page ``--repeat`` times. The time is the wall time of the request through the app:
routing, authentication, queries, rendering; no network and no browser.
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
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from smmc.domain.access import Role
from smmc.domain.work_orders import ActivityType
from smmc.store import tables as t
from smmc.store.db import create_engine
from smmc.store.migrate import upgrade
from smmc.store.users import AccessStore
from smmc.store.work_orders import TargetRef, WorkOrderQueue
from smmc.web.app import create_app

PAGES = {
    "works view (pending, first page)": "/works?view=pending",
    "works view (filter by concentrator)": "/works?concentrator=DC-00042",
    "meter list (first page)": "/assets/meters",
    "meter list (serial search)": "/assets/meters?q=UAA0042",
    "control room (24 h)": "/control-room",
    "map data: meters for the map page (columns)": "/map/meters.json",
    "map data: meters GeoJSON (REST API)": "/api/map/meters",
    "map data: concentrators GeoJSON": "/api/map/concentrators",
}
CHUNK = 10_000


def _chunks(rows: list[dict[str, object]]) -> list[list[dict[str, object]]]:
    return [rows[i : i + CHUNK] for i in range(0, len(rows), CHUNK)]


def fill(url: str, meter_count: int, event_count: int) -> None:
    engine = create_engine(url)
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
        happened = [
            {
                "message_id": str(uuid.uuid4()),
                "device_kind": "meter",
                "device": f"UAA{m:07d}",
                "meter_id": m,
                "concentrator_id": 1 + m % dcs,
                "key": f"k{i}",
                "code": rng.choice(["3.26.0.185", "3.12.0.257", "3.26.0.216"]),
                "acronym": "EVT",
                "description": "benchmark event",
                "severity": 2,
                "priority": rng.choice(["HIGH", "MEDIUM", "LOW"]),
                "category": "power",
                "routing": "control_room",
                "is_active": i % 3 == 0,
                "opened_at": now - timedelta(seconds=rng.randrange(86_400)),
                "source": "benchmark",
            }
            for i, m in enumerate(rng.choices(range(1, meter_count + 1), k=event_count))
        ]
        for chunk in _chunks(happened):
            conn.execute(t.events.insert(), chunk)
    WorkOrderQueue(engine).submit(
        ActivityType.METER_SYNC,
        [TargetRef(meter=f"UAA{i:07d}") for i in range(1, meter_count + 1)],
    )
    AccessStore(engine).create_user("bench", Role.OPERATOR, "benchmark-password")
    engine.dispose()


def measure(url: str, repeat: int) -> dict[str, list[float]]:
    engine = create_engine(url)
    app = create_app(engine, auth_required=True)
    times: dict[str, list[float]] = {name: [] for name in PAGES}
    with TestClient(app, base_url="https://testserver") as client:
        form = client.get("/login").text
        csrf = form.split('name="csrf_token" value="')[1].split('"')[0]
        client.post(
            "/login",
            data={"csrf_token": csrf, "username": "bench", "password": "benchmark-password"},
        )
        for name, path in PAGES.items():
            client.get(path)  # warm: templates compiled, statements cached
            for _ in range(repeat):
                started = time.perf_counter()
                response = client.get(path)
                times[name].append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise SystemExit(f"{path}: HTTP {response.status_code}")
    engine.dispose()
    return times


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument(
        "--database", type=Path, help="SQLite file to fill (if new) and keep for later runs"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = args.database or Path(folder) / "ui.db"
        url = f"sqlite:///{path}"
        if not path.exists():
            started = time.perf_counter()
            fill(url, args.meters, args.events)
            print(f"filled {args.meters:,} meters in {time.perf_counter() - started:.1f} s")
        times = measure(url, args.repeat)
    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.1f}, {args.repeat} requests per page"
    )
    print("| page | median | p95 | max |")
    print("|---|---|---|---|")
    for name, values in times.items():
        print(
            f"| {name} | {statistics.median(values) * 1000:.0f} ms "
            f"| {p95(values) * 1000:.0f} ms | {max(values) * 1000:.0f} ms |"
        )


if __name__ == "__main__":
    main()
