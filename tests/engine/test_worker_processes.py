"""Two worker processes share one PostgreSQL queue; one is killed with SIGKILL mid-batch.
Every order ends exactly once, none is lost, and only the orders the dead worker held run
again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from wo_fixtures import add_fleet

from smmc.domain.calendar import WorkingDayCalendar
from smmc.domain.work_orders import ActivityType
from smmc.store import tables as t
from smmc.store.work_orders import TargetRef, WorkOrderQueue

WORKER = Path(__file__).with_name("wo_process_worker.py")


def _spawn(db: Engine, log: Path) -> subprocess.Popen[bytes]:
    url = db.url.render_as_string(hide_password=False)
    return subprocess.Popen(
        [sys.executable, str(WORKER), url, str(log), "2", "0.02"],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def _executions(log: Path) -> list[tuple[int, int, int]]:
    if not log.exists():
        return []
    return [
        (int(a), int(b), int(c))
        for a, b, c in (line.split() for line in log.read_text().splitlines() if line.strip())
    ]


def test_sigkill_of_one_worker_process_loses_nothing(db: Engine, tmp_path: Path) -> None:
    if db.dialect.name != "postgresql":
        pytest.skip("several worker processes share a queue on PostgreSQL only")
    add_fleet(db, {f"DC-{n}": 12 for n in range(20)})
    queue = WorkOrderQueue(db, calendar=WorkingDayCalendar())
    result = queue.submit(
        ActivityType.READING,
        [TargetRef(meter=f"M-DC-{n}-{k}") for n in range(20) for k in range(12)],
    )
    assert result.accepted == 240
    victim_log, survivor_log = tmp_path / "victim.log", tmp_path / "survivor.log"
    victim = _spawn(db, victim_log)
    survivor = _spawn(db, survivor_log)
    try:
        deadline = time.monotonic() + 60
        while len(_executions(victim_log)) < 20:
            assert time.monotonic() < deadline, "the victim never got going"
            assert victim.poll() is None, "the victim exited before it was killed"
            time.sleep(0.01)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        assert survivor.wait(120) == 0
    finally:
        for process in (victim, survivor):
            if process.poll() is None:
                process.kill()
                process.wait()
    with db.connect() as conn:
        states = Counter(conn.execute(sa.select(t.work_orders.c.state)).scalars())
        a = t.work_order_attempts.c
        attempts = conn.execute(sa.select(a.work_order_id, a.worker, a.outcome)).all()
    assert states == {"COMPLETED": 240}
    completed = Counter(order for order, _, outcome in attempts if outcome == "COMPLETED")
    assert len(completed) == 240
    assert set(completed.values()) == {1}
    lost = {order for order, _, outcome in attempts if outcome == "LEASE_LOST"}
    assert lost, "the victim held no order when it was killed"
    assert {worker for _, worker, outcome in attempts if outcome == "LEASE_LOST"} == {
        f"proc-{victim.pid}"
    }
    executions = Counter(
        order for order, _, _ in _executions(victim_log) + _executions(survivor_log)
    )
    assert set(executions) == set(completed)
    twice = {order for order, count in executions.items() if count > 1}
    assert twice <= lost  # only what the dead worker held ran again
    assert max(executions.values()) <= 2
