"""Concentrator-state monitoring: a DC that has not reported within a configurable time
raises an alarm (the seed: "a failure sending alarms is detected by concentrator-state
monitoring"); the alarm closes when the DC reports again.

A report is anything the DC sent or relayed: a spontaneous frame, a meter push it relayed,
or its own status word read by the head-end.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from smmc.store import tables as t
from smmc.store.events import Applied, Occurrence, apply_events

__all__ = ["DEFAULT_SILENCE", "check_concentrators", "last_reports", "monitor_forever"]

DEFAULT_SILENCE = timedelta(hours=1)
NOT_REPORTING = "DC_NOT_REPORTING"
_LOG = logging.getLogger(__name__)


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def last_reports(conn: Connection) -> dict[int, datetime | None]:
    """When each concentrator last reported (None: never)."""
    c, s, m, w = t.concentrators.c, t.spontaneous_messages.c, t.meters.c, t.device_status_words.c
    dcs = conn.execute(sa.select(c.id, c.name, c.serial_number)).all()
    by_label: dict[str, int] = {}
    for dc_id, name, serial in dcs:
        by_label[name] = dc_id
        if serial:
            by_label[serial] = dc_id
    seen: dict[int, datetime | None] = {dc_id: None for dc_id, _, _ in dcs}
    own = conn.execute(
        sa.select(s.device, sa.func.max(s.received_at))
        .where(s.device.in_(sorted(by_label)))
        .group_by(s.device)
    )
    words = conn.execute(
        sa.select(w.device, sa.func.max(w.observed_at))
        .where(w.device_kind == "concentrator")
        .group_by(w.device)
    )
    for label, at in [*own, *words]:
        dc_id = by_label.get(label)
        if dc_id is not None:
            seen[dc_id] = _later(
                seen[dc_id], t.UtcDateTime().process_result_value(at, conn.dialect)
            )
    relayed = conn.execute(
        sa.select(m.concentrator_id, sa.func.max(s.received_at))
        .select_from(t.spontaneous_messages.join(t.meters, m.serial_number == s.device))
        .where(m.concentrator_id.is_not(None))
        .group_by(m.concentrator_id)
    )
    for dc_id, at in relayed:
        if dc_id in seen:
            seen[dc_id] = _later(
                seen[dc_id], t.UtcDateTime().process_result_value(at, conn.dialect)
            )
    return seen


def check_concentrators(
    engine: Engine, silence: timedelta = DEFAULT_SILENCE, now: datetime | None = None
) -> Applied:
    """Raise DC_NOT_REPORTING for every DC silent longer than ``silence``; close it for
    the ones that reported again. One transaction."""
    moment = now or datetime.now(UTC)
    c = t.concentrators.c
    with engine.begin() as conn:
        reports = last_reports(conn)
        dcs = conn.execute(sa.select(c.id, c.name, c.serial_number, c.created_at)).all()
        occurrences = []
        for dc_id, name, serial, created in dcs:
            label = serial or name
            last = reports.get(dc_id) or created
            if moment - last > silence:
                description = (
                    f"Concentrator {name} has not reported since {last.isoformat()}"
                    if reports.get(dc_id)
                    else f"Concentrator {name} has never reported"
                )
                occurrences.append(
                    Occurrence(
                        "concentrator",
                        label,
                        NOT_REPORTING,
                        moment,
                        "monitor",
                        description=description,
                        active=True,
                    )
                )
            else:
                occurrences.append(
                    Occurrence(
                        "concentrator",
                        label,
                        NOT_REPORTING,
                        moment,
                        "monitor",
                        closes=NOT_REPORTING,
                        record=False,
                    )
                )
        return apply_events(conn, occurrences=occurrences, now=moment)


async def monitor_forever(
    engine: Engine, silence: timedelta = DEFAULT_SILENCE, interval: float = 60.0
) -> None:
    """Check every ``interval`` seconds; a database outage is logged and retried."""
    while True:
        try:
            await asyncio.to_thread(check_concentrators, engine, silence)
        except SQLAlchemyError as exc:
            _LOG.warning("concentrator monitoring failed: %s", exc)
        await asyncio.sleep(interval)
