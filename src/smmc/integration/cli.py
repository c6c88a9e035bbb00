"""`smmc outbox …`: ``status``, ``dead-letters``, ``retry`` and ``publish`` (the publisher
in the foreground until Ctrl-C). The lead mounts it: ``app.add_typer(outbox_app,
name="outbox")``."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import Engine

from smmc.config import OutboxSettings, Settings
from smmc.integration.outbox import OutboxPublisher, pending_summary
from smmc.store.db import create_engine
from smmc.store.migrate import upgrade
from smmc.store.outbox import dead_letters, requeue

__all__ = ["outbox_app"]

outbox_app = typer.Typer(help="CIM outbox: delivery to Legacy, dead letters.", no_args_is_help=True)
_console = Console()


def _engine(settings: Settings) -> Engine:
    engine = create_engine(settings.database_url)
    upgrade(engine)
    return engine


@outbox_app.command("status")
def status() -> None:
    """Rows waiting per queue, dead letters, delivered rows, Legacy inbox size."""
    summary = pending_summary(_engine(Settings.from_env()))
    pending = summary["pending"]
    _console.print(
        f"pending high {pending['high']}, normal {pending['normal']}; "
        f"dead letters {summary['dead']}; delivered {summary['delivered']}; "
        f"Legacy inbox {summary['legacy_inbox']}"
    )


@outbox_app.command("dead-letters")
def list_dead(
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
) -> None:
    """Messages given up on, newest first."""
    with _engine(Settings.from_env()).connect() as conn:
        rows = dead_letters(conn, limit=limit)
    table = Table("message id", "kind", "priority", "attempts", "dead at", "last error")
    for row in rows:
        table.add_row(
            row["message_id"],
            row["kind"],
            row["priority"],
            str(row["attempts"]),
            row["dead_at"].isoformat(timespec="seconds"),
            row["last_error"] or "",
        )
    _console.print(table)
    _console.print(f"{len(rows)} dead letter(s) shown")


@outbox_app.command("retry")
def retry(
    message_ids: Annotated[list[str] | None, typer.Argument(help="MessageIDs to re-queue")] = None,
    all_: Annotated[bool, typer.Option("--all", help="re-queue every dead letter")] = False,
) -> None:
    """Put dead letters back in the queue (same MessageIDs, attempts reset)."""
    if not message_ids and not all_:
        raise typer.BadParameter("give MessageIDs or --all")
    with _engine(Settings.from_env()).begin() as conn:
        done = requeue(conn, None if all_ else message_ids)
    _console.print(f"{done} message(s) re-queued")


@outbox_app.command("publish")
def publish(
    backend: Annotated[
        str | None, typer.Option(help="embedded or rabbitmq (default: SMMC_OUTBOX_BACKEND)")
    ] = None,
) -> None:
    """Drain the outbox into the configured backend until interrupted."""
    settings = Settings.from_env()
    chosen: OutboxSettings = settings.outbox
    if backend is not None:
        if backend not in ("embedded", "rabbitmq"):
            raise typer.BadParameter("backend: embedded or rabbitmq")
        chosen = dataclasses.replace(chosen, backend=backend)
    publisher = OutboxPublisher(_engine(settings), chosen)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, publisher.stop)
        _console.print(f"publishing the outbox to {chosen.backend}")
        await publisher.run()

    asyncio.run(serve())
    _console.print(f"{publisher.delivered} message(s) delivered")
