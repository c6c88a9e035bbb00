"""Helpers shared by the browser tests (the fixtures live in conftest.py)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from smmc.sim.fleet import FleetPlan
from smmc.sim.runner import FleetRunner
from smmc.store.tables import concentrators, meter_links, meters, service_points
from smmc.store.users import AccessStore

PASSWORD = "browser-test-pass"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@dataclass
class LiveApp:
    base_url: str
    engine: Engine
    store: AccessStore


@dataclass
class LiveFleet(LiveApp):
    """The app with a simulated fleet and a worker; `start_worker` lets it lease orders."""

    plan: FleetPlan
    runner: FleetRunner
    start_worker: Callable[[], None]


def seed_fleet(engine: Engine, meter_count: int = 3000) -> None:
    """Two concentrators and ``meter_count`` meters on service points scattered over
    Santiago, in every lifecycle state, so the map has clusters and colours to draw."""
    rng = random.Random(9)
    linked_since = datetime(2025, 1, 1, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            concentrators.insert(),
            [
                {
                    "name": "TD-1000",
                    "comuna": "Santiago",
                    "reachable": True,
                    "latitude": -33.45,
                    "longitude": -70.66,
                },
                {
                    "name": "TD-2000",
                    "comuna": "Maipu",
                    "reachable": False,
                    "latitude": -33.51,
                    "longitude": -70.76,
                },
            ],
        )
        conn.execute(
            service_points.insert(),
            [
                {
                    "name": f"POD-{i}",
                    "comuna": "Santiago" if i % 2 else "Maipu",
                    "latitude": -33.45 + rng.gauss(0, 0.05),
                    "longitude": -70.66 + rng.gauss(0, 0.07),
                }
                for i in range(1, meter_count + 1)
            ],
        )
        conn.execute(
            meters.insert(),
            [
                {
                    "serial_number": f"UAA{i:06d}",
                    "concentrator_id": 1 + i % 2,
                    "commissioned": i % 5 != 0,
                    "reachable": i % 3 != 0,
                    "in_dc_table": i % 4 != 0,
                }
                for i in range(1, meter_count + 1)
            ],
        )
        sp_ids = dict(conn.execute(sa.select(service_points.c.name, service_points.c.id)).all())
        meter_ids = dict(conn.execute(sa.select(meters.c.serial_number, meters.c.id)).all())
        conn.execute(
            meter_links.insert(),
            [
                {
                    "meter_id": meter_ids[f"UAA{i:06d}"],
                    "service_point_id": sp_ids[f"POD-{i}"],
                    "valid_from": linked_since,
                }
                for i in range(1, meter_count + 1)
            ],
        )


def log_in(page: Any, username: str) -> None:
    page.goto("/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("[data-testid=username]")


def screenshot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
