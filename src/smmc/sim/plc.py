"""The simulated PLC/RF medium between a concentrator and its meters.

One concentrator talks to one meter at a time on its low-voltage network: every request and
its answer occupy the medium for a fixed latency (more per repeater hop) plus the bytes at
the link's rate. The link serialises exchanges in arrival order and keeps a short history
so tests and the benchmark can see the order in which the medium was used.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Exchange", "LinkBusy", "LinkSettings", "PlcLink"]


class LinkBusy(Exception):
    """The medium stayed busy longer than the concentrator waits for it."""


@dataclass(frozen=True, slots=True)
class LinkSettings:
    """``latency_s`` per exchange and per hop; ``bytes_per_s`` both ways; ``max_wait_s``
    is how long a request waits for the medium before the DC gives up (None: forever)."""

    latency_s: float = 0.02
    bytes_per_s: float = 2400.0
    max_wait_s: float | None = None

    def __post_init__(self) -> None:
        if self.latency_s < 0 or self.bytes_per_s <= 0:
            raise ValueError("latency must be >= 0 and the byte rate > 0")
        if self.max_wait_s is not None and self.max_wait_s < 0:
            raise ValueError("max_wait_s must be >= 0")


@dataclass(frozen=True, slots=True)
class Exchange:
    """One use of the medium (monotonic seconds)."""

    node_address: int
    started: float
    finished: float
    request_bytes: int
    response_bytes: int


_SHORTEST_WAIT = 1e-4
"""A wait shorter than this is not waited at all: it is below what the event loop can time
(such a timer fires on the next loop turn anyway), and yielding for it only costs the
zero-latency link of the head-end overhead benchmark two loop turns per exchange."""


async def _occupy(seconds: float) -> None:
    if seconds >= _SHORTEST_WAIT:
        await asyncio.sleep(seconds)


class PlcLink:
    """A half-duplex medium: ``exchange`` runs one request/answer at a time."""

    def __init__(self, settings: LinkSettings | None = None, history: int = 1000) -> None:
        self.settings = settings or LinkSettings()
        self._lock = asyncio.Lock()
        self.history: deque[Exchange] = deque(maxlen=history)

    async def exchange(
        self,
        node_address: int,
        request: bytes,
        answer: Callable[[bytes], list[bytes]],
        hops: int = 0,
    ) -> list[bytes]:
        """Carry ``request`` to the node, let ``answer`` produce its replies (APDUs), carry
        them back. An exception from ``answer`` frees the medium and propagates."""
        await self._acquire()
        try:
            started = time.monotonic()
            settings = self.settings
            await _occupy(settings.latency_s * (1 + hops) / 2 + len(request) / settings.bytes_per_s)
            response = answer(request)
            size = sum(len(apdu) for apdu in response)
            await _occupy(settings.latency_s * (1 + hops) / 2 + size / settings.bytes_per_s)
            self.history.append(
                Exchange(node_address, started, time.monotonic(), len(request), size)
            )
            return response
        finally:
            self._lock.release()

    async def attempt(self, node_address: int, request: bytes, hops: int = 0) -> None:
        """A request that gets no answer (unreachable node): it still holds the medium."""
        await self.exchange(node_address, request, lambda _: [], hops)

    async def _acquire(self) -> None:
        wait = self.settings.max_wait_s
        if wait is None:
            await self._lock.acquire()
            return
        try:
            await asyncio.wait_for(self._lock.acquire(), wait)
        except TimeoutError:
            raise LinkBusy(f"PLC medium busy for more than {wait} s") from None
