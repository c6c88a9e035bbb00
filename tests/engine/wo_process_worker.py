"""A worker process for the crash tests: runs Reading orders with an executor that logs each
execution (order id, attempt, pid) to a file, until no order is open.

Usage: python wo_process_worker.py DATABASE_URL LOG_FILE LEASE_SECONDS DELAY_SECONDS
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from smmc.domain.calendar import WorkingDayCalendar
from smmc.domain.work_orders import OPEN_STATES, ActivityType, Outcome
from smmc.engine.executors import ExecutorRegistry
from smmc.engine.worker import Worker, WorkerConfig
from smmc.store import tables as t
from smmc.store.db import create_engine
from smmc.store.work_orders import LeasedOrder, WorkOrderQueue


class LoggingExecutor:
    def __init__(self, log: Path, delay: float) -> None:
        self.log = log.open("a", buffering=1)
        self.delay = delay

    async def execute(self, order: LeasedOrder, engine: Engine) -> Outcome:
        self.log.write(f"{order.id} {order.attempt} {os.getpid()}\n")
        await asyncio.sleep(self.delay)
        return Outcome.success({"pid": os.getpid()})


def open_orders(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count())
                .select_from(t.work_orders)
                .where(t.work_orders.c.state.in_([s.value for s in OPEN_STATES]))
            ).scalar_one()
        )


async def main(url: str, log: Path, lease: float, delay: float) -> None:
    engine = create_engine(url)
    queue = WorkOrderQueue(engine, calendar=WorkingDayCalendar())
    worker = Worker(
        queue,
        ExecutorRegistry({ActivityType.READING: LoggingExecutor(log, delay)}),
        WorkerConfig(
            name=f"proc-{os.getpid()}",
            max_in_flight=8,
            lease_for=timedelta(seconds=lease),
            poll_interval=0.05,
        ),
    )
    while open_orders(engine):
        await worker.run_until_idle()
        await asyncio.sleep(0.1)
    engine.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])))
