"""What every field executor shares: the drivers, the mapping of field failures onto
outcomes, and the high-priority work-order event of each final result.

An event is stored when the result is final for the order: a success, a failure that is not
worth a retry, or the last attempt. (A retryable failure whose retry would pass the deadline
ends EXPIRED in the queue without an event of its own: the queue, not the executor, decides
that.) It is stored in the worker's transaction of the order's outcome (the registry's
outcome writer, `FieldContext.write_events`): both or neither, so an attempt whose lease was
lost leaves no event. Event codes are IEC 61968-9 EndDeviceEventTypes (DOMAIN.md §4).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from smmc.domain.work_orders import ActivityType, Origin, Outcome, State
from smmc.engine.executors import ExecutorRegistry
from smmc.field.drivers import FieldDrivers
from smmc.field.errors import FieldFailure, UnknownDevice
from smmc.store import tables as t
from smmc.store.events import apply_events, work_order_occurrence
from smmc.store.outbox import queue_outcomes
from smmc.store.work_orders import LeasedOrder

__all__ = [
    "EVENT_CODES",
    "FieldContext",
    "FieldExecutor",
    "FieldResult",
    "PendingEvent",
    "event_row",
    "register_field_executors",
    "store_events",
]

# (success, failure) per activity; anything not listed uses the generic pair.
_GENERIC = ("3.21.87.30", "3.21.87.85")
EVENT_CODES: Mapping[ActivityType, tuple[str, str]] = MappingProxyType(
    {
        ActivityType.DISCONNECT: ("3.31.17.68", "3.31.17.84"),  # RCDSwitch Disconnected / Failed
        ActivityType.CONNECT: ("3.31.17.42", "3.31.17.67"),  # RCDSwitch Connected / Failed
    }
)


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class PendingEvent:
    """One final result: its ``work_order_events`` row and what the events layer needs."""

    row: Mapping[str, Any]
    meter_serial: str | None
    ok: bool
    disconnected: bool
    correlation_id: str
    from_legacy: bool
    """Legacy ordered it: its outcome goes out to Legacy (`queue_outcomes`)."""


def event_row(
    order: LeasedOrder, outcome: Outcome, breaker_state: int | None, at: datetime
) -> PendingEvent:
    """The high-priority event of a final result."""
    ok_code, failed_code = EVENT_CODES.get(order.activity, _GENERIC)
    description = (
        f"{order.activity.value} completed" if outcome.ok else outcome.error_text or "failed"
    )
    row = {
        "work_order_id": order.id,
        "attempt": order.attempt,
        "event_type": ok_code if outcome.ok else failed_code,
        "priority": "high",
        "meter_id": order.meter_id,
        "concentrator_id": order.concentrator_id,
        "occurred_at": at,
        "description": description,
        "breaker_state": breaker_state,
    }
    return PendingEvent(
        row,
        order.meter_serial,
        outcome.ok,
        outcome.ok and order.activity is ActivityType.DISCONNECT,
        str(order.batch_id),
        order.origin is Origin.LEGACY,
    )


def _already_final(conn: Connection, events: Sequence[PendingEvent]) -> set[int]:
    """The orders among ``events`` whose final event an earlier attempt stored. Only reruns
    can have one: a first attempt has no earlier one (attempts count from 1 and are never
    reset), so a batch of first attempts — most of them — reads nothing."""
    ids = sorted({int(event.row["work_order_id"]) for event in events if event.row["attempt"] > 1})
    if not ids:
        return set()
    e = t.work_order_events.c
    return set(conn.execute(sa.select(e.work_order_id).where(e.work_order_id.in_(ids))).scalars())


def store_events(conn: Connection, events: Sequence[PendingEvent]) -> None:
    """Store events in ``conn``'s transaction (blocking): the ``work_order_events`` rows
    and, for meter orders, the events layer's HPE records (`work_order_occurrence`), all
    applied in one `apply_events` batch.

    An order has one final event. A rerun's result (an earlier attempt's event is stored)
    is not a second outcome: it is dropped here, so Legacy and the events layer hear of the
    order once."""
    done = _already_final(conn, events)
    fresh = [event for event in events if event.row["work_order_id"] not in done]
    if not fresh:
        return
    conn.execute(t.work_order_events.insert(), [dict(event.row) for event in fresh])
    legacy = [(event.row, event.ok) for event in fresh if event.from_legacy]
    if legacy:  # most orders are the head-end's own: no lookup of their origin
        queue_outcomes(conn, legacy, _utc_now())
    occurrences = [
        work_order_occurrence(
            event.meter_serial,
            ok=event.ok,
            at=event.row["occurred_at"],
            correlation_id=event.correlation_id,
            description=event.row["description"],
            disconnected=event.disconnected,
            breaker_state=event.row["breaker_state"],
        )
        for event in fresh
        if event.meter_serial is not None
    ]
    if occurrences:
        apply_events(conn, occurrences=occurrences)


@dataclass(slots=True)
class FieldContext:
    """Shared by the executors of one worker. ``now`` is the head-end's clock (pushed to
    point-to-point meters by MeterSync; tests give the simulator's). ``pending`` holds
    the events of final results until the worker stores them with their outcomes."""

    drivers: FieldDrivers
    now: Callable[[], datetime] = field(default=_utc_now)
    pending: dict[tuple[int, int], PendingEvent] = field(default_factory=dict)

    def write_events(
        self, conn: Connection, recorded: Sequence[tuple[LeasedOrder, State | None]]
    ) -> None:
        """The outcome writer: the events of the orders whose outcome is stored in
        ``conn``'s transaction; those of attempts whose lease was lost are dropped."""
        events = [
            event
            for order, state in recorded
            if (event := self.pending.pop((order.id, order.attempt), None)) is not None
            and state is not None
        ]
        if events:
            store_events(conn, events)


