"""The executor protocol and registry: one executor per activity type.

The engine knows nothing about meters: an executor receives the leased order and the
database engine and returns an `Outcome`. The field layer provides the real executors;
tests plug in their own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from sqlalchemy.engine import Connection, Engine

from smmc.domain.work_orders import ActivityType, Outcome, State
from smmc.store.work_orders import LeasedOrder, OutcomeWriter

__all__ = ["Executor", "ExecutorRegistry", "NoExecutor", "OutcomeWriter"]


class NoExecutor(LookupError):
    """No executor is registered for an activity type."""


class Executor(Protocol):
    async def execute(self, order: LeasedOrder, engine: Engine) -> Outcome:
        """Run one attempt of ``order``. Raise nothing for field failures: report them as a
        failed `Outcome` with the catalog text and whether a retry is worth it. An executor
        of a non-idempotent activity checks ``order.attempt`` and reads the device state
        before acting again."""
        ...


class ExecutorRegistry:
    """Activity type → executor. A worker leases only the activities registered here, so a
    worker without the field layer never takes a field order."""

    def __init__(self, executors: Mapping[ActivityType, Executor] | None = None) -> None:
        self._executors: dict[ActivityType, Executor] = {}
        self._writers: list[OutcomeWriter] = []
        self._closers: list[Callable[[], None]] = []
        for activity, executor in (executors or {}).items():
            self.register(activity, executor)

    def add_outcome_writer(self, writer: OutcomeWriter) -> None:
        """Rows the executors leave to be stored with their orders' outcomes (one
        transaction: both or neither), e.g. the event of a final result."""
        self._writers.append(writer)

    def write_outcomes(
        self, conn: Connection, recorded: Sequence[tuple[LeasedOrder, State | None]]
    ) -> None:
        """Every outcome writer, in the transaction storing ``recorded``."""
        for writer in self._writers:
            writer(conn, recorded)

    def add_closer(self, close: Callable[[], None]) -> None:
        """What the executors hold beyond one order (kept connections), released when the
        worker stops."""
        self._closers.append(close)

    def close(self) -> None:
        for close in self._closers:
            close()

    def register(self, activity: ActivityType, executor: Executor) -> None:
        if activity in self._executors:
            raise ValueError(f"an executor for {activity.value} is already registered")
        self._executors[activity] = executor

    def get(self, activity: ActivityType) -> Executor:
        try:
            return self._executors[activity]
        except KeyError:
            raise NoExecutor(f"no executor registered for {activity.value}") from None

    def activities(self) -> frozenset[ActivityType]:
        return frozenset(self._executors)
