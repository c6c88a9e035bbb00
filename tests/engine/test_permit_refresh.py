"""Concentrator permits changed in the store apply to a running worker's session manager
(re-read every ``reload_every`` seconds), not only at worker start."""

from __future__ import annotations

import asyncio
from functools import partial

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from wo_fixtures import add_fleet

from smmc.field.sessions import SessionManager, load_permits
from smmc.store import tables as t
from smmc.store.work_orders import WorkOrderQueue


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def _granted(sessions: SessionManager, meter_id: int, dc_id: int) -> bool:
    """Whether a session to ``meter_id`` through ``dc_id`` is granted at once."""

    async def take() -> None:
        async with sessions.session(meter_id=meter_id, concentrator_id=dc_id):
            pass

    try:
        await asyncio.wait_for(take(), 0.2)
    except TimeoutError:
        return False
    return True


async def test_permits_changed_in_the_store_apply_after_the_reload_interval(
    db: Engine, queue: WorkOrderQueue
) -> None:
    add_fleet(db, {"DC-A": 3})
    with db.connect() as conn:
        dc_id = conn.execute(sa.select(t.concentrators.c.id)).scalar_one()
    ticks = Ticks()
    sessions = SessionManager(
        permits=load_permits(db), clock=ticks, reload=partial(load_permits, db), reload_every=30
    )
    async with sessions.session(meter_id=1, concentrator_id=dc_id):
        assert not await _granted(sessions, 2, dc_id)  # default permit: 1
        await asyncio.to_thread(queue.set_permits, "DC-A", 2)
        ticks.now = 29.0
        assert not await _granted(sessions, 2, dc_id)  # not re-read yet
        ticks.now = 30.0
        assert await _granted(sessions, 2, dc_id)  # re-read: two sessions at once
        assert sessions.concentrator_peak(dc_id) == 2
        await asyncio.to_thread(queue.set_permits, "DC-A", 1)
        ticks.now = 60.0
        assert not await _granted(sessions, 3, dc_id)  # back to one


async def test_a_failed_reload_keeps_the_permits_in_force() -> None:
    def unreachable() -> dict[int, int]:
        raise OperationalError("SELECT", {}, Exception("connection refused"))

    ticks = Ticks()
    sessions = SessionManager(permits={7: 2}, clock=ticks, reload=unreachable, reload_every=5)
    ticks.now = 6.0
    async with sessions.session(meter_id=1, concentrator_id=7):
        assert await _granted(sessions, 2, 7)
    assert sessions.permits_of(7) == 2


@pytest.mark.parametrize("every", [0.0, -1.0])
def test_reload_interval_must_be_positive(every: float) -> None:
    with pytest.raises(ValueError, match="reload_every"):
        SessionManager(reload=dict, reload_every=every)
