"""Outage check (ping): an association and a clock read prove the meter is supplied and
reachable; the failure text says why not."""

from __future__ import annotations

from smmc.domain.work_orders import ActivityType
from smmc.engine.activities.base import FieldExecutor, FieldResult
from smmc.store.work_orders import LeasedOrder

__all__ = ["OutageCheckExecutor"]


class OutageCheckExecutor(FieldExecutor):
    activity = ActivityType.OUTAGE_CHECK

    async def run(self, order: LeasedOrder) -> FieldResult:
        async with self.drivers.meter(
            self.meter_id(order), order.concentrator_id, order.priority
        ) as meter:
            clock = await meter.clock()
        return FieldResult({"reachable": True, "clock": clock.isoformat()})
