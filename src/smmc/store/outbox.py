"""The outbox as the publisher sees it: outcome rows for Legacy's work orders, what is due,
failures with backoff, dead letters, and the embedded backend's Legacy inbox.

Rows are written here or by ``smmc.store.events`` (alarms, spontaneous events, outages) in
the caller's transaction; the publisher (``smmc.integration.outbox``) reads them in id
order per priority and marks them delivered once the backend has confirmed them. A row that
keeps failing is given up on after a configured number of attempts: it stays in the table
with ``dead_at`` set, visible through ``dead_letters`` and re-queued by ``requeue``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from smmc.domain.work_orders import ActivityType, Origin, State
from smmc.store import tables as t

__all__ = [
    "OUTCOME",
    "READINGS",
    "OutboxCounts",
    "dead_letters",
    "due_rows",
    "outbox_counts",
    "outcome_message_id",
    "queue_messages",
    "queue_outcomes",
    "record_failures",
    "requeue",
    "store_legacy_inbox",
    "sweep_outcomes",
    "waiting_rows",
]

OUTCOME = "outcome"
READINGS = "readings"
HIGH = "high"
_NAMESPACE = uuid.UUID("5f0b6d1e-8a43-4c1e-9f64-3d2b7a9c0e18")
_CHUNK = 500
_FINAL_WITHOUT_EVENT = (State.FAILED.value, State.EXPIRED.value, State.CANCELLED.value)

wo = t.work_orders
ob = t.outbox


def outcome_message_id(work_order_id: int) -> str:
    """The outcome's MessageID, derived from the order: one outcome per order, ever, and
    the same MessageID whichever path (executor or sweep) wrote it."""
    return str(uuid.uuid5(_NAMESPACE, f"work-order/{work_order_id}/outcome"))


def _outcome(activity: str, ok: bool, state: str | None) -> tuple[str, str]:
    """(status, code-table name): what happened, and the event code's entry."""
    if state == State.EXPIRED.value:
        return "expired", "expired"
    if state == State.CANCELLED.value:
        return "cancelled", "cancelled"
    if activity == ActivityType.DISCONNECT.value:
        return ("disconnected", "disconnected") if ok else ("failed", "disconnect_failed")
    if activity == ActivityType.CONNECT.value:
        return ("connected", "connected") if ok else ("failed", "connect_failed")
    return ("completed", "work_order_ok") if ok else ("failed", "work_order_failed")


_LEGACY_ORDERS = (
    sa.select(
        wo.c.id,
        wo.c.batch_id,
        wo.c.activity,
        wo.c.external_id,
        wo.c.payload,
        wo.c.reason,
        t.meters.c.serial_number.label("meter"),
        t.service_points.c.name.label("pod"),
    )
    .select_from(wo.outerjoin(t.meters).outerjoin(t.service_points))
    .where(wo.c.id.in_(sa.bindparam("ids", expanding=True)), wo.c.origin == Origin.LEGACY.value)
)
"""Built once: constructing it cost more than running it for a worker's batch of outcomes."""


def _legacy_orders(conn: Connection, ids: Sequence[int]) -> dict[int, Mapping[str, Any]]:
    found: dict[int, Mapping[str, Any]] = {}
    for start in range(0, len(ids), _CHUNK):
        rows = conn.execute(_LEGACY_ORDERS, {"ids": ids[start : start + _CHUNK]}).mappings()
        found.update({row["id"]: row for row in rows})
    return found


def _outcome_row(
    order: Mapping[str, Any], event: Mapping[str, Any], ok: bool, state: str | None
) -> dict[str, Any]:
    status, name = _outcome(order["activity"], ok, state)
    request = json.loads(order["payload"]) if order["payload"] else {}
    message_id = outcome_message_id(order["id"])
    occurred: datetime = event["occurred_at"]
    body = {
        "message_id": message_id,
        "kind": OUTCOME,
        "work_order_id": order["id"],
        "batch_id": order["batch_id"],
        "activity": order["activity"],
        "reason": order["reason"],
        "status": status,
        "event": name,
        "ok": ok,
        "field_work": status in ("failed", "expired"),
        "correlation_id": order["external_id"],
        "meter": order["meter"],
        "pod": order["pod"],
        "occurred_at": occurred.astimezone(UTC).isoformat(),
        "description": event["description"],
        "breaker_state": event.get("breaker_state"),
        "attempt": event["attempt"],
        "request": request,
    }
    return {
        "message_id": message_id,
        "kind": OUTCOME,
        "priority": HIGH,
        "payload": json.dumps(body, sort_keys=True, default=str),
        "created_at": occurred,
        "delivered_at": None,
    }


