"""`smmc export files` (the S_/M_/DC_ daily files) and `smmc export warehouse` (Parquet).

The lead mounts it: ``app.add_typer(export_app, name="export")``. Both only read the
central database.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from smmc.config import Settings
from smmc.reports.readings_files import days_between, write_day_files
from smmc.reports.warehouse import WarehouseDay, WarehouseUnavailable, export_warehouse
from smmc.store.db import create_engine

__all__ = ["export_app"]

export_app = typer.Typer(help="Export meter data: daily files, warehouse.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)


def _day(text: str) -> date:
    try:
        return datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a day (YYYY-MM-DD)") from None


Day = Annotated[str, typer.Option(help="local day, YYYY-MM-DD")]
OutDir = Annotated[Path, typer.Option("--out", file_okay=False, help="output directory")]


@export_app.command("files")
def files_command(
    out_dir: OutDir,
    day: Day,
    to: Annotated[
        str | None, typer.Option("--to", help="last local day (default: --day only)")
    ] = None,
) -> None:
    """Write S_, M_ and DC_ files of one local day (or of --day..--to)."""
    first = _day(day)
    last = _day(to) if to else first
    if last < first:
        raise typer.BadParameter("--to is before --day")
    engine = create_engine(Settings.from_env().database_url)
    days = days_between(first, last)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=err
    ) as progress:
        task = progress.add_task("daily files", total=len(days))
        for one in days:
            written = write_day_files(engine, one, out_dir)
            for path, rows in written.values():
                out.print(f"{path}\t{rows} rows")
            progress.advance(task)


@export_app.command("warehouse")
def warehouse_command(
    out_dir: OutDir,
    first: Annotated[str, typer.Option("--from", help="first local day, YYYY-MM-DD")],
    last: Annotated[str, typer.Option("--to", help="last local day, YYYY-MM-DD")],
) -> None:
    """Export local days --from..--to as Parquet, partitioned by date (interface I7)."""
    start, end = _day(first), _day(last)
    if end < start:
        raise typer.BadParameter("--to is before --from")
    engine = create_engine(Settings.from_env().database_url)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=err
    ) as progress:
        task = progress.add_task("warehouse", total=len(days_between(start, end)))

        def advance(day: WarehouseDay) -> None:
            progress.update(task, advance=1, description=f"warehouse {day.day.isoformat()}")
            out.print(
                f"{day.day.isoformat()}\t{day.interval_rows} interval values\t"
                f"{day.register_rows} register reads"
            )

        try:
            export_warehouse(engine, start, end, out_dir, progress=advance)
        except WarehouseUnavailable as exc:
            err.print(f"[red]{exc}")
            raise typer.Exit(2) from None
