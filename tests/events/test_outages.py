"""A simulated outage of a whole concentrator becomes one incident, closed on restoration."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from smmc.events.listener import SpontaneousListener
from smmc.store import tables as t

from .sim_helpers import HOST, NOW, make_dc, make_plan, provision, settle


async def test_whole_concentrator_outage_is_one_incident_closed_on_power_on(db: Engine) -> None:
    plan = make_plan(meters=5)
    async with SpontaneousListener(db, host=HOST, port=0) as listener:
        dc = make_dc(plan, listener.bound_port)
        provision(db, dc)
        async with dc:
            for node in dc.nodes.values():
                dc.model(node.index).power_outage(
                    NOW - dt.timedelta(minutes=1), NOW + dt.timedelta(hours=1)
                )
            pushed = await dc.scan_alarms()
            await dc.power_off()
            expected = len(pushed) + 1
            await settle(listener, expected)
            with db.connect() as conn:
                during = conn.execute(sa.select(t.outage_incidents)).mappings().all()
            await dc.power_on()
            await settle(listener, expected + 1)
    assert len(pushed) == len(dc.nodes) == 5
    assert len(during) == 1
    assert during[0]["is_open"] is True
    assert during[0]["power_off_events"] == 6  # five last gasps and the DC's own frame
    assert during[0]["scope"] == "transformer"
    with db.connect() as conn:
        incidents = conn.execute(sa.select(t.outage_incidents)).mappings().all()
        members = conn.execute(sa.select(t.outage_members)).mappings().all()
        messages = (
            conn.execute(sa.select(t.outbox.c.payload).where(t.outbox.c.kind == "outage"))
            .scalars()
            .all()
        )
    assert len(incidents) == 1
    incident = incidents[0]
    assert incident["is_open"] is False
    assert incident["ended_at"] is not None
    assert incident["duration_s"] == (incident["ended_at"] - incident["started_at"]).total_seconds()
    assert incident["duration_s"] >= 0
    assert {(m["device_kind"], m["device"]) for m in members} == {
        ("concentrator", dc.spec.serial),
        *(("meter", node.serial) for node in dc.nodes.values()),
    }
    assert len(messages) == 2  # opened, closed


async def test_power_off_after_restoration_beyond_the_window_is_a_new_incident(db: Engine) -> None:
    from smmc.store.events import Occurrence, apply_events

    serial = "21LVM50AE000816"
    t0 = dt.datetime(2026, 4, 10, 12, 0, tzinfo=dt.UTC)

    def power(kind: str, at: dt.datetime) -> None:
        with db.begin() as conn:
            apply_events(
                conn,
                occurrences=[
                    Occurrence(
                        "concentrator",
                        serial,
                        kind,
                        at,
                        "test",
                        active=kind == "LVC_POWER_OFF",
                        closes=None if kind == "LVC_POWER_OFF" else "LVC_POWER_OFF",
                    )
                ],
            )

    power("LVC_POWER_OFF", t0)
    power("LVC_POWER_ON", t0 + dt.timedelta(minutes=5))
    power("LVC_POWER_OFF", t0 + dt.timedelta(minutes=5, seconds=30))  # flicker: same incident
    power("LVC_POWER_ON", t0 + dt.timedelta(minutes=6))
    power("LVC_POWER_OFF", t0 + dt.timedelta(minutes=10))  # a new outage
    with db.connect() as conn:
        rows = (
            conn.execute(sa.select(t.outage_incidents).order_by(t.outage_incidents.c.id))
            .mappings()
            .all()
        )
    assert [(r["is_open"], r["power_off_events"]) for r in rows] == [(False, 2), (True, 1)]
    assert rows[0]["duration_s"] == 360.0
