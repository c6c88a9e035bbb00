"""`smmc events …`: ``listen`` (the spontaneous-message listener with outage correlation,
automatic MeterSync and concentrator monitoring) and ``report --day`` (the daily files).
The lead mounts it: ``app.add_typer(events_app, name="events")``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from datetime import date, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy.engine import Engine

from smmc.config import Settings
from smmc.domain.events import Catalog, CatalogError, load_catalog
from smmc.domain.spontaneous import DEFAULT_SPONTANEOUS_PORT
from smmc.domain.time import UnknownTimeZone, zone
from smmc.events.service import events_service
from smmc.process import settle_heap
from smmc.reports.events import DEFAULT_TZ, write_daily_files
from smmc.store.db import create_engine
from smmc.store.migrate import upgrade

__all__ = ["events_app"]

events_app = typer.Typer(help="Events and alarms: listener and daily files.", no_args_is_help=True)
AUTO_SYNC_ENV = "SMMC_EVENTS_AUTO_SYNC"
_console = Console()


def auto_sync_default() -> bool:
    """On unless the environment says off (``0``, ``false``, ``no``, ``off``)."""
    return os.environ.get(AUTO_SYNC_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


async def _serve(
    engine: Engine, host: str, port: int, catalog: Catalog, auto_sync: bool, batch_size: int,
    silence: timedelta, interval: float,
) -> None:  # fmt: skip
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with events_service(
        engine,
        host=host,
        port=port,
        catalog=catalog,
        auto_sync=auto_sync,
        batch_size=batch_size,
        silence=silence,
        check_interval=interval,
    ) as listener:
        _console.print(
            f"listening for spontaneous messages on TCP and UDP port {listener.bound_port}"
        )
        await stop.wait()
    _console.print(f"stored {listener.stored} messages ({listener.undecoded} not decoded)")


@events_app.command("listen")
def listen(
    host: Annotated[str, typer.Option(help="address to listen on")] = "0.0.0.0",  # noqa: S104
    port: Annotated[int, typer.Option(min=0, max=65535)] = DEFAULT_SPONTANEOUS_PORT,
    auto_sync: Annotated[
        bool | None,
        typer.Option(
            "--auto-sync/--no-auto-sync",
            help=f"queue a MeterSync on 'clock not aligned' (default on; env {AUTO_SYNC_ENV})",
        ),
    ] = None,
    silence_minutes: Annotated[
        float, typer.Option(min=1, help="alarm a concentrator silent for this long")
    ] = 60.0,
    check_seconds: Annotated[float, typer.Option(min=1, help="monitoring period")] = 60.0,
    catalog: Annotated[
        Path | None, typer.Option(help="operator YAML laid over the shipped event catalog")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=100_000)] = 5000,
) -> None:
    """Receive concentrator frames and meter pushes; store, correlate and alarm."""
    try:
        book = load_catalog(catalog)
    except (CatalogError, OSError) as exc:
        _console.print(f"[red]event catalog: {exc}[/red]")
        raise typer.Exit(2) from None
    engine = create_engine(Settings.from_env().database_url)
    upgrade(engine)
    enabled = auto_sync_default() if auto_sync is None else auto_sync
    silence = timedelta(minutes=silence_minutes)
    settle_heap()
    asyncio.run(_serve(engine, host, port, book, enabled, batch_size, silence, check_seconds))


@events_app.command("report")
def report(
    day: Annotated[str, typer.Option(help="local day, YYYY-MM-DD")],
    out: Annotated[Path, typer.Option(help="directory for the files")] = Path("var/reports"),
    tz: Annotated[str, typer.Option(help="time zone of the day and the local stamps")] = DEFAULT_TZ,
) -> None:
    """Write SWE_, HPE_, LPE_, the spontaneous-messages report and the concentrator
    status-word report of one day."""
    try:
        wanted = date.fromisoformat(day)
        zone(tz)
    except (ValueError, UnknownTimeZone) as exc:
        _console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    engine = create_engine(Settings.from_env().database_url)
    upgrade(engine)
    for path, rows in write_daily_files(engine, wanted, out, tz).items():
        _console.print(f"{path}: {rows} rows")
