"""Acceptance: every status-word bit pushed by the simulator, and every concentrator letter of
the simulator's status word, is stored as an event with the catalog's code, description and
priority."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from smmc.domain.concentrator_status import LETTERS
from smmc.domain.events import CONCENTRATOR_WORD, METER_WORDS, load_catalog
from smmc.events.listener import SpontaneousListener
from smmc.sim.meter_model import StatusWords
from smmc.store import tables as t
from smmc.store.events import Observation, apply_events

from .sim_helpers import HOST, make_dc, make_plan

CATALOG = load_catalog()


async def test_every_meter_bit_round_trips_from_the_simulator(db: Engine) -> None:
    plan = make_plan(meters=1)
    async with SpontaneousListener(db, host=HOST, port=0) as listener:
        dc = make_dc(plan, listener.bound_port)
        template = next(iter(dc.nodes.values()))
        sent = 0
        for word_index, word in enumerate(METER_WORDS):
            for bit in range(16):
                values = [0, 0, 0, 0]
                values[word_index] = 1 << bit
                node = dataclasses.replace(template, serial=f"RT-{word}-{bit:02d}")
                await dc.relay_alarms([(node, StatusWords(*values))])
                sent += 1

        async def settled() -> None:
            while listener.received < sent:
                await asyncio.sleep(0.01)
            await listener.drain()

        await asyncio.wait_for(settled(), 60)
    with db.connect() as conn:
        rows = {
            row["device"]: row
            for row in conn.execute(sa.select(t.events).where(t.events.c.is_active)).mappings()
        }
    assert len(rows) == 64
    for word in METER_WORDS:
        for bit in range(16):
            entry = CATALOG.bit(word, bit)
            row = rows[f"RT-{word}-{bit:02d}"]
            assert (row["code"], row["description"], row["priority"]) == (
                entry.code,
                entry.description,
                entry.priority.value,
            ), (word, bit)


def test_every_concentrator_letter_round_trips_from_the_simulator_word(db: Engine) -> None:
    plan = make_plan(meters=1)
    dc = make_dc(plan, 9)  # the head-end address is not used: only the DC's word is read
    healthy = dc.status_word()
    at = datetime(2026, 4, 10, 12, tzinfo=UTC)
    for letter, spec in LETTERS.items():
        entry = CATALOG.bit(CONCENTRATOR_WORD, spec.bit)
        device = f"DC-{letter}"
        with db.begin() as conn:
            apply_events(
                conn, [Observation("concentrator", device, {CONCENTRATOR_WORD: healthy}, at, "t")]
            )
        if letter in dc.status_letters():
            dc.extra_letters.discard(letter)
            word = healthy & ~(1 << spec.bit)
        else:
            dc.extra_letters.add(letter)
            word = dc.status_word()
            dc.extra_letters.discard(letter)
        with db.begin() as conn:
            applied = apply_events(
                conn, [Observation("concentrator", device, {CONCENTRATOR_WORD: word}, at, "t")]
            )
        changed = applied.opened + applied.closed
        assert [row["key"] for row in changed] == [entry.key], letter
        row = changed[0]
        assert (row["code"], row["description"], row["priority"]) == (
            entry.code,
            entry.description,
            entry.priority.value,
        )
        # opened when the letter's condition starts holding, closed when it stops
        assert bool(applied.opened) == entry.active({CONCENTRATOR_WORD: word})
