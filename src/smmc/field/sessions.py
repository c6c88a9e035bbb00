"""Session manager: who may open an association to which device, and when.

The field network is the scarce resource. Before a driver opens a TCP association it takes,
in this order (always the same order, so two sessions never wait on each other crosswise):

1. the **device lock** — never two sessions to one meter (nor to one concentrator's
   management logical device);
2. a **concentrator permit** — at most ``max_sessions`` concurrent sessions per concentrator
   (default 1, per concentrator from the ``concentrator_permits`` table), gateway meter
   sessions and management sessions alike;
3. a slot of the **global pool**, whose last ``reserved_high`` slots only sessions of
   priority ``>= high_priority`` may take, so a disconnect is never stuck behind a bulk read;
4. a token of the **new-connection rate limit** (token bucket, connections per second).

Waiters on a permit or on the pool are served highest priority first, then in arrival order.
The permits are re-read from their source (``reload``, e.g. `load_permits` on the store)
every ``reload_every`` seconds, at the next session asked for, so a permit changed while a
worker runs applies without a restart.
The queue leases by the same permits; this manager enforces them inside one worker, where
several leased orders may still race for a concentrator.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from smmc.store import tables as t

__all__ = ["DEFAULT_PERMITS", "SessionLimits", "SessionManager", "load_permits"]

DEFAULT_PERMITS = 1

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """``max_sessions`` for the whole worker, ``reserved_high`` of them for high priority;
    ``connect_rate`` new connections per second (None: unlimited) with ``connect_burst``."""

    max_sessions: int = 64
    reserved_high: int = 4
    high_priority: int = 7
    connect_rate: float | None = None
    connect_burst: int = 10
    default_permits: int = DEFAULT_PERMITS

    def __post_init__(self) -> None:
        if self.max_sessions < 1 or self.default_permits < 1:
            raise ValueError("max_sessions and default_permits must be at least 1")
        if not 0 <= self.reserved_high < self.max_sessions:
            raise ValueError("reserved_high must be in [0, max_sessions)")
        if self.connect_rate is not None and self.connect_rate <= 0:
            raise ValueError("connect_rate must be positive")
        if self.connect_burst < 1:
            raise ValueError("connect_burst must be at least 1")


def load_permits(engine: Engine) -> dict[int, int]:
    """Concentrator id → max concurrent sessions, as configured (blocking)."""
    cp = t.concentrator_permits.c
    with engine.connect() as conn:
        return {
            row.concentrator_id: row.max_sessions
            for row in conn.execute(sa.select(cp.concentrator_id, cp.max_sessions))
        }


class _Slots:
    """A counting semaphore whose waiters are served by priority, then arrival; the limit
    a taker sees may depend on its priority (the reserved pool)."""

    def __init__(self, capacity: int, limit_for: Callable[[int, int], int] | None = None) -> None:
        self.capacity = capacity
        self.in_use = 0
        self.peak = 0
        self._limit_for = limit_for or (lambda capacity, _priority: capacity)
        self._waiters: list[tuple[int, int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def _fits(self, priority: int) -> bool:
        return self.in_use < self._limit_for(self.capacity, priority)

    async def acquire(self, priority: int) -> None:
        if not self._waiters and self._fits(priority):
            self._take()
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (-priority, next(self._order), priority, future)
        heapq.heappush(self._waiters, entry)
        self.wake()  # a taker of higher priority than those waiting may fit at once
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # granted just as we were cancelled: give it back
            elif entry in self._waiters:
                self._waiters.remove(entry)
                heapq.heapify(self._waiters)
            raise

    def _take(self) -> None:
        self.in_use += 1
        self.peak = max(self.peak, self.in_use)

    def release(self) -> None:
        self.in_use -= 1
        self.wake()

    def wake(self) -> None:
        """Grant waiting takers in priority order while they fit."""
        while self._waiters:
            _, _, priority, future = self._waiters[0]
            if future.done():
                heapq.heappop(self._waiters)
                continue
            if not self._fits(priority):
                return
            heapq.heappop(self._waiters)
            self._take()
            future.set_result(None)


class _TokenBucket:
    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.tokens = float(burst)
        self.stamp = clock()
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        async with self._lock:
            while True:
                now = self.clock()
                self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.tokens >= 1.0:
                    self.tokens -= 1.0
                    return
                await asyncio.sleep((1.0 - self.tokens) / self.rate)


class SessionManager:
    """Hands out the right to open one session; see the module docstring for the order."""

    def __init__(
        self,
        limits: SessionLimits | None = None,
        permits: Mapping[int, int] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        reload: Callable[[], Mapping[int, int]] | None = None,
        reload_every: float = 30.0,
    ) -> None:
        if reload_every <= 0:
            raise ValueError(f"reload_every must be positive, got {reload_every}")
        self.limits = limits or SessionLimits()
        self._permits: dict[int, int] = dict(permits or {})
        self._clock = clock
        self._reload = reload
        self._reload_every = reload_every
        self._reload_at = clock() + reload_every
        self._concentrators: dict[int, _Slots] = {}
        self._devices: dict[tuple[str, int], asyncio.Lock] = {}
        self._device_users: dict[tuple[str, int], int] = {}
        reserved = self.limits.reserved_high
        high = self.limits.high_priority
        self.pool = _Slots(
            self.limits.max_sessions,
            lambda capacity, priority: capacity if priority >= high else capacity - reserved,
        )
        self._bucket = (
            _TokenBucket(self.limits.connect_rate, self.limits.connect_burst, clock)
            if self.limits.connect_rate is not None
            else None
        )
        self.opened = 0

    def set_permits(self, permits: Mapping[int, int]) -> None:
        """New per-concentrator permits (from the store); applies to the next acquisitions."""
        self._permits = dict(permits)
        for concentrator_id, slots in self._concentrators.items():
            slots.capacity = self.permits_of(concentrator_id)
            slots.wake()

    async def _refresh_permits(self) -> None:
        """Re-read the permits once ``reload_every`` has passed (one reader at a time); when
        the store does not answer, the permits in force stay."""
        if self._reload is None or self._clock() < self._reload_at:
            return
        self._reload_at = self._clock() + self._reload_every
        try:
            permits = await asyncio.to_thread(self._reload)
        except SQLAlchemyError:
            logger.exception("concentrator permits not re-read; the last ones stay in force")
            return
        self.set_permits(permits)

    def permits_of(self, concentrator_id: int) -> int:
        return self._permits.get(concentrator_id, self.limits.default_permits)

    def concentrator_peak(self, concentrator_id: int) -> int:
        """Most sessions this manager ever held at once on one concentrator."""
        slots = self._concentrators.get(concentrator_id)
        return slots.peak if slots else 0

    def _concentrator(self, concentrator_id: int) -> _Slots:
        slots = self._concentrators.get(concentrator_id)
        if slots is None:
            slots = self._concentrators[concentrator_id] = _Slots(self.permits_of(concentrator_id))
        return slots

    @asynccontextmanager
    async def _device(self, key: tuple[str, int]) -> AsyncIterator[None]:
        lock = self._devices.get(key)
        if lock is None:
            lock = self._devices[key] = asyncio.Lock()
        self._device_users[key] = self._device_users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._device_users[key] -= 1
            if not self._device_users[key]:
                del self._device_users[key]
                del self._devices[key]

    @asynccontextmanager
    async def session(
        self,
        *,
        meter_id: int | None = None,
        concentrator_id: int | None = None,
        priority: int = 0,
    ) -> AsyncIterator[None]:
        """Hold the right to one session to a meter (through ``concentrator_id`` when it is
        behind one) or, with ``meter_id=None``, to a concentrator's management device."""
        if meter_id is None and concentrator_id is None:
            raise ValueError("a session needs a meter or a concentrator")
        key = ("meter", meter_id) if meter_id is not None else ("dc", concentrator_id or 0)
        await self._refresh_permits()
        async with self._device(key):
            dc = self._concentrator(concentrator_id) if concentrator_id is not None else None
            if dc is not None:
                await dc.acquire(priority)
            try:
                await self.pool.acquire(priority)
                try:
                    if self._bucket is not None:
                        await self._bucket.take()
                    self.opened += 1
                    yield
                finally:
                    self.pool.release()
            finally:
                if dc is not None:
                    dc.release()
