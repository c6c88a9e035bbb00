"""Commissioning and decommissioning of a meter through its concentrator's node management
object (docs/protocol/concentrator.md): the DC answers done/not done with the catalog text."""

from __future__ import annotations

from smmc.domain.error_catalog import parse_error
from smmc.domain.work_orders import ActivityType
from smmc.engine.activities.base import FieldContext, FieldExecutor, FieldResult
from smmc.field.errors import FieldFailure, UnknownDevice
from smmc.store.work_orders import LeasedOrder

__all__ = ["CommissioningExecutor"]


class CommissioningExecutor(FieldExecutor):
    def __init__(self, context: FieldContext, *, decommission: bool) -> None:
        super().__init__(context)
        self.decommission = decommission
        self.activity = ActivityType.DECOMMISSIONING if decommission else ActivityType.COMMISSIONING

    async def run(self, order: LeasedOrder) -> FieldResult:
        if order.meter_serial is None:
            raise UnknownDevice(f"work order {order.id} has no meter serial")
        async with self.drivers.concentrator(self.concentrator_id(order), order.priority) as dc:
            if self.decommission:
                done, text = await dc.decommission(order.meter_serial)
            else:
                done, text = await dc.commission(order.meter_serial)
        if not done:
            raise FieldFailure(parse_error(text))
        return FieldResult({"text": text})
