"""The asyncio worker: lease orders, run their executors, keep the leases alive, record the
outcomes.

Several workers (processes, machines) may share one PostgreSQL queue. A worker killed with
SIGKILL loses nothing: its leases expire and another worker takes the orders again. A worker
that loses a lease (it stalled past the expiry) cancels that attempt and its late outcome is
refused by the queue, so an order is never completed twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
from dataclasses import dataclass
from datetime import timedelta

from smmc.domain.work_orders import Outcome, State
from smmc.engine.executors import ExecutorRegistry
from smmc.store.work_orders import LeasedOrder, WorkOrderQueue

__all__ = ["Worker", "WorkerConfig", "default_worker_name"]

logger = logging.getLogger(__name__)

# At most this many outcomes are stored in one transaction.
_MAX_OUTCOMES = 200


def default_worker_name() -> str:
    """host:pid, unique among the workers sharing a queue."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    name: str
    max_in_flight: int = 16
    lease_for: timedelta = timedelta(minutes=2)
    poll_interval: float = 1.0
    renew_leases: bool = True
    drain_timeout: float = 30.0
    # Seconds an outcome may wait for others (up to a quarter of ``max_in_flight``) to be
    # stored with them and the next lease: most of a store-and-lease's cost is the same for
    # one order as for thirty (transaction, commit, candidate query), so fewer, larger ones.
    gather: float = 0.05

    def __post_init__(self) -> None:
        if self.max_in_flight < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {self.max_in_flight}")
        if self.lease_for <= timedelta(0):
            raise ValueError("lease_for must be positive")
        if self.gather < 0:
            raise ValueError(f"gather must not be negative, got {self.gather}")


