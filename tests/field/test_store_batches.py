"""Batched store calls of the field layer: the coalescer, counter blocks (the rows of devices
contacted for the first time created in one statement), replay guards and credentials read
for several sessions at once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest
import sqlalchemy as sa
from field_sim import make_plan, provision
from sqlalchemy.engine import Connection, Engine

from smmc.field.batching import Coalescer
from smmc.field.credentials import (
    CounterKey,
    CounterReservation,
    CounterStore,
    CredentialStore,
    MeterAccess,
)
from smmc.field.errors import UnknownDevice
from smmc.store import tables as t
from smmc.store.secrets import SecretBox


async def test_calls_of_one_loop_turn_share_one_batch_and_get_their_own_results() -> None:
    batches: list[list[int]] = []
    threads: set[int] = set()

    def square(items: list[int]) -> list[int]:
        batches.append(list(items))
        threads.add(threading.get_ident())
        return [item * item for item in items]

    coalescer: Coalescer[int, int] = Coalescer(square)
    results = await asyncio.gather(*(coalescer.submit(n) for n in range(5)))
    assert results == [0, 1, 4, 9, 16]
    assert batches == [[0, 1, 2, 3, 4]]
    assert threading.get_ident() not in threads  # the blocking call ran in a thread
    assert await coalescer.submit(7) == 49
    assert coalescer.batches == 2


async def test_batches_are_capped_and_a_failing_batch_fails_only_its_callers() -> None:
    def run(items: list[int]) -> list[int]:
        if 13 in items:
            raise ValueError("unlucky batch")
        return items

    coalescer: Coalescer[int, int] = Coalescer(run, max_batch=2)
    results = await asyncio.gather(
        *(coalescer.submit(n) for n in (1, 2, 13, 4, 5)), return_exceptions=True
    )
    assert results[:2] == [1, 2]
    assert all(isinstance(r, ValueError) for r in results[2:4])
    assert results[4] == 5
    assert coalescer.batches == 3


async def test_a_batch_function_returning_too_few_results_is_an_error() -> None:
    coalescer: Coalescer[int, int] = Coalescer(lambda items: items[:-1])
    with pytest.raises(RuntimeError, match="1 results for a batch of 2"):
        await asyncio.gather(coalescer.submit(1), coalescer.submit(2))
    with pytest.raises(ValueError, match="max_batch"):
        Coalescer(lambda items: items, max_batch=0)


def _stored(engine: Engine) -> dict[int, tuple[int, int | None]]:
    c = t.invocation_counters.c
    with engine.connect() as conn:
        return {
            row.device_id: (row.next_send, row.last_received)
            for row in conn.execute(sa.select(c.device_id, c.next_send, c.last_received))
        }


def test_counter_blocks_for_several_devices_come_from_one_transaction(db: Engine) -> None:
    store = CounterStore(db, block=10)
    first = store.reserve("meter", 1, 48)  # an existing row for device 1
    assert (first.first, first.limit) == (1, 11)
    keys: list[CounterKey] = [("meter", 1, 48), ("meter", 2, 48), ("meter", 2, 48)]
    got = store.reserve_many(keys)
    assert all(isinstance(r, CounterReservation) for r in got)
    blocks = [(r.first, r.limit) for r in got if isinstance(r, CounterReservation)]
    # Device 1 continues after its first block; device 2 asked twice gets two disjoint blocks.
    assert blocks == [(11, 21), (1, 11), (11, 21)]
    assert _stored(db) == {1: (21, None), 2: (21, None)}
    # A block given back (at least min_left counters) is used again without the store.
    store.give_back("meter", 2, 48, CounterReservation(11, 21, 77))
    again = store.reserve_many([("meter", 2, 48), ("meter", 3, 48)])
    assert again == [CounterReservation(11, 21, 77), CounterReservation(1, 11, None)]


def test_exhausted_counters_refuse_only_their_device(db: Engine) -> None:
    store = CounterStore(db, block=10)
    store.reserve("meter", 1, 48)
    with db.begin() as conn:
        conn.execute(t.invocation_counters.update().values(next_send=0xFFFFFFFF - 5))
    got = store.reserve_many([("meter", 1, 48), ("meter", 2, 48)])
    assert isinstance(got[0], UnknownDevice)
    assert "exhausted" in str(got[0])
    assert got[1] == CounterReservation(1, 11, None)
    with pytest.raises(UnknownDevice, match="exhausted"):
        store.reserve("meter", 1, 48)


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
    assert _stored(db) == {n: (21 if n == 3 else 11, None) for n in range(1, 6)}
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
    assert _stored(db) == {1: (11, None), 2: (21, None), 3: (11, None)}


def test_replay_guards_of_several_devices_are_saved_together(db: Engine) -> None:
    store = CounterStore(db, block=10)
    store.reserve_many([("meter", 1, 48), ("meter", 2, 48)])
    store.save_received_many([(("meter", 1, 48), 5), (("meter", 2, 48), 9), (("meter", 1, 48), 6)])
    assert _stored(db) == {1: (11, 6), 2: (11, 9)}
    store.save_received("meter", 2, 48, None)  # forgotten: resynchronisation
    assert _stored(db)[2] == (11, None)


def test_credentials_of_several_meters_in_one_read(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    plan = make_plan(1, 3, 1)
    provision(db, secret_box, plan, tmp_path)
    with db.connect() as conn:
        ids = dict(conn.execute(sa.select(t.meters.c.serial_number, t.meters.c.id)).all())
    with db.begin() as conn:  # one meter loses its keys
        broken = min(ids.values())
        conn.execute(
            t.meters.update().where(t.meters.c.id == broken).values(encryption_key_enc=None)
        )
    store = CredentialStore(db, secret_box)
    wanted = [*sorted(ids.values()), 999_999]
    got = store.meters(wanted)
    assert isinstance(got[0], UnknownDevice)
    assert "has no keys" in str(got[0])
    assert isinstance(got[-1], UnknownDevice)
    assert "999999 is not registered" in str(got[-1])
    good = [access for access in got[1:-1] if isinstance(access, MeterAccess)]
    assert len(good) == len(ids) - 1
    assert {access.serial for access in good} == set(ids) - {
        serial for serial, meter_id in ids.items() if meter_id == broken
    }
    for access in good:
        assert len(access.encryption_key) == len(access.authentication_key) == 16
        assert store.cached(access.id) is access  # kept in memory
        if access.concentrator is not None:
            assert access.concentrator.password  # opened once for all its meters
            assert access.node_address is not None
    assert store.cached(broken) is None
    with pytest.raises(UnknownDevice, match="has no keys"):
        store.meter(broken)


def test_the_concentrators_of_a_credentials_read_come_from_one_query(
    db: Engine, secret_box: SecretBox, tmp_path: Path
) -> None:
    provision(db, secret_box, make_plan(3, 2, 0), tmp_path)
    with db.begin() as conn:  # one concentrator loses its password
        broken = conn.execute(sa.select(sa.func.min(t.concentrators.c.id))).scalar_one()
        conn.execute(
            t.concentrators.update()
            .where(t.concentrators.c.id == broken)
            .values(maa_password_enc=None)
        )
        meters = dict(conn.execute(sa.select(t.meters.c.id, t.meters.c.concentrator_id)).all())
    reads: list[str] = []

    def note(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "FROM concentrators" in statement:
            reads.append(statement)

    store = CredentialStore(db, secret_box)
    sa.event.listen(db, "before_cursor_execute", note)
    try:
        got = dict(zip(meters, store.meters(list(meters)), strict=True))
    finally:
        sa.event.remove(db, "before_cursor_execute", note)
    assert len(reads) == 1
    for meter_id, access in got.items():
        if meters[meter_id] == broken:
            assert isinstance(access, UnknownDevice)
            assert "has no management password" in str(access)
        else:
            assert isinstance(access, MeterAccess)
            assert access.concentrator is not None
            assert access.concentrator.id == meters[meter_id]
    with pytest.raises(UnknownDevice, match="has no management password"):
        store.concentrator(broken)
    with pytest.raises(UnknownDevice, match="concentrator 999999 is not registered"):
        store.concentrator(999_999)
    assert store.concentrator(max(meters.values())).password


def test_prefetched_blocks_wait_for_their_sessions_and_keep_a_kept_one(
    db: Engine,
) -> None:
    store = CounterStore(db, block=10)
    kept = CounterReservation(3, 13, 2)
    store.give_back("meter", 1, 48, kept)
    assert store.holds(("meter", 1, 48))
    assert not store.holds(("meter", 2, 48))
    store.prefetch([("meter", 1, 48), ("meter", 2, 48)])
    assert store.take_kept(("meter", 1, 48)) == kept  # still the kept one
    assert store.take_kept(("meter", 2, 48)) == CounterReservation(1, 11, None)
    assert store.take_kept(("meter", 2, 48)) is None
    assert _stored(db) == {2: (11, None)}  # only device 2 needed the store
