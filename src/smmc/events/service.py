"""The events side of a running head-end in one call: the spontaneous-message listener
(TCP and UDP), automatic MeterSync on its batches and concentrator monitoring.

``smmc events listen`` runs it on its own; ``smmc demo`` enters it next to the simulated
fleet, whose concentrators push their power frames and meter alarms to its port::

    async with events_service(engine, port=58700) as listener:
        ...  # listener.bound_port, listener.stored, listener.undecoded
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

from sqlalchemy.engine import Engine

from smmc.domain.events import Catalog
from smmc.domain.spontaneous import DEFAULT_SPONTANEOUS_PORT
from smmc.events.auto_sync import AutoSync
from smmc.events.listener import SpontaneousListener
from smmc.events.monitor import DEFAULT_SILENCE, monitor_forever
from smmc.store.work_orders import WorkOrderQueue

__all__ = ["events_service"]


@contextlib.asynccontextmanager
async def events_service(
    engine: Engine,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_SPONTANEOUS_PORT,
    catalog: Catalog | None = None,
    auto_sync: bool = True,
    batch_size: int = 5000,
    silence: timedelta = DEFAULT_SILENCE,
    check_interval: float = 60.0,
) -> AsyncIterator[SpontaneousListener]:
    """Listen on ``host:port`` (``port=0``: any free port, see ``bound_port``), storing
    into ``engine``; on exit, everything received is stored before it returns."""
    sync = AutoSync(WorkOrderQueue(engine), enabled=auto_sync)
    listener = SpontaneousListener(
        engine,
        host=host,
        port=port,
        catalog=catalog,
        batch_size=batch_size,
        on_applied=sync.handle,
    )
    async with listener:
        monitor = asyncio.get_running_loop().create_task(
            monitor_forever(engine, silence, check_interval)
        )
        try:
            yield listener
        finally:
            monitor.cancel()
            await asyncio.gather(monitor, return_exceptions=True)
