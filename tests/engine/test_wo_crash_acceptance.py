"""Issue 5 acceptance, crash safety: a real `smmc worker` process is killed with SIGKILL in
the middle of a 1,000-order batch of disconnects, connects and reads against the simulated
fleet over real TCP, at an instant when a breaker command it sent is still inside an open
association; two workers are started after it. Every order ends exactly once with one
outcome event and none is lost (the store), only the dead worker's attempts were lost, and
no breaker command was sent twice blindly — witnessed by the simulator's own record of every
breaker access its gateways relayed and of every association, not by the head-end.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from wo_sim_workers import kill_all, served_fleet, spawn_worker, stop_workers, wait_for_batch

from smmc.domain.work_orders import ActivityType
from smmc.sim.concentrator import BreakerAccess
from smmc.store import tables as t
from smmc.store.work_orders import TargetRef, WorkOrderQueue

pytestmark = pytest.mark.postgres

CONCENTRATORS, PER_CONCENTRATOR = 50, 10
COMMANDS = ("disconnect", "reconnect")
LEASE_SECONDS = 10.0  # renewed every third: a loaded machine must not lose a live lease


async def test_sigkill_mid_batch_loses_nothing_and_never_repeats_a_breaker_command(
    db: Engine, tmp_path: Path
) -> None:
    if db.dialect.name != "postgresql":
        pytest.skip("several worker processes share a queue on PostgreSQL only")
    async with served_fleet(db, tmp_path, CONCENTRATORS, PER_CONCENTRATOR) as fleet:
        serials = fleet.serials()
        # Per concentrator, 8 meters to disconnect and 2 (already open) to connect.
        to_open = [s for i, s in enumerate(serials) if i % PER_CONCENTRATOR < 8]
        to_close = [s for i, s in enumerate(serials) if i % PER_CONCENTRATOR >= 8]
        clock = fleet.runner.clock
        for serial in to_close:  # opened in the field before the batch (e.g. non-payment)
            fleet.runner.meters.model(serials.index(serial)).disconnect(clock.now())
        queue = WorkOrderQueue(db)
        batches = [
            (ActivityType.DISCONNECT, to_open, "non_payment"),
            (ActivityType.CONNECT, to_close, "after_payment"),
            (ActivityType.READING, serials, None),
        ]
        accepted = 0
        for activity, targets, reason in batches:
            result = queue.submit(
                activity,
                [TargetRef(meter=s) for s in targets],
                priority=7,  # one priority: each DC runs its breaker orders, then its reads
                special=True,
                reason=reason,
            )
            accepted += result.accepted
        assert accepted == 1000

        def commands() -> int:
            return sum(
                1
                for dc in fleet.concentrators
                for a in dc.record.breaker
                if a.operation in COMMANDS
            )

        def command_in_open_association() -> BreakerAccess | None:
            """A breaker command whose association the DC has not closed yet: its worker
            cannot have stored that order's outcome (the release comes first)."""
            for dc in fleet.concentrators:
                closed = {span.number for span in dc.record.spans}
                for access in reversed(dc.record.breaker):
                    if access.operation in COMMANDS and access.session not in closed:
                        return access
            return None

        # The victim alone first, so whatever the DCs are carrying when it dies is its own.
        victim = spawn_worker(db, fleet, "victim", lease_seconds=LEASE_SECONDS, in_flight=16)
        workers = [victim]
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 180
            in_flight = None
            while in_flight is None:
                assert victim.poll() is None
                assert loop.time() < deadline, "the victim never got going"
                await asyncio.sleep(0.005)
                if commands() >= 100:  # of about 500: the breaker orders are in full flow
                    in_flight = command_in_open_association()
            victim.kill()  # no await since the check: the DCs carried nothing more
            await asyncio.to_thread(victim.wait, 10)
            for name in ("restarted", "second"):
                workers.append(
                    spawn_worker(db, fleet, name, lease_seconds=LEASE_SECONDS, in_flight=16)
                )
            await wait_for_batch(db, workers[1:], timeout=300)
            assert await stop_workers(workers[1:]) == [0, 0]
        finally:
            kill_all(workers)
        now = clock.now()
        breaker_closed = {
            s: fleet.runner.meters.model(i).breaker_closed(now) for i, s in enumerate(serials)
        }
        records = [
            (dc.spec.name, list(dc.record.breaker), dc.record.peak) for dc in fleet.concentrators
        ]

    with db.connect() as conn:
        wo, a, e = t.work_orders.c, t.work_order_attempts.c, t.work_order_events.c
        states = Counter(conn.execute(sa.select(wo.state)).scalars())
        activity_of = {row.id: row.activity for row in conn.execute(sa.select(wo.id, wo.activity))}
        attempts = [
            tuple(row) for row in conn.execute(sa.select(a.work_order_id, a.worker, a.outcome))
        ]
        events = Counter(conn.execute(sa.select(e.work_order_id)).scalars())

    # The store: every order ended once, none lost; only the victim's attempts were lost.
    assert states == {"COMPLETED": 1000}
    completed = Counter(order for order, _, outcome in attempts if outcome == "COMPLETED")
    assert set(completed) == set(activity_of)
    assert set(completed.values()) == {1}
    lost = {order for order, _, outcome in attempts if outcome == "LEASE_LOST"}
    assert {worker for _, worker, outcome in attempts if outcome == "LEASE_LOST"} == {"victim"}
    assert any(activity_of[order] != ActivityType.READING.value for order in lost), (
        "the victim held no breaker order when it was killed"
    )
    assert set(events) == set(activity_of)
    assert set(events.values()) == {1}, {o: n for o, n in events.items() if n > 1}

    # The simulator: every breaker command found the breaker elsewhere and was preceded by a
    # state read in its own association; each meter got exactly the commands it needed.
    sent: dict[str, Counter[str]] = defaultdict(Counter)
    reread: set[str] = set()
    for name, accesses, peak in records:
        assert peak == 1, f"{name}: {peak} associations at once, its permit is 1"
        read_in: set[tuple[int, str]] = set()
        sessions_reading: dict[str, set[int]] = defaultdict(set)
        for access in accesses:
            if access.operation == "read":
                read_in.add((access.session, access.serial))
                sessions_reading[access.serial].add(access.session)
                continue
            assert access.operation in COMMANDS, access
            assert (access.session, access.serial) in read_in, f"blind command {access}"
            assert access.before != access.after, f"command on a settled breaker {access}"
            sent[access.serial][access.operation] += 1
        reread.update(s for s, sessions in sessions_reading.items() if len(sessions) > 1)
    for serial in to_open:
        assert sent[serial] == {"disconnect": 1}, serial
        assert not breaker_closed[serial], serial
    for serial in to_close:
        assert set(sent[serial]) == {"reconnect"}, serial
        assert breaker_closed[serial], serial
    # The command the victim died with took effect; its order ran again, read the breaker
    # and sent nothing (checked above for every command).
    assert in_flight.serial in reread, in_flight
