"""Simulation time: real, accelerated by a factor, and fast-forwarded by whole days.

Every simulated model asks this source for "now", so the demo can run faster than real
time and a fleet can start with N days of history already behind it. History is not
replayed: the models are functions of time, so fast-forwarding is only moving the origin.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

__all__ = ["SimClock", "TimeMode"]


class TimeMode(enum.StrEnum):
    REAL = "real"
    ACCELERATED = "accelerated"
    FAST_FORWARD = "fast_forward"


def _system_now() -> datetime:
    return datetime.now(UTC)


class SimClock:
    """Simulated UTC time = ``start + (wall − wall at start) × factor``.

    ``history_start`` is where the simulated history begins (``start`` minus the
    fast-forwarded days): models report data from there on.
    """

    def __init__(
        self,
        start: datetime | None = None,
        factor: float = 1.0,
        history_days: int = 0,
        wall: Callable[[], datetime] = _system_now,
    ) -> None:
        if factor <= 0:
            raise ValueError(f"time factor must be positive, got {factor}")
        if history_days < 0:
            raise ValueError(f"history_days must not be negative, got {history_days}")
        self._wall = wall
        self._wall_origin = wall()
        origin = self._wall_origin if start is None else start
        if origin.tzinfo is None:
            raise ValueError(f"simulation start must be timezone-aware, got {origin.isoformat()}")
        self._origin = origin.astimezone(UTC)
        self.factor = factor
        self.history_start = self._origin - timedelta(days=history_days)

    @classmethod
    def real(cls, wall: Callable[[], datetime] = _system_now) -> SimClock:
        """Simulated time is wall time."""
        return cls(None, 1.0, 0, wall)

    @classmethod
    def accelerated(
        cls, start: datetime, factor: float, wall: Callable[[], datetime] = _system_now
    ) -> SimClock:
        """Runs ``factor`` times faster than wall time from ``start``."""
        return cls(start, factor, 0, wall)

    @classmethod
    def fast_forward(
        cls, days: int, factor: float = 1.0, wall: Callable[[], datetime] = _system_now
    ) -> SimClock:
        """Starts at wall time with ``days`` of history already behind it."""
        return cls(None, factor, days, wall)

    def now(self) -> datetime:
        """Current simulated instant (aware, UTC)."""
        elapsed = self._wall() - self._wall_origin
        # Scaling a timedelta by a float costs more than the rest: real time skips it.
        return self._origin + (elapsed if self.factor == 1.0 else elapsed * self.factor)

    def jump(self, delta: timedelta) -> None:
        """Move simulated time forward by ``delta`` (fast-forward while running)."""
        if delta < timedelta(0):
            raise ValueError(f"simulated time never goes back; cannot jump by {delta}")
        self._origin += delta
