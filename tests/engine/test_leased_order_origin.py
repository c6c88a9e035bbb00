"""A leased order carries who asked and the caller's correlation id (Legacy's
CorrelationID), so executors and events can answer in the caller's terms."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Engine
from wo_fixtures import add_fleet

from smmc.domain.work_orders import ActivityType, Origin
from smmc.store.work_orders import TargetRef, WorkOrderQueue


def test_leased_orders_carry_origin_and_external_id(db: Engine, queue: WorkOrderQueue) -> None:
    add_fleet(db, {"DC-A": 1, "DC-B": 1})
    legacy = queue.submit(
        ActivityType.READING,
        [TargetRef(meter="M-DC-A-0")],
        origin=Origin.LEGACY,
        external_id="CORR-7f3a",
    )
    operator = queue.submit(ActivityType.READING, [TargetRef(meter="M-DC-B-0")])
    leased = {order.batch_id: order for order in queue.lease("w1", 10, timedelta(minutes=1))}
    assert set(leased) == {legacy.batch_id, operator.batch_id}
    from_legacy, from_operator = leased[legacy.batch_id], leased[operator.batch_id]
    assert (from_legacy.origin, from_legacy.external_id) == (Origin.LEGACY, "CORR-7f3a")
    assert (from_operator.origin, from_operator.external_id) == (Origin.OPERATOR, None)