@dataclass(frozen=True, slots=True)
class FieldResult:
    """What an activity produced: the result payload and, for a breaker, its state."""

    payload: Mapping[str, Any]
    breaker_state: int | None = None


class FieldExecutor:
    """Base of the field executors: subclasses implement `run`."""

    activity: ActivityType

    def __init__(self, context: FieldContext) -> None:
        self.context = context

    @property
    def drivers(self) -> FieldDrivers:
        return self.context.drivers

    async def run(self, order: LeasedOrder) -> FieldResult:
        raise NotImplementedError

    async def execute(self, order: LeasedOrder, engine: Engine) -> Outcome:
        breaker_state: int | None = None
        try:
            result = await self.run(order)
        except FieldFailure as failure:
            entry = failure.error.entry
            outcome = Outcome.failure(
                str(failure.error),
                retryable=failure.retryable,
                result={"meaning": entry.meaning.value, "action": entry.action.value},
            )
        except UnknownDevice as exc:
            outcome = Outcome.failure(str(exc), retryable=False)
        else:
            breaker_state = result.breaker_state
            outcome = Outcome.success(result.payload)
        final = outcome.ok or not outcome.retryable or order.attempt >= order.max_attempts
        if final:
            event = event_row(order, outcome, breaker_state, self.context.now())
            self.context.pending[(order.id, order.attempt)] = event
        return outcome

    def meter_id(self, order: LeasedOrder) -> int:
        if order.meter_id is None:
            raise UnknownDevice(f"work order {order.id} has no meter")
        return order.meter_id

    def concentrator_id(self, order: LeasedOrder) -> int:
        if order.concentrator_id is None:
            raise UnknownDevice(f"work order {order.id} has no concentrator")
        return order.concentrator_id


def register_field_executors(registry: ExecutorRegistry, context: FieldContext) -> None:
    """Register every field activity's executor, and the writer of their events."""
    from smmc.engine.activities.collection import (
        ConcentratorCollectionExecutor,
        MeterCollectionExecutor,
    )
    from smmc.engine.activities.commissioning import CommissioningExecutor
    from smmc.engine.activities.connect_disconnect import ConnectExecutor, DisconnectExecutor
    from smmc.engine.activities.outage_check import OutageCheckExecutor
    from smmc.engine.activities.reading import ReadingExecutor
    from smmc.engine.activities.status_words import StatusWordExecutor
    from smmc.engine.activities.sync import ConcentratorSyncExecutor, MeterSyncExecutor

    for executor in (
        ReadingExecutor(context),
        DisconnectExecutor(context),
        ConnectExecutor(context),
        MeterSyncExecutor(context),
        ConcentratorSyncExecutor(context),
        CommissioningExecutor(context, decommission=False),
        CommissioningExecutor(context, decommission=True),
        StatusWordExecutor(context),
        OutageCheckExecutor(context),
        ConcentratorCollectionExecutor(context),
        MeterCollectionExecutor(context),
    ):
        registry.register(executor.activity, executor)
    registry.add_outcome_writer(context.write_events)
    registry.add_closer(context.drivers.close)
