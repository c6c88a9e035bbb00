"""The session manager: concentrator permits, one session per meter, the high-priority pool
and the connection rate, with the simulator's PLC history as the independent witness."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from field_sim import SimFleet, sim_fleet
from sqlalchemy.engine import Engine

from smmc.field.drivers import FieldDrivers
from smmc.field.sessions import SessionLimits, SessionManager
from smmc.sim.plc import Exchange, LinkSettings
from smmc.store.secrets import SecretBox
from smmc.store.work_orders import WorkOrderQueue

LINK = LinkSettings(latency_s=0.004, bytes_per_s=1e9)
READS = 2
EXCHANGES = 3 + READS  # AARQ, HLS pass 3, the reads, RLRQ


async def _session(drivers: FieldDrivers, meter_id: int) -> None:
    async with drivers.meter(meter_id) as meter:
        for _ in range(READS):
            await meter.clock()


def _sessions(history: list[Exchange], aarq_bytes: int) -> list[list[Exchange]]:
    """The history cut before every association request."""
    segments: list[list[Exchange]] = []
    for exchange in history:
        if exchange.request_bytes == aarq_bytes or not segments:
            segments.append([])
        segments[-1].append(exchange)
    return segments


async def _warm_up(fleet: SimFleet, drivers: FieldDrivers, serial: str) -> int:
    """One lone session; its first exchange is the size of every association request."""
    dc = fleet.dc()
    dc.link.history.clear()
    await _session(drivers, fleet.meter_id(serial))
    first = dc.link.history[0]
    assert len(dc.link.history) == EXCHANGES
    dc.link.history.clear()
    return first.request_bytes


async def test_concentrator_permit_is_never_exceeded(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    async with sim_fleet(
        db, secret_box, tmp_path, per_concentrator=4, point_to_point=0, link=LINK
    ) as fleet:
        dc = fleet.dc()
        serials = fleet.gateway_serials(dc)
        ids = [fleet.meter_id(serial) for serial in serials]
        drivers = fleet.drivers()
        aarq = await _warm_up(fleet, drivers, serials[0])
        await asyncio.gather(*(_session(drivers, meter_id) for meter_id in ids * 2))
        segments = _sessions(list(dc.link.history), aarq)
        assert len(segments) == 2 * len(ids)
        for segment in segments:  # each session ran alone on its concentrator
            assert len({e.node_address for e in segment}) == 1
            assert len(segment) == EXCHANGES
        assert drivers.sessions.concentrator_peak(fleet.concentrator_id(dc.spec.name)) == 1

        # The witness does see overlap: with two permits the sessions interleave.
        WorkOrderQueue(db).set_permits(dc.spec.name, 2)
        drivers = fleet.drivers()
        dc.link.history.clear()
        await asyncio.gather(*(_session(drivers, meter_id) for meter_id in ids * 2))
        segments = _sessions(list(dc.link.history), aarq)
        assert any(len({e.node_address for e in segment}) > 1 for segment in segments)
        assert drivers.sessions.concentrator_peak(fleet.concentrator_id(dc.spec.name)) == 2


async def test_never_two_sessions_to_one_meter(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    async with sim_fleet(
        db, secret_box, tmp_path, per_concentrator=2, point_to_point=0, link=LINK
    ) as fleet:
        dc = fleet.dc()
        WorkOrderQueue(db).set_permits(dc.spec.name, 3)
        drivers = fleet.drivers()
        first, second = fleet.gateway_serials(dc)
        aarq = await _warm_up(fleet, drivers, first)
        node = dc.node_by_serial(first)
        assert node is not None
        one, other = fleet.meter_id(first), fleet.meter_id(second)
        await asyncio.gather(
            _session(drivers, one),
            _session(drivers, one),
            _session(drivers, other),
            _session(drivers, one),
        )
        history = list(dc.link.history)
        mine = [e for e in history if e.node_address == node.node_address]
        # Three complete sessions of that meter one after the other, never two open at once.
        assert len(mine) == 3 * EXCHANGES
        starts = [i for i, e in enumerate(mine) if e.request_bytes == aarq]
        assert starts == [0, EXCHANGES, 2 * EXCHANGES]
        # …while the other meter's session ran in between (the permits allowed it).
        others = [i for i, e in enumerate(history) if e.node_address != node.node_address]
        assert others
        assert min(others) < max(
            i for i, e in enumerate(history) if e.node_address == node.node_address
        )


async def test_high_priority_pool_and_priority_order() -> None:
    manager = SessionManager(SessionLimits(max_sessions=2, reserved_high=1, high_priority=7))
    order: list[str] = []
    release = asyncio.Event()

    async def hold(name: str, meter_id: int, priority: int) -> None:
        async with manager.session(meter_id=meter_id, priority=priority):
            order.append(name)
            await release.wait()

    low = asyncio.create_task(hold("low-1", 1, 2))
    await asyncio.sleep(0)
    waiting_low = asyncio.create_task(hold("low-2", 2, 2))
    await asyncio.sleep(0.01)
    assert order == ["low-1"]  # the last slot is reserved for high priority
    high = asyncio.create_task(hold("high", 3, 9))
    await asyncio.sleep(0.01)
    assert order == ["low-1", "high"]
    assert manager.pool.in_use == 2
    release.set()
    await asyncio.gather(low, waiting_low, high)
    assert order == ["low-1", "high", "low-2"]
    assert manager.pool.in_use == 0


async def test_waiters_on_a_concentrator_are_served_by_priority() -> None:
    manager = SessionManager(SessionLimits(max_sessions=8, reserved_high=0))
    order: list[int] = []
    gate = asyncio.Event()

    async def hold(meter_id: int, priority: int) -> None:
        async with manager.session(meter_id=meter_id, concentrator_id=1, priority=priority):
            order.append(priority)
            await gate.wait()

    first = asyncio.create_task(hold(1, 0))
    await asyncio.sleep(0)
    rest = [asyncio.create_task(hold(10 + p, p)) for p in (1, 5, 3, 9)]
    await asyncio.sleep(0.01)
    assert order == [0]
    gate.set()
    await asyncio.gather(first, *rest)
    assert order == [0, 9, 5, 3, 1]
    assert manager.concentrator_peak(1) == 1


async def test_new_connection_rate_limit() -> None:
    manager = SessionManager(SessionLimits(connect_rate=50.0, connect_burst=1))

    async def one(meter_id: int) -> None:
        async with manager.session(meter_id=meter_id):
            pass

    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(6)))
    elapsed = time.monotonic() - started
    assert elapsed >= 5 / 50.0 * 0.9
    assert manager.opened == 6


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError, match="reserved_high"):
        SessionLimits(max_sessions=2, reserved_high=2)
    with pytest.raises(ValueError, match="connect_rate"):
        SessionLimits(connect_rate=0.0)
