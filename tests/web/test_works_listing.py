"""The works listing (`WorkOrderQueue.list_orders`, ids first, joins for the page only) gives
exactly the page and total of the plain listing query for every view, filter and page, on
both backends."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from smmc.domain.work_orders import ActivityType, Origin, Outcome, View
from smmc.store.work_orders import TargetRef, WorkOrderFilter, WorkOrderQueue
from smmc.web.queries import Listing

if TYPE_CHECKING:
    from conftest import AssetFactory

METERS = ("UAA001", "UAA002", "UAB003", "UAB004")


@pytest.fixture
def queue(db: Engine, fleet: AssetFactory) -> WorkOrderQueue:
    """Orders of several activities and origins, some run to success, failure or cancel."""
    queue = WorkOrderQueue(db)
    for activity, origin in (
        (ActivityType.METER_SYNC, Origin.OPERATOR),
        (ActivityType.READING, Origin.SCHEDULER),
        (ActivityType.COMMISSIONING, Origin.OPERATOR),
        (ActivityType.METER_SYNC, Origin.LEGACY),
    ):
        queue.submit(activity, [TargetRef(meter=serial) for serial in METERS], origin=origin)
    queue.submit(ActivityType.DISCONNECT, [TargetRef(meter="UAA002")], reason="non_payment")
    queue.submit(ActivityType.MASTER_SYNC, [TargetRef(concentrator="TD-1000")])
    leased = queue.lease("w", 6, timedelta(minutes=5))
    for index, order in enumerate(leased):
        outcome = Outcome.success({}) if index % 2 else Outcome.failure("boom", retryable=False)
        queue.record(order, outcome)
    assert leased
    queue.cancel(queue.list_orders(WorkOrderFilter(view=View.PENDING), 1)[0][0]["id"])
    return queue


FILTERS = [
    WorkOrderFilter(),
    *(WorkOrderFilter(view=view) for view in View),
    WorkOrderFilter(batch_id=1),
    WorkOrderFilter(activity=ActivityType.METER_SYNC),
    WorkOrderFilter(concentrator="TD-1000"),
    WorkOrderFilter(meter="UAA002"),
    WorkOrderFilter(pod="POD-1"),
    WorkOrderFilter(meter="UAA002", view=View.PENDING),
    WorkOrderFilter(concentrator="TD-1000", activity=ActivityType.READING),
    WorkOrderFilter(meter="NO-SUCH-METER"),
]


def plain_listing(
    queue: WorkOrderQueue, filters: WorkOrderFilter, limit: int, offset: int
) -> Listing:
    """The listing as it was first written: count and page over the whole joined query."""
    query = queue.listing_query(filters)
    newest = query.selected_columns.id.desc()
    with queue.engine.connect() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(query.subquery()))
        rows = conn.execute(query.order_by(newest).limit(limit).offset(offset)).mappings().all()
        return Listing(rows, int(total.scalar_one()))


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: repr(f)[16:80])
def test_listing_matches_the_queue_on_every_page(
    queue: WorkOrderQueue, filters: WorkOrderFilter
) -> None:
    _, total = queue.list_orders(filters, 1000)
    for limit, offset in ((3, 0), (3, 3), (5, 10), (50, 0), (2, total)):
        expected = plain_listing(queue, filters, limit, offset)
        rows, listed_total = queue.list_orders(filters, limit, offset)
        assert listed_total == expected.total == total
        assert [dict(row) for row in rows] == [dict(row) for row in expected.rows]


def test_listing_by_end_date(queue: WorkOrderQueue) -> None:
    today = datetime.combine(date.today(), time(), UTC)
    ended = WorkOrderFilter(ended_from=today, ended_to=today + timedelta(days=1))
    rows, total = queue.list_orders(ended, 100)
    _, completed = queue.list_orders(WorkOrderFilter(view=View.COMPLETED), 100)
    assert total == completed > 1  # every final order ended today
    assert [row["id"] for row in rows] == [
        row["id"] for row in plain_listing(queue, ended, 100, 0).rows
    ]
