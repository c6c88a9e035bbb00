"""Simulation time: real, accelerated and fast-forwarded, driven by a fake wall clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from smmc.sim.clock import SimClock, TimeMode
from smmc.sim.fleet import Fleet, TimeSection

WALL = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


class FakeWall:
    def __init__(self) -> None:
        self.now = WALL

    def __call__(self) -> datetime:
        return self.now


def test_real_time_follows_the_wall() -> None:
    wall = FakeWall()
    clock = SimClock.real(wall)
    assert clock.now() == WALL
    wall.now += timedelta(seconds=90)
    assert clock.now() == WALL + timedelta(seconds=90)
    assert clock.history_start == WALL


def test_accelerated_time_runs_factor_times_faster_from_its_start() -> None:
    wall = FakeWall()
    start = datetime(2026, 4, 4, 20, 0, tzinfo=UTC)
    clock = SimClock.accelerated(start, 60, wall)
    assert clock.now() == start
    wall.now += timedelta(minutes=1)
    assert clock.now() == start + timedelta(hours=1)


def test_fast_forward_starts_with_history_and_can_jump() -> None:
    wall = FakeWall()
    clock = SimClock.fast_forward(7, wall=wall)
    assert clock.now() == WALL
    assert clock.history_start == WALL - timedelta(days=7)
    clock.jump(timedelta(days=1))
    assert clock.now() == WALL + timedelta(days=1)
    with pytest.raises(ValueError, match="never goes back"):
        clock.jump(timedelta(seconds=-1))


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        SimClock(factor=0)
    with pytest.raises(ValueError, match="negative"):
        SimClock(history_days=-1)
    with pytest.raises(ValueError, match="timezone-aware"):
        SimClock(start=datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("mode", "factor", "history"),
    [(TimeMode.REAL, 1.0, 0), (TimeMode.ACCELERATED, 30.0, 0), (TimeMode.FAST_FORWARD, 1.0, 3)],
)
def test_fleet_time_section_picks_the_mode(mode: TimeMode, factor: float, history: int) -> None:
    start = datetime(2026, 6, 1, tzinfo=UTC)
    fleet = Fleet(time=TimeSection(mode=mode, factor=30.0, history_days=3, start=start))
    clock = fleet.clock()
    assert clock.factor == factor
    assert clock.history_start == start - timedelta(days=history)
