"""Issue 5 acceptance, sharing the queue: on PostgreSQL two `smmc worker` processes run one
batch spread over 100 concentrators of the simulated fleet over real TCP. No order runs
twice and no concentrator ever carried more associations at once than its permit (default
1) — both witnessed by the simulator's own record of its associations, beside the store.

The CI run uses 1,000 orders (100 concentrators × 5 meters × 2 cheap activities: status-word
read and outage check, zero PLC latency) to stay well under a minute on two cores; the
issue's 10,000 orders run in ``benchmarks/work_orders_acceptance.py`` (docs/benchmarks.md).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from wo_sim_workers import kill_all, served_fleet, spawn_worker, stop_workers, wait_for_batch

from smmc.domain.work_orders import ActivityType
from smmc.sim.concentrator import gateway_address
from smmc.store import tables as t
from smmc.store.work_orders import TargetRef, WorkOrderQueue

pytestmark = pytest.mark.postgres

CONCENTRATORS, PER_CONCENTRATOR = 100, 5
ACTIVITIES = (ActivityType.STATUS_WORD_READ, ActivityType.OUTAGE_CHECK)


async def test_two_worker_processes_share_a_batch_within_every_concentrator_permit(
    db: Engine, tmp_path: Path
) -> None:
    if db.dialect.name != "postgresql":
        pytest.skip("several worker processes share a queue on PostgreSQL only")
    async with served_fleet(db, tmp_path, CONCENTRATORS, PER_CONCENTRATOR) as fleet:
        serials = fleet.serials()
        queue = WorkOrderQueue(db)
        for activity in ACTIVITIES:
            result = queue.submit(activity, [TargetRef(meter=s) for s in serials])
            assert result.accepted == len(serials)
        total = len(serials) * len(ACTIVITIES)
        workers = [
            spawn_worker(db, fleet, name, lease_seconds=60, in_flight=32)
            for name in ("first", "second")
        ]
        try:
            await wait_for_batch(db, workers, timeout=600)
            assert await stop_workers(workers) == [0, 0]
        finally:
            kill_all(workers)
        records = {dc.spec.name: dc.record for dc in fleet.concentrators}
        associations = Counter(
            (dc.spec.name, span.address) for dc in fleet.concentrators for span in dc.record.spans
        )
        expected = Counter(
            {
                (dc.spec.name, gateway_address(node)): len(ACTIVITIES)
                for dc in fleet.concentrators
                for node in dc.nodes
            }
        )

    # The simulator: each meter was associated once per order, never more; no DC ever
    # carried two associations at once, by its counter and by the spans' timestamps.
    assert associations == expected
    assert {
        name: (r.peak, r.overlapping(), r.active) for name, r in records.items()
    } == dict.fromkeys(records, (1, 1, 0))
    # The store: every order completed in exactly one attempt, and both workers took part.
    with db.connect() as conn:
        wo, a = t.work_orders.c, t.work_order_attempts.c
        states = Counter(conn.execute(sa.select(wo.state)).scalars())
        attempts = [tuple(r) for r in conn.execute(sa.select(a.work_order_id, a.worker))]
    assert states == {"COMPLETED": total}
    assert len(attempts) == total
    assert len({order for order, _ in attempts}) == total
    by_worker = Counter(worker for _, worker in attempts)
    assert set(by_worker) == {"first", "second"}
