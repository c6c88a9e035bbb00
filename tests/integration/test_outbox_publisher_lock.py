"""One outbox publisher per database, on both databases: a second publisher waits while the
first runs (it sends nothing, so no row goes out twice), says so in the log, and takes over
when the first stops — or dies (its lock connection or lock file dropped)."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy.engine import Engine
from test_outbox import inbox, outbox_rows, raise_alarms
from test_soap_endpoints import add_meter

from smmc.integration.outbox import EmbeddedBackend, OutboxPublisher, PublisherTiming

TIMING = PublisherTiming(
    poll=0.01,
    reconnect=0.01,
    reconnect_max=0.05,
    retry=timedelta(seconds=10),
    sweep_every=3600,
    takeover=0.02,
)


def _publisher(db: Engine) -> OutboxPublisher:
    return OutboxPublisher(db, backend=EmbeddedBackend(db), timing=TIMING)


async def _until(condition: object, what: str) -> None:
    assert callable(condition)
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def _delivered(db: Engine) -> int:
    return sum(1 for row in outbox_rows(db) if row["delivered_at"] is not None)


def test_a_second_publisher_waits_and_takes_over_when_the_first_stops(
    db: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    add_meter(db, "M1")
    first, second = _publisher(db), _publisher(db)

    async def run() -> None:
        one = asyncio.create_task(first.run())
        await _until(lambda: first.lock.held, "the first publisher's lock")
        two = asyncio.create_task(second.run())
        await asyncio.to_thread(raise_alarms, db, ["M1", "M1", "M1"])
        await _until(lambda: first.delivered == 3, "the first publisher's deliveries")
        await _until(
            lambda: "another publisher is active" in caplog.text, "the second one's log line"
        )
        assert second.delivered == 0
        assert not second.lock.held
        first.stop()
        await one
        assert not first.lock.held
        await _until(lambda: second.lock.held, "the second publisher taking over")
        await asyncio.to_thread(raise_alarms, db, ["M1", "M1"])
        await _until(lambda: second.delivered == 2, "the second publisher's deliveries")
        second.stop()
        await two

    with caplog.at_level(logging.INFO, logger="smmc.integration.outbox"):
        asyncio.run(run())
    assert first.delivered == 3
    assert _delivered(db) == 5
    assert len(inbox(db)) == 5
    assert not second.lock.held


HOLDER = """
import sys
from smmc.integration.outbox import PublisherLock
from smmc.store.db import create_engine

lock = PublisherLock(create_engine(sys.argv[1]))
assert lock.try_acquire()
print("held", flush=True)
sys.stdin.read()
"""


def test_a_publisher_takes_over_from_one_that_died(db: Engine) -> None:
    add_meter(db, "M1")
    url = db.url.render_as_string(hide_password=False)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        publisher = _publisher(db)

        async def run() -> None:
            task = asyncio.create_task(publisher.run())
            await asyncio.to_thread(raise_alarms, db, ["M1", "M1"])
            await asyncio.sleep(0.3)
            assert publisher.delivered == 0
            assert not publisher.lock.held
            holder.kill()  # no unlock: the session / the descriptor just goes away
            await asyncio.to_thread(holder.wait)
            await _until(lambda: publisher.delivered == 2, "the take-over's deliveries")
            publisher.stop()
            await task

        asyncio.run(run())
    finally:
        holder.kill()
        holder.wait()
    assert _delivered(db) == 2
