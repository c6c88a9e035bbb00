"""The spontaneous-message listener over real TCP and UDP sockets."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import socket
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from smmc.dlms.apdu import DataNotification
from smmc.dlms.axdr import Data
from smmc.dlms.framing.wrapper import WrapperFrame
from smmc.domain.events import load_catalog
from smmc.domain.spontaneous import PowerEvent, PowerFrame, encode_power_frame
from smmc.events import listener as listener_module
from smmc.events.decode import Decoded
from smmc.events.listener import Received, SpontaneousListener
from smmc.store import tables as t
from smmc.store.events import Applied

from .sim_helpers import HOST, NOW, make_dc, make_plan, settle

SEED_ON = bytes.fromhex("011300184E6B001214030902071532314C564D3530414530303038313602")
SEED_OFF = bytes.fromhex("011300184E6F0012090D2503071532314C564D3530414530303038313601")


async def _send_tcp(port: int, *payloads: bytes) -> None:
    _, writer = await asyncio.open_connection(HOST, port)
    for payload in payloads:
        writer.write(payload)
    await writer.drain()
    writer.close()
    await writer.wait_closed()


def _send_udp(port: int, payload: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(payload, (HOST, port))


def _messages(db: Engine) -> list[sa.RowMapping]:
    with db.connect() as conn:
        return list(
            conn.execute(
                sa.select(t.spontaneous_messages).order_by(t.spontaneous_messages.c.id)
            ).mappings()
        )


async def test_seed_frames_decode_to_the_seed_report_row(db: Engine) -> None:
    async with SpontaneousListener(db, host=HOST, port=0) as listener:
        await _send_tcp(listener.bound_port, SEED_ON)
        _send_udp(listener.bound_port, SEED_OFF)
        await settle(listener, 2)
    rows = _messages(db)
    by_type = {row["message_type"]: row for row in rows}
    assert set(by_type) == {"LVC_POWER_ON", "LVC_POWER_OFF"}
    on, off = by_type["LVC_POWER_ON"], by_type["LVC_POWER_OFF"]
    assert (on["transport"], off["transport"]) == ("tcp", "udp")
    assert on["device"] == off["device"] == "21LVM50AE000816"
    assert on["device_time_local"] == "2021-07-02 20:03:09"
    assert off["device_time_local"] == "2021-07-03 09:13:37"
    assert bytes(on["raw"]) == SEED_ON
    assert bytes(off["raw"]) == SEED_OFF
    assert all(row["decoded"] and row["local_port"] == listener.bound_port for row in rows)
    with db.connect() as conn:
        events = conn.execute(sa.select(t.events.c.key, t.events.c.code)).all()
    assert sorted(events) == [("LVC_POWER_OFF", "10.26.0.85"), ("LVC_POWER_ON", "10.26.0.216")]


async def test_a_simulated_meter_push_becomes_its_status_events(db: Engine) -> None:
    plan = make_plan()
    async with SpontaneousListener(db, host=HOST, port=0) as listener:
        dc = make_dc(plan, listener.bound_port)
        async with dc:
            node = next(iter(dc.nodes.values()))
            dc.model(node.index).power_outage(
                NOW - dt.timedelta(hours=2), NOW - dt.timedelta(hours=1)
            )
            pushed = await dc.scan_alarms()
            assert len(pushed) == 1
            await settle(listener, 1)
    [message] = _messages(db)
    assert message["message_type"] == "DLMS_PUSH"
    assert message["device"] == node.serial
    with db.connect() as conn:
        events = conn.execute(sa.select(t.events).where(t.events.c.device == node.serial))
        rows = list(events.mappings())
    assert [(r["code"], r["description"], r["priority"]) for r in rows] == [
        ("3.26.0.85", "Voltage interruption (PUP)", "high")
    ]
    assert rows[0]["is_active"] is True


async def test_power_off_and_on_from_the_simulator_over_udp(db: Engine) -> None:
    plan = make_plan()
    async with SpontaneousListener(db, host=HOST, port=0) as listener:
        dc = make_dc(plan, listener.bound_port, "udp")
        async with dc:
            await dc.power_off()
            await settle(listener, 1)
            await dc.power_on()
            await settle(listener, 2)
    rows = _messages(db)
    assert [r["message_type"] for r in rows] == ["LVC_POWER_OFF", "LVC_POWER_ON"]
    assert {r["device"] for r in rows} == {dc.spec.serial}


async def test_corrupt_frames_are_kept_with_the_reason_and_serving_goes_on(db: Engine) -> None:
    garbage = b"\xde\xad\xbe\xef"
    bad_length = SEED_ON[:2] + b"\x00\x05" + SEED_ON[4:]
    bad_event = SEED_ON[:-1] + b"\x07"
    bad_push = bytes.fromhex("0001000110010005") + b"\x0f\x00\x00\x00\x01"
    async with SpontaneousListener(db, host=HOST, port=0) as listener:
        await _send_tcp(listener.bound_port, garbage)
        _send_udp(listener.bound_port, bad_length)
        _send_udp(listener.bound_port, bad_event)
        await _send_tcp(listener.bound_port, bad_push, SEED_OFF)
        await _send_tcp(listener.bound_port, SEED_ON[:10])  # cut short by the peer
        await settle(listener, 6)
        await _send_tcp(listener.bound_port, SEED_ON)
        await settle(listener, 7)
    rows = _messages(db)
    assert len(rows) == 7
    failed = [r for r in rows if not r["decoded"]]
    reasons = {bytes(r["raw"]): r["reason"] for r in failed}
    assert set(reasons) == {garbage, bad_length, bad_event, bad_push, SEED_ON[:10]}
    assert "neither a power frame nor a push" in reasons[garbage]
    assert "length field" in reasons[bad_length]
    assert "neither 01 nor 02" in reasons[bad_event]
    assert reasons[bad_push].startswith("DLMS push")
    assert all(r["message_type"] == "UNKNOWN" for r in failed)
    assert [r["message_type"] for r in rows if r["decoded"]] == ["LVC_POWER_OFF", "LVC_POWER_ON"]


async def test_a_storm_of_ten_thousand_frames_is_stored_whole(db: Engine) -> None:
    frames = [
        encode_power_frame(
            PowerFrame(
                n % 65536,
                dt.datetime(2026, 4, 10, 12, 0, 0),
                f"DC{n % 50:05d}",
                PowerEvent.OFF if n % 2 else PowerEvent.ON,
            )
        )
        for n in range(10_000)
    ]
    async with SpontaneousListener(db, host=HOST, port=0, batch_size=2000) as listener:
        await asyncio.gather(
            *(_send_tcp(listener.bound_port, *frames[i : i + 2500]) for i in range(0, 10_000, 2500))
        )
        await settle(listener, 10_000)
    with db.connect() as conn:
        stored = conn.execute(sa.select(sa.func.count()).select_from(t.spontaneous_messages))
        assert stored.scalar_one() == 10_000
        raws = {bytes(r) for r in conn.execute(sa.select(t.spontaneous_messages.c.raw)).scalars()}
    assert raws == set(frames)
    assert listener.undecoded == 0


async def test_a_message_whose_event_is_refused_is_kept_and_its_batch_mates_stored(
    db: Engine,
) -> None:
    shipped = load_catalog()
    without_power = dataclasses.replace(
        shipped,
        entries=MappingProxyType(
            {k: v for k, v in shipped.entries.items() if not k.startswith("LVC_")}
        ),
    )
    plan = make_plan(meters=1)
    async with SpontaneousListener(
        db, host=HOST, port=0, catalog=without_power, batch_size=100
    ) as listener:
        dc = make_dc(plan, listener.bound_port)
        node = next(iter(dc.nodes.values()))
        push = WrapperFrame(
            1,
            0x1001,
            1,
            DataNotification(
                Data.structure(
                    (
                        Data.octet_string(node.serial.encode()),
                        Data.long_unsigned(1),
                        Data.long_unsigned(8),  # AFC
                        Data.long_unsigned(0),
                        Data.long_unsigned(0),
                        Data.long_unsigned(0),
                    )
                )
            ).to_bytes(),
        ).to_bytes()
        await _send_tcp(listener.bound_port, SEED_OFF + push)
        await settle(listener, 2)
    rows = _messages(db)
    assert len(rows) == 2
    refused = next(r for r in rows if bytes(r["raw"]) == SEED_OFF)
    assert refused["decoded"] is False
    assert "no catalog entry 'LVC_POWER_OFF'" in refused["reason"]
    with db.connect() as conn:
        events = conn.execute(sa.select(t.events.c.device, t.events.c.acronym)).all()
    assert events == [(node.serial, "AFC")]
    assert listener.undecoded == 1


async def test_a_database_outage_delays_but_neither_loses_nor_duplicates(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    listener = SpontaneousListener(db, host=HOST, port=0, retry_delay=0.01)
    real_write = listener._write
    failures = iter([True, False, True])  # each message meets one failed attempt first

    def flaky(
        batch: list[Received], results: list[Decoded], links: Mapping[Any, Any] | None = None
    ) -> Applied:
        if next(failures, False):
            raise OperationalError("INSERT", {}, Exception("database is down"))
        return real_write(batch, results, links)

    monkeypatch.setattr(listener, "_write", flaky)
    async with listener:
        _send_udp(listener.bound_port, SEED_ON)
        await settle(listener, 1)
        await _send_tcp(listener.bound_port, SEED_OFF)
        await settle(listener, 2)
    assert [bytes(r["raw"]) for r in _messages(db)] == [SEED_ON, SEED_OFF]


async def test_a_value_the_bulk_insert_refuses_costs_only_its_own_events(db: Engine) -> None:
    """A push naming a meter longer than the column (PostgreSQL refuses it inside the COPY)
    is stored undecoded with the reason; the listener goes on and its batch mate is stored."""

    def push(serial: str) -> bytes:
        body = Data.structure(
            (
                Data.octet_string(serial.encode()),
                Data.long_unsigned(1),
                Data.long_unsigned(8),  # AFC
                *(Data.long_unsigned(0) for _ in range(3)),
            )
        )
        return WrapperFrame(1, 0x1001, 1, DataNotification(body).to_bytes()).to_bytes()

    async with SpontaneousListener(db, host=HOST, port=0) as listener:
        await _send_tcp(listener.bound_port, push("M" * 70), push("M-SHORT"))
        await settle(listener, 2)
        await _send_tcp(listener.bound_port, SEED_ON)
        await settle(listener, 3)
    assert len(_messages(db)) == 3
    with db.connect() as conn:
        events = conn.execute(sa.select(t.events.c.device).order_by(t.events.c.id))
        devices = list(events.scalars())
    if db.dialect.name == "postgresql":
        assert devices == ["M-SHORT", "21LVM50AE000816"]
        assert listener.undecoded == 1
    else:  # SQLite keeps text of any length
        assert devices == ["M" * 70, "M-SHORT", "21LVM50AE000816"]


async def test_an_unexpected_fault_costs_only_its_message_and_never_stops_the_lane(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault that is neither the database's nor a refused value (a bug one message
    triggers) is narrowed down like a refused value: its message is stored raw with the
    fault as the reason, its batch mates with their events. A fault even in storing raw is
    retried: the lane lives on and drains."""
    listener = SpontaneousListener(db, host=HOST, port=0, retry_delay=0.01)
    real_write = listener._write
    raw_failures = iter([True])

    def faulty(
        batch: list[Received], results: list[Decoded], links: Mapping[Any, Any] | None = None
    ) -> Applied:
        if any(item.data == SEED_OFF for item in batch):
            if any(result.decoded for result in results):
                raise KeyError("a fault SEED_OFF triggers")
            if next(raw_failures, False):
                raise RuntimeError("storing raw failed once")
        return real_write(batch, results, links)

    monkeypatch.setattr(listener, "_write", faulty)
    async with listener:
        await _send_tcp(listener.bound_port, SEED_ON + SEED_OFF)
        await settle(listener, 2)
        _send_udp(listener.bound_port, SEED_ON)
        await settle(listener, 3)
    rows = _messages(db)
    assert [bytes(r["raw"]) for r in rows] == [SEED_ON, SEED_OFF, SEED_ON]
    assert [r["decoded"] for r in rows] == [True, False, True]
    assert rows[1]["reason"] == "not stored as event: 'a fault SEED_OFF triggers'"
    assert listener.undecoded == 1
    with db.connect() as conn:
        codes = conn.execute(sa.select(t.events.c.acronym).order_by(t.events.c.id)).scalars()
        assert list(codes) == ["LVC_POWER_ON", "LVC_POWER_ON"]


async def test_a_decoder_fault_costs_only_its_message(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decoder never raises on bad input; if a bug makes it raise all the same (on one
    lane or in the lane split), only that message is stored raw, with the fault."""
    real_decode = listener_module.decode_message

    def faulty(data: bytes, received_at: dt.datetime) -> Decoded:
        if data == SEED_OFF:
            raise IndexError("a decoder bug")
        return real_decode(data, received_at)

    monkeypatch.setattr(listener_module, "decode_message", faulty)
    async with SpontaneousListener(db, host=HOST, port=0) as listener:
        await _send_tcp(listener.bound_port, SEED_ON + SEED_OFF + SEED_ON)
        await settle(listener, 3)
    stored = sorted((bytes(r["raw"]), r["decoded"], r["reason"]) for r in _messages(db))
    # two lanes on PostgreSQL: the undecoded message is written by the first lane, so the
    # three may be stored in any order
    assert stored == sorted(
        [
            (SEED_ON, True, None),
            (SEED_ON, True, None),
            (SEED_OFF, False, "decoder fault: IndexError: a decoder bug"),
        ]
    )
    assert listener.undecoded == 1
