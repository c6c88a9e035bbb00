"""The listener's writer lanes: every device in arrival order, one incident per scope."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from smmc.dlms.apdu import DataNotification
from smmc.dlms.axdr import Data
from smmc.dlms.framing.wrapper import WrapperFrame
from smmc.events.listener import Received, SpontaneousListener
from smmc.store import tables as t

from .sim_helpers import HOST, NOW, settle

ROUNDS = 4
"""PUP set, cleared, set, cleared… ten minutes apart (beyond the reopening window)."""


def _push(serial: str, normal1: int) -> bytes:
    """A relayed alarm {serial, node, normal1..extended2}, as the concentrator sends it."""
    words = (normal1, 0, 0, 0)
    body = Data.structure(
        (
            Data.octet_string(serial.encode("ascii")),
            Data.long_unsigned(1),
            *(Data.long_unsigned(word) for word in words),
        )
    )
    return WrapperFrame(1, 0x1001, 1, DataNotification(body).to_bytes()).to_bytes()


def _fleet(db: Engine) -> dict[str, list[str]]:
    """Transformer TR-A feeds concentrators A1 and A2, TR-B feeds B1; three meters each
    (a device's next push is a batch or two behind: lanes out of order would show)."""
    serials: dict[str, list[str]] = {}
    with db.begin() as conn:
        sub = conn.execute(
            t.substations.insert().values(name="SE-L").returning(t.substations.c.id)
        ).scalar_one()
        for code, dcs in (("TR-A", ("A1", "A2")), ("TR-B", ("B1",))):
            tr = conn.execute(
                t.transformers.insert()
                .values(code=code, substation_id=sub)
                .returning(t.transformers.c.id)
            ).scalar_one()
            for name in dcs:
                dc = conn.execute(
                    t.concentrators.insert()
                    .values(name=name, serial_number=f"DC-{name}", transformer_id=tr)
                    .returning(t.concentrators.c.id)
                ).scalar_one()
                serials[name] = [f"M-{name}-{n:02d}" for n in range(3)]
                conn.execute(
                    t.meters.insert(),
                    [{"serial_number": s, "concentrator_id": dc} for s in serials[name]],
                )
    return serials


@pytest.mark.parametrize("lanes", [1, 2])
async def test_lanes_keep_each_device_in_order_and_one_incident_per_transformer(
    db: Engine, lanes: int
) -> None:
    if lanes > 1 and db.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: one lane")
    serials = _fleet(db)
    meters = [serial for names in serials.values() for serial in names]
    listener = SpontaneousListener(db, host=HOST, port=0, batch_size=7, lanes=lanes)
    async with listener:
        for rnd in range(ROUNDS):
            at = NOW + dt.timedelta(minutes=10 * rnd)
            for n, serial in enumerate(meters):
                received = at + dt.timedelta(milliseconds=n)
                listener.enqueue(Received(_push(serial, 1 - rnd % 2), received, "tcp", HOST, 1))
        await settle(listener, ROUNDS * len(meters))
    e, i = t.events.c, t.outage_incidents.c
    with db.connect() as conn:
        events = conn.execute(
            sa.select(e.device, e.opened_at, e.closed_at, e.is_active).order_by(e.id)
        ).all()
        incidents = conn.execute(
            sa.select(i.scope_key, i.power_off_events, i.is_open).order_by(i.id)
        ).all()
        members = conn.execute(sa.select(sa.func.count()).select_from(t.outage_members))
        member_count = members.scalar_one()
        codes = conn.execute(sa.select(t.transformers.c.code, t.transformers.c.id)).all()
    transformers = dict(codes)
    assert listener.stored == ROUNDS * len(meters)
    assert listener.undecoded == 0
    for serial in meters:  # in arrival order: opened, closed, opened again, closed again
        mine = [row[1:] for row in events if row[0] == serial]
        start = mine[0][0]
        assert mine == [
            (start, start + dt.timedelta(minutes=10), False),
            (start + dt.timedelta(minutes=20), start + dt.timedelta(minutes=30), False),
        ]
    a, b = str(transformers["TR-A"]), str(transformers["TR-B"])
    assert sorted(incidents) == [(a, 6, False), (a, 6, False), (b, 3, False), (b, 3, False)]
    assert member_count == 2 * len(meters)
    if lanes > 1:  # the two transformers were written by different lanes
        assert sorted(listener._lane_of_scope.values()) == [0, 1]


def test_more_than_one_lane_is_refused_on_sqlite() -> None:
    engine = sa.create_engine("sqlite://")
    with pytest.raises(ValueError, match="SQLite takes one"):
        SpontaneousListener(engine, lanes=2)


def test_unknown_devices_take_a_lane_by_hash_and_are_not_remembered() -> None:
    engine = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1/never-connected")
    listener = SpontaneousListener(engine, lanes=2)
    strangers = [("meter", f"GARBAGE{n}") for n in range(50)]
    lanes = [listener._lane_of(scope, known=False) for scope in strangers]
    assert set(lanes) == {0, 1}
    assert [listener._lane_of(scope, known=False) for scope in strangers] == lanes
    assert listener._lane_of_scope == {}
    first = listener._lane_of(("transformer", "7"), known=True)
    assert listener._lane_of_scope == {("transformer", "7"): first}
