"""Consecutive sessions with a concentrator share one TCP connection: reuse happens, a dead
connection is replaced before anything is sent, an error discards the connection, and the
DC's own record still never sees more associations than permits."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from field_sim import SimFleet, sim_fleet
from sqlalchemy.engine import Engine

from smmc.field.drivers import FieldDrivers, gateway_address
from smmc.field.errors import FieldFailure
from smmc.sim.concentrator import MANAGEMENT_ADDRESS, ConcentratorServer
from smmc.sim.plc import LinkSettings
from smmc.store.secrets import SecretBox
from smmc.store.work_orders import WorkOrderQueue


@pytest.fixture
async def fleet(db: Engine, secret_box: SecretBox, tmp_path: Path) -> AsyncIterator[SimFleet]:
    """One concentrator with three meters behind it, no PLC latency."""
    async with sim_fleet(db, secret_box, tmp_path, per_concentrator=3, point_to_point=0) as made:
        yield made


async def _clock(drivers: FieldDrivers, meter_id: int) -> None:
    async with drivers.meter(meter_id) as meter:
        await meter.clock()


def _one_after_the_other(dc: ConcentratorServer) -> bool:
    spans = sorted(dc.record.spans, key=lambda span: span.number)
    return all(earlier.closed <= later.opened for earlier, later in itertools.pairwise(spans))


async def test_consecutive_sessions_share_one_connection(fleet: SimFleet) -> None:
    dc = fleet.dc()
    drivers = fleet.drivers()
    serials = fleet.gateway_serials(dc)
    for serial in serials * 2:
        await _clock(drivers, fleet.meter_id(serial))
    async with drivers.concentrator(fleet.concentrator_id(dc.spec.name)) as management:
        assert await management.status_word() == dc.status_word()
    assert (drivers.links.opened, drivers.links.reused) == (1, 2 * len(serials))
    # The DC's witness: one association per session, each closed before the next.
    spans = sorted(dc.record.spans, key=lambda span: span.number)
    addresses = [gateway_address(address) for address in sorted(dc.nodes)]  # serials' order
    assert [span.address for span in spans] == addresses * 2 + [MANAGEMENT_ADDRESS]
    assert (dc.record.active, dc.record.peak) == (0, 1)
    assert _one_after_the_other(dc)
    assert dc.errors == []
    drivers.close()


async def test_fresh_connections_when_reuse_is_off(fleet: SimFleet) -> None:
    dc = fleet.dc()
    dc_id = fleet.concentrator_id(dc.spec.name)
    for drivers in (
        fleet.drivers(reuse_connections=False),
        fleet.drivers(fresh_connections=frozenset({dc_id})),  # type: ignore[arg-type]
    ):
        for serial in fleet.gateway_serials(dc):
            await _clock(drivers, fleet.meter_id(serial))
        assert (drivers.links.opened, drivers.links.reused) == (0, 0)
    assert dc.record.opened == 2 * len(dc.nodes)


async def test_a_connection_the_dc_dropped_is_replaced_before_the_association(
    fleet: SimFleet,
) -> None:
    dc = fleet.dc()
    drivers = fleet.drivers()
    first, second = (fleet.meter_id(s) for s in fleet.gateway_serials(dc)[:2])
    await _clock(drivers, first)
    await dc.stop()  # the DC restarts: its end of the kept connection is gone
    await dc.start()
    await _clock(drivers, second)
    links = drivers.links
    assert (links.opened, links.replaced, links.reused) == (2, 1, 0)
    assert dc.record.opened == 2
    drivers.close()


async def test_an_error_discards_the_connection(fleet: SimFleet) -> None:
    dc = fleet.dc()
    dc_id = fleet.concentrator_id(dc.spec.name)
    drivers = fleet.drivers()
    links = drivers.links
    endpoint = (dc.host, dc.port)
    first, second = fleet.gateway_serials(dc)[:2]
    await _clock(drivers, fleet.meter_id(first))
    assert links.idle_count(endpoint) == 1

    async def give_up_mid_session() -> None:
        async with drivers.concentrator(dc_id) as management:
            await management.status_word()
            raise RuntimeError("the caller's own failure mid-session")

    with pytest.raises(RuntimeError):
        await give_up_mid_session()
    assert (links.reused, links.idle_count(endpoint)) == (1, 0)  # taken, then dropped
    # A gateway refusal (the DC answers itself and hangs up): that connection is
    # dropped; the management session that reads the DC's acknowledgement log after
    # it opens one of its own and keeps it.
    dc.decommission(second)
    with pytest.raises(FieldFailure, match="CE not present"):
        await _clock(drivers, fleet.meter_id(second))
    assert (links.opened, links.idle_count(endpoint)) == (3, 1)
    dc.commission(second)
    await _clock(drivers, fleet.meter_id(second))
    assert (links.opened, links.reused) == (3, 2)
    assert dc.record.active == 0
    drivers.close()


async def test_permits_bound_associations_and_kept_connections(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    link = LinkSettings(latency_s=0.002, bytes_per_s=1e9)
    async with sim_fleet(
        db, secret_box, tmp_path, per_concentrator=6, point_to_point=0, link=link
    ) as fleet:
        dc = fleet.dc()
        WorkOrderQueue(db).set_permits(dc.spec.name, 2)
        drivers = fleet.drivers()
        ids = [fleet.meter_id(s) for s in fleet.gateway_serials(dc)]
        await asyncio.gather(*(_clock(drivers, meter_id) for meter_id in ids * 3))
        assert dc.record.opened == 3 * len(ids)
        assert dc.record.peak == 2
        assert dc.record.overlapping() == 2
        assert drivers.links.opened <= 2
        assert drivers.links.reused == 3 * len(ids) - drivers.links.opened
        assert drivers.links.idle_count((dc.host, dc.port)) <= 2
        assert dc.errors == []
        drivers.close()
