"""A controllable clock and a small fleet written straight into the tables (imported by the
engine tests, which also re-export the fixtures)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine

from smmc.domain.calendar import WorkingDayCalendar
from smmc.store import tables as t
from smmc.store.work_orders import WorkOrderQueue

MONDAY = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime = MONDAY

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def add_fleet(engine: Engine, concentrators: dict[str, int]) -> None:
    """Concentrators with `n` meters M-<dc>-<k> each."""
    with engine.begin() as conn:
        for name, count in concentrators.items():
            dc_id = conn.execute(
                t.concentrators.insert().values(name=name).returning(t.concentrators.c.id)
            ).scalar_one()
            if count:
                conn.execute(
                    t.meters.insert(),
                    [
                        {"serial_number": f"M-{name}-{k}", "concentrator_id": dc_id}
                        for k in range(count)
                    ],
                )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(db: Engine, clock: Clock) -> WorkOrderQueue:
    return WorkOrderQueue(db, clock=clock, rng=random.Random(3), calendar=WorkingDayCalendar())
