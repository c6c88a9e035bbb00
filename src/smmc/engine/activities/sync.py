"""MeterSync and concentrator sync.

MeterSync sets the meter clock to the reference time: the concentrator's clock for a meter
behind one (the DC is the time reference of its PLC network), the head-end's clock for a
point-to-point meter. Concentrator sync (MasterSync) sets the DC clock to the head-end's.
Both report the deviation they corrected.
"""

from __future__ import annotations

from smmc.domain.work_orders import ActivityType
from smmc.engine.activities.base import FieldExecutor, FieldResult
from smmc.store.work_orders import LeasedOrder

__all__ = ["ConcentratorSyncExecutor", "MeterSyncExecutor"]


class MeterSyncExecutor(FieldExecutor):
    activity = ActivityType.METER_SYNC

    async def run(self, order: LeasedOrder) -> FieldResult:
        meter_id = self.meter_id(order)
        access = await self.drivers.meter_access(meter_id)
        async with self.drivers.meter(meter_id, order.concentrator_id, order.priority) as meter:
            before = await meter.clock()
            if access.concentrator is not None:
                reference = await self.drivers.concentrator_time(access.concentrator)
                source = "concentrator"
            else:
                reference = self.context.now()
                source = "head-end"
            await meter.set_clock(reference)
            after = await meter.clock()
        return FieldResult(
            {
                "source": source,
                "deviation_s": round((before - reference).total_seconds(), 3),
                "clock_before": before.isoformat(),
                "clock_after": after.isoformat(),
            }
        )


class ConcentratorSyncExecutor(FieldExecutor):
    activity = ActivityType.MASTER_SYNC

    async def run(self, order: LeasedOrder) -> FieldResult:
        async with self.drivers.concentrator(self.concentrator_id(order), order.priority) as dc:
            before = await dc.clock()
            reference = self.context.now()
            await dc.set_clock(reference)
            after = await dc.clock()
        return FieldResult(
            {
                "deviation_s": round((before - reference).total_seconds(), 3),
                "clock_before": before.isoformat(),
                "clock_after": after.isoformat(),
            }
        )
