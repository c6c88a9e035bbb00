"""The events service a demo enters: the fleet's concentrators, given the head-end
address, push power frames and meter alarms over real sockets into the store."""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import socket

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from smmc.events.service import events_service
from smmc.sim.clock import SimClock
from smmc.sim.concentrator import HeadEndAddress
from smmc.sim.meter_device import MeterDevices
from smmc.sim.runner import serve_concentrators
from smmc.store import tables as t

from .sim_helpers import HOST, NOW, Wall, make_plan, provision, settle


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


async def test_demo_concentrators_push_to_the_events_service(db: Engine) -> None:
    base = make_plan(meters=4)
    fleet = dataclasses.replace(
        base.fleet,
        concentrators=dataclasses.replace(
            base.fleet.concentrators, host=HOST, first_port=_free_port()
        ),
    )
    plan = fleet.build(NOW)
    clock = SimClock(plan.epoch, 1.0, plan.fleet.time.history_days, wall=Wall(NOW))
    async with events_service(db, host=HOST, port=0, check_interval=3600) as listener:
        hook = functools.partial(
            serve_concentrators, head_end=HeadEndAddress(HOST, listener.bound_port)
        )
        async with hook(plan, MeterDevices(plan, clock), clock) as servers:
            (dc,) = servers
            provision(db, dc)
            for node in dc.nodes.values():
                dc.model(node.index).power_outage(
                    NOW - dt.timedelta(minutes=1), NOW + dt.timedelta(hours=1)
                )
            pushed = await dc.scan_alarms()
            await dc.power_off()
            await settle(listener, len(pushed) + 1)
            with db.connect() as conn:
                during = conn.execute(sa.select(t.outage_incidents)).mappings().one()
            await dc.power_on()
            await settle(listener, len(pushed) + 2)
    assert len(pushed) == 4
    assert during["is_open"] is True
    assert during["power_off_events"] == 5
    with db.connect() as conn:
        incident = conn.execute(sa.select(t.outage_incidents)).mappings().one()
        types = conn.execute(
            sa.select(t.spontaneous_messages.c.message_type).order_by(t.spontaneous_messages.c.id)
        ).scalars()
        stored = list(types)
        pup = conn.execute(
            sa.select(sa.func.count()).where(t.events.c.acronym == "PUP")
        ).scalar_one()
    assert incident["is_open"] is False
    assert incident["duration_s"] is not None
    assert stored == ["DLMS_PUSH"] * 4 + ["LVC_POWER_OFF", "LVC_POWER_ON"]
    assert pup == 4
    assert listener.undecoded == 0
