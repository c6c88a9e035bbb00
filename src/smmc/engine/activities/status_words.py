"""Self-diagnostic: the meter's four status words (DOMAIN.md §4)."""

from __future__ import annotations

from smmc.domain.work_orders import ActivityType
from smmc.engine.activities.base import FieldExecutor, FieldResult
from smmc.store.work_orders import LeasedOrder

__all__ = ["StatusWordExecutor"]


class StatusWordExecutor(FieldExecutor):
    activity = ActivityType.STATUS_WORD_READ

    async def run(self, order: LeasedOrder) -> FieldResult:
        async with self.drivers.meter(
            self.meter_id(order), order.concentrator_id, order.priority
        ) as meter:
            normal1, normal2, extended1, extended2 = await meter.status_words()
        return FieldResult(
            {"normal1": normal1, "normal2": normal2, "extended1": extended1, "extended2": extended2}
        )