def queue_outcomes(
    conn: Connection, results: Sequence[tuple[Mapping[str, Any], bool]], now: datetime
) -> int:
    """Final results of work orders (their ``work_order_events`` rows and whether they
    succeeded), in the transaction that stores those rows: the ones of Legacy's orders get a
    high-priority outcome row in the outbox and are marked routed. Returns how many."""
    ids = sorted({int(row["work_order_id"]) for row, _ in results})
    orders = _legacy_orders(conn, ids)
    if not orders:
        return 0
    outbox_rows = [
        _outcome_row(orders[row["work_order_id"]], row, ok, None)
        for row, ok in results
        if row["work_order_id"] in orders
    ]
    conn.execute(ob.insert(), outbox_rows)
    e = t.work_order_events.c
    conn.execute(
        t.work_order_events.update()
        .where(e.work_order_id.in_(list(orders)), e.routed_at.is_(None))
        .values(routed_at=now)
    )
    return len(outbox_rows)


def sweep_outcomes(
    conn: Connection,
    *,
    since: datetime,
    until: datetime,
    event_types: Mapping[str, str],
    now: datetime,
) -> int:
    """Outcomes of Legacy's orders that ended without an executor event (expired in the
    queue, failed when the worker's lease ran out, cancelled) between ``since`` and
    ``until``: a ``work_order_events`` row (``event_types`` maps the code-table names
    ``expired``/``cancelled``/``work_order_failed`` to the event type) and the outcome row,
    together. Returns how many."""
    e = t.work_order_events.c
    rows = list(
        conn.execute(
            sa.select(
                wo.c.id,
                wo.c.state,
                wo.c.attempts,
                wo.c.ended_at,
                wo.c.error_text,
                wo.c.meter_id,
                wo.c.concentrator_id,
            )
            .where(
                wo.c.origin == Origin.LEGACY.value,
                wo.c.state.in_(_FINAL_WITHOUT_EVENT),
                wo.c.ended_at >= since,
                wo.c.ended_at <= until,
                ~sa.exists().where(e.work_order_id == wo.c.id),
            )
            .order_by(wo.c.ended_at, wo.c.id)
        ).mappings()
    )
    if not rows:
        return 0
    names = {
        State.EXPIRED.value: "expired",
        State.CANCELLED.value: "cancelled",
        State.FAILED.value: "work_order_failed",
    }
    events = [
        {
            "work_order_id": row["id"],
            "attempt": row["attempts"],
            "event_type": event_types[names[row["state"]]],
            "priority": HIGH,
            "meter_id": row["meter_id"],
            "concentrator_id": row["concentrator_id"],
            "occurred_at": row["ended_at"],
            "description": row["error_text"] or row["state"].lower(),
            "breaker_state": None,
            "routed_at": now,
        }
        for row in rows
    ]
    conn.execute(t.work_order_events.insert(), events)
    orders = _legacy_orders(conn, [row["id"] for row in rows])
    states = {row["id"]: row["state"] for row in rows}
    conn.execute(
        ob.insert(),
        [
            _outcome_row(
                orders[event["work_order_id"]], event, False, states[event["work_order_id"]]
            )
            for event in events
        ],
    )
    return len(events)


def due_rows(conn: Connection, priority: str, now: datetime, limit: int) -> list[dict[str, Any]]:
    """The next undelivered, live rows of one queue whose retry (if any) is due, in id
    order."""
    rows = conn.execute(
        sa.select(ob.c.id, ob.c.message_id, ob.c.kind, ob.c.priority, ob.c.payload,
                  ob.c.created_at, ob.c.attempts)
        .where(
            ob.c.delivered_at.is_(None),
            ob.c.dead_at.is_(None),
            ob.c.priority == priority,
            sa.or_(ob.c.next_attempt_at.is_(None), ob.c.next_attempt_at <= now),
        )
        .order_by(ob.c.id)
        .limit(limit)
    ).mappings()  # fmt: skip
    return [dict(row) for row in rows]


