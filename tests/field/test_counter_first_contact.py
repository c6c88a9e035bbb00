"""Counter blocks for devices contacted for the first time: their rows are created in one
statement, and a row another worker created meanwhile grows instead (no block reused)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from smmc.field.credentials import CounterKey, CounterReservation, CounterStore
from smmc.store import tables as t


def _stored(engine: Engine) -> dict[int, int]:
    c = t.invocation_counters.c
    with engine.connect() as conn:
        return {
            row.device_id: row.next_send
            for row in conn.execute(sa.select(c.device_id, c.next_send))
        }


def test_first_contact_of_many_devices_creates_their_rows_together(db: Engine) -> None:
    inserts: list[str] = []

    def count(conn: Connection, cursor: object, statement: str, *args: object) -> None:
        if statement.startswith("INSERT INTO invocation_counters"):
            inserts.append(statement)

    store = CounterStore(db, block=10)
    keys: list[CounterKey] = [("meter", n, 48) for n in range(1, 6)] + [("meter", 3, 48)]
    sa.event.listen(db, "before_cursor_execute", count)
    try:
        got = store.reserve_many(keys)
    finally:
        sa.event.remove(db, "before_cursor_execute", count)
    # Device 3 asked twice: one row grown by two blocks, two disjoint blocks.
    assert got == [CounterReservation(1, 11, None)] * 5 + [CounterReservation(11, 21, None)]
    assert _stored(db) == {1: 11, 2: 11, 3: 21, 4: 11, 5: 11}
    assert len(inserts) == 1  # one statement (executemany) for the five new rows


def test_a_row_created_meanwhile_by_another_worker_grows_instead(
    db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = CounterStore(db, block=10)
    other = CounterStore(db, block=10)
    assert other.reserve("meter", 2, 48) == CounterReservation(1, 11, None)
    read = CounterStore._rows
    calls: list[int] = []

    def stale_first_read(
        conn: Connection, keys: Sequence[CounterKey]
    ) -> dict[CounterKey, tuple[int, int | None]]:
        calls.append(len(keys))
        return {} if len(calls) == 1 else read(conn, keys)  # device 2 looked absent

    monkeypatch.setattr(CounterStore, "_rows", staticmethod(stale_first_read))
    got = store.reserve_many([("meter", 1, 48), ("meter", 2, 48), ("meter", 3, 48)])
    assert got == [
        CounterReservation(1, 11, None),
        CounterReservation(11, 21, None),  # after the other worker's block, not over it
        CounterReservation(1, 11, None),
    ]
    assert _stored(db) == {1: 11, 2: 21, 3: 11}
