"""Automatic MeterSync when a meter reports "clock not aligned" (ORD).

Behind a switch (on by default). At most one open MeterSync per meter: a repeated or
duplicated ORD alarm while one is pending or running queues nothing more.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import sqlalchemy as sa

from smmc.domain.work_orders import OPEN_STATES, ActivityType, Origin
from smmc.store import tables as t
from smmc.store.events import Applied
from smmc.store.work_orders import TargetRef, WorkOrderQueue

__all__ = ["ORD_KEY", "AutoSync"]

ORD_KEY = "normal1.1"
_LOG = logging.getLogger(__name__)


class AutoSync:
    """Queue MeterSync orders for the ORD events a batch opened."""

    def __init__(self, queue: WorkOrderQueue, *, enabled: bool = True) -> None:
        self.queue = queue
        self.enabled = enabled

    def _with_open_sync(self, serials: Iterable[str]) -> set[str]:
        m, wo = t.meters.c, t.work_orders.c
        with self.queue.engine.connect() as conn:
            rows = conn.execute(
                sa.select(m.serial_number)
                .select_from(t.work_orders.join(t.meters, m.id == wo.meter_id))
                .where(
                    m.serial_number.in_(sorted(serials)),
                    wo.activity == ActivityType.METER_SYNC.value,
                    wo.state.in_([state.value for state in OPEN_STATES]),
                )
            )
            return set(rows.scalars())

    def handle(self, applied: Applied) -> list[str]:
        """The meters a MeterSync was queued for (none when switched off)."""
        if not self.enabled:
            return []
        wanted = sorted(
            {
                row["device"]
                for row in applied.opened
                if row["key"] == ORD_KEY and row["device_kind"] == "meter"
            }
        )
        if not wanted:
            return []
        busy = self._with_open_sync(wanted)
        targets = [TargetRef(meter=serial) for serial in wanted if serial not in busy]
        if not targets:
            return []
        result = self.queue.submit(
            ActivityType.METER_SYNC,
            targets,
            origin=Origin.SCHEDULER,
            external_id="auto-sync:ORD",
        )
        for rejected in result.rejected:
            _LOG.info(
                "auto MeterSync not queued for %s: %s", rejected.target.label(), rejected.reason
            )
        rejected_serials = {r.target.meter for r in result.rejected}
        return [ref.meter for ref in targets if ref.meter and ref.meter not in rejected_serials]