def waiting_rows(
    conn: Connection, priority: str, now: datetime, limit: int
) -> list[dict[str, Any]]:
    """Rows of one queue waiting for a retry (``id``, ``kind``, ``payload``), oldest first:
    the publisher holds back the later rows of their meters, to keep each meter's order."""
    rows = conn.execute(
        sa.select(ob.c.id, ob.c.kind, ob.c.payload)
        .where(
            ob.c.delivered_at.is_(None),
            ob.c.dead_at.is_(None),
            ob.c.priority == priority,
            ob.c.next_attempt_at > now,
        )
        .order_by(ob.c.id)
        .limit(limit)
    ).mappings()
    return [dict(row) for row in rows]


def record_failures(
    conn: Connection,
    failures: Mapping[int, str],
    *,
    now: datetime,
    max_attempts: int,
    backoff: timedelta,
    max_backoff: timedelta,
) -> list[int]:
    """Count a failed attempt on each row (id → error): the next try waits ``backoff``
    doubled per attempt (capped); the ``max_attempts``-th failure makes it a dead letter.
    Returns the ids that went dead."""
    if not failures:
        return []
    current = dict(
        conn.execute(sa.select(ob.c.id, ob.c.attempts).where(ob.c.id.in_(list(failures)))).all()
    )
    dead: list[int] = []
    for row_id, error in failures.items():
        attempts = int(current.get(row_id, 0)) + 1
        wait = min(backoff * (2 ** (attempts - 1)), max_backoff)
        gone = attempts >= max_attempts
        if gone:
            dead.append(row_id)
        conn.execute(
            ob.update()
            .where(ob.c.id == row_id)
            .values(
                attempts=attempts,
                last_error=error[:2000],
                next_attempt_at=None if gone else now + wait,
                dead_at=now if gone else None,
            )
        )
    return dead


@dataclass(frozen=True, slots=True)
class OutboxCounts:
    pending: Mapping[str, int]
    dead: int
    delivered: int


def outbox_counts(conn: Connection) -> OutboxCounts:
    pending: dict[str, int] = dict(
        conn.execute(
            sa.select(ob.c.priority, sa.func.count())
            .where(ob.c.delivered_at.is_(None), ob.c.dead_at.is_(None))
            .group_by(ob.c.priority)
        ).all()
    )
    dead = conn.execute(sa.select(sa.func.count()).where(ob.c.dead_at.is_not(None))).scalar_one()
    delivered = conn.execute(
        sa.select(sa.func.count()).where(ob.c.delivered_at.is_not(None))
    ).scalar_one()
    return OutboxCounts(pending, int(dead), int(delivered))


def dead_letters(conn: Connection, *, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    """Rows given up on, newest first, with their attempts and last error."""
    rows = conn.execute(
        sa.select(
            ob.c.id,
            ob.c.message_id,
            ob.c.kind,
            ob.c.priority,
            ob.c.payload,
            ob.c.created_at,
            ob.c.attempts,
            ob.c.last_error,
            ob.c.dead_at,
        )
        .where(ob.c.dead_at.is_not(None))
        .order_by(ob.c.dead_at.desc(), ob.c.id.desc())
        .limit(limit)
        .offset(offset)
    ).mappings()
    return [dict(row) for row in rows]


def requeue(conn: Connection, message_ids: Sequence[str] | None = None) -> int:
    """Put dead letters back in the queue (all of them when ``message_ids`` is None), with
    their attempt count reset; their MessageIDs stay the same."""
    query = ob.update().where(ob.c.dead_at.is_not(None))
    if message_ids is not None:
        query = query.where(ob.c.message_id.in_(list(message_ids)))
    result = conn.execute(query.values(dead_at=None, attempts=0, next_attempt_at=None))
    return int(result.rowcount)


def _insert_new(conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert rows keyed by ``message_id``; a MessageID already there is left as it is."""
    if not rows:
        return
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    statement = insert(table).on_conflict_do_nothing(index_elements=["message_id"])
    conn.execute(statement, [dict(row) for row in rows])


def store_legacy_inbox(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert messages into the Legacy inbox; a MessageID already there is left as it is
    (a redelivery after a crash between insert and ``delivered_at``)."""
    _insert_new(conn, t.legacy_inbox, rows)


def queue_messages(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Write outbox rows; a row whose MessageID is queued already is left out (a message
    with a stable MessageID written again by a rerun goes out once)."""
    _insert_new(conn, t.outbox, rows)