class Worker:
    """One worker loop over a queue. ``renew_leases=False`` exists for crash tests: it
    behaves like a worker that stalled and stopped heart-beating."""

    def __init__(
        self, queue: WorkOrderQueue, registry: ExecutorRegistry, config: WorkerConfig
    ) -> None:
        self.queue = queue
        self.registry = registry
        self.config = config
        self._stop = asyncio.Event()
        # Set when an order in flight finishes (its slot and its concentrator's permit are
        # free) or on stop: one flag, so a wake-up costs the same with 10 or 1,000 in flight.
        self._wake = asyncio.Event()
        self._in_flight: dict[int, asyncio.Task[State | None]] = {}
        # Orders whose executor is running (the keeper renews their leases) and those whose
        # lease the keeper found lost (their attempt is cancelled, not recorded).
        self._executing: dict[int, LeasedOrder] = {}
        self._lost: set[int] = set()
        self._keeper: asyncio.Task[None] | None = None
        # The last lease got fewer orders than it asked for: nothing more can start before
        # an order finishes (or, for `run`, new orders are due), so leasing again at once
        # would cost a lease for nothing.
        self._drained_queue = False
        self.finished: dict[State, int] = {}
        # Outcomes waiting to be stored, each with the future its order's task awaits. The
        # worker's loop stores them together with the next lease (`_store_and_lease`): one
        # thread hop and one transaction for the outcomes of the orders finishing close
        # together, what the executors left to store with them (their events) and the
        # orders taking their slots.
        self._outcomes: list[tuple[LeasedOrder, Outcome, asyncio.Future[State | None]]] = []

    def stop(self) -> None:
        """Stop leasing; `run` returns once the orders in flight are done (or drained)."""
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        """Lease and run until `stop`; then wait for the orders in flight, up to the drain
        timeout, and cancel what is left (their leases expire and they run again)."""
        try:
            while not self._stop.is_set():
                self._wake.clear()
                try:
                    leased = await self.lease_once()
                except Exception:
                    # The database is away, or an outcome writer failed: keep the orders in
                    # flight, try again shortly (outcomes not stored run again once their
                    # leases expire). A worker never dies of one batch.
                    logger.exception("worker %s: storing or leasing failed", self.config.name)
                    leased = 0
                if not leased or self._drained_queue:
                    await self._pause()
        finally:
            await self._drain()
            self.registry.close()

    async def run_until_idle(self) -> None:
        """Lease and run until nothing is due and nothing is in flight (tests, one-shot runs)."""
        while True:
            # An order finishing while the lease ran may have freed its concentrator after
            # the lease looked: only a lease that started with nothing in flight proves idle.
            was_busy = bool(self._in_flight)
            self._wake.clear()  # an order finishing from here on wakes the wait below
            leased = await self.lease_once()
            if not leased and not was_busy and not self._in_flight:
                return
            if (not leased or self._drained_queue) and self._in_flight:
                await self._wake.wait()

    async def lease_once(self) -> int:
        """Store the outcomes waiting, lease as many orders as there are free slots then and
        start them; returns how many. With nothing to store and no free slot, wait for an
        order to finish first."""
        if not self._outcomes and len(self._in_flight) >= self.config.max_in_flight:
            await self._wake.wait()
            return 0
        await self._gather()
        return await self._store_and_lease(lease=True)

    async def _gather(self) -> None:
        """With outcomes waiting, let them grow to a quarter of ``max_in_flight`` for up to
        ``gather`` seconds while other orders still execute (none: no more can come)."""
        if not self._outcomes:
            return
        wanted = max(1, self.config.max_in_flight // 4)
        deadline = asyncio.get_running_loop().time() + self.config.gather
        while len(self._outcomes) < wanted and self._executing and not self._stop.is_set():
            self._wake.clear()
            try:
                async with asyncio.timeout_at(deadline):
                    await self._wake.wait()
            except TimeoutError:
                return

    async def _store_and_lease(self, *, lease: bool) -> int:
        """One thread hop and one transaction: the outcomes waiting and, if ``lease``, as
        many new orders as slots are free once those orders end (their tasks are done
        executing). On a failure every outcome of the batch gets the exception (not stored:
        those orders run again once their leases expire) and it is raised."""
        batch = self._outcomes[:_MAX_OUTCOMES]
        del self._outcomes[:_MAX_OUTCOMES]
        free = self.config.max_in_flight - len(self._in_flight) + len(batch) if lease else 0
        try:
            states, orders = await asyncio.to_thread(
                self.queue.record_and_lease,
                [(order, outcome) for order, outcome, _ in batch],
                self.registry.write_outcomes,
                self.config.name,
                free,
                self.config.lease_for,
                self.registry.activities(),
            )
        except BaseException as exc:
            for _, _, future in batch:
                if future.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):
                    future.cancel()
                else:
                    future.set_exception(exc)
            raise
        for (order, _, future), state in zip(batch, states, strict=True):
            if not future.done():
                future.set_result(state)
            # Its slot is the new orders' now (``free`` counted it); its task only returns.
            self._in_flight.pop(order.id, None)
            if state is not None:
                self.finished[state] = self.finished.get(state, 0) + 1
        for order in orders:
            task = asyncio.create_task(self._run_order(order), name=f"work-order-{order.id}")
            self._in_flight[order.id] = task
            task.add_done_callback(functools.partial(self._forget, order.id))
        if orders and self.config.renew_leases and (self._keeper is None or self._keeper.done()):
            self._keeper = asyncio.create_task(self._keep_leases(), name="lease-keeper")
        self._drained_queue = len(orders) < free
        return len(orders)

    def _forget(self, order_id: int, task: asyncio.Task[State | None]) -> None:
        """A task ended without its outcome stored (lost lease, store failure, cancelled):
        its slot is free. (Those whose outcome was stored left in `_store_and_lease`.)"""
        if self._in_flight.get(order_id) is task:
            del self._in_flight[order_id]
            self._wake.set()

    async def _pause(self) -> None:
        """Until an order finishes, `stop`, or the poll interval (new orders) passes."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.poll_interval):
                await self._wake.wait()

    async def _drain(self) -> None:
        """Store the outcomes of the orders in flight as they finish, up to the drain
        timeout; cancel what is left."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.drain_timeout
        while self._in_flight and loop.time() < deadline:
            self._wake.clear()
            if self._outcomes:
                try:
                    await self._store_and_lease(lease=False)
                except Exception:
                    logger.exception("worker %s: storing outcomes failed", self.config.name)
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(deadline):
                    await self._wake.wait()
        pending = list(self._in_flight.values())
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    async def _run_order(self, order: LeasedOrder) -> State | None:
        self._executing[order.id] = order
        try:
            outcome = await self._execute(order)
        except asyncio.CancelledError:
            if order.id in self._lost:
                current = asyncio.current_task()
                if current is not None:
                    current.uncancel()
                logger.warning(
                    "work order %s: lease lost, attempt %s abandoned", order.id, order.attempt
                )
                return None
            raise
        finally:
            del self._executing[order.id]
            self._lost.discard(order.id)
            if not self._executing and self._keeper is not None:
                self._keeper.cancel()
                self._keeper = None
        future: asyncio.Future[State | None] = asyncio.get_running_loop().create_future()
        self._outcomes.append((order, outcome, future))
        self._wake.set()
        try:
            state = await future
        except Exception:
            # Not stored: the lease runs out and the order runs again (attempt + 1, so a
            # non-idempotent executor knows to check the device first).
            logger.exception("work order %s: outcome could not be stored", order.id)
            return None
        if state is None:
            logger.warning("work order %s: lease lost before the outcome was stored", order.id)
            return None
        return state

    async def _execute(self, order: LeasedOrder) -> Outcome:
        executor = self.registry.get(order.activity)
        remaining = (order.deadline - self.queue.clock()).total_seconds()
        timed_out = Outcome.failure("deadline passed while the activity ran", retryable=True)
        if remaining <= 0:
            return timed_out  # retryable with no time left: the queue turns it into EXPIRED
        try:
            async with asyncio.timeout(remaining):
                return await executor.execute(order, self.queue.engine)
        except TimeoutError:
            return timed_out
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.exception("work order %s: executor raised", order.id)
            return Outcome.failure(
                f"internal error in the {order.activity.value} executor: {type(exc).__name__}",
                retryable=True,
            )

    async def _keep_leases(self) -> None:
        """Renew the leases of every order executing, at a third of the lease's length (one
        task and one thread hop per pass for all of them); cancel the attempts whose lease
        was lost. A pass that fails is logged and the next one tries again: a keeper that
        ended would let every lease in flight expire and the orders run a second time."""
        period = self.config.lease_for.total_seconds() / 3
        while True:
            await asyncio.sleep(period)
            try:
                lost = await asyncio.to_thread(self._renew, list(self._executing.values()))
            except Exception:
                logger.exception("worker %s: renewing leases failed", self.config.name)
                continue
            for order in lost:
                task = self._in_flight.get(order.id)
                if self._executing.get(order.id) is order and task is not None:
                    self._lost.add(order.id)
                    task.cancel()

    def _renew(self, orders: list[LeasedOrder]) -> list[LeasedOrder]:
        """Renew each lease (blocking); returns the orders whose lease was lost."""
        return [o for o in orders if self.queue.renew(o, self.config.lease_for) is None]
