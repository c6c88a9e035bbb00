"""``smmc sim``: the field simulator's commands (provisioning files, serving a fleet)."""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from smmc.process import settle_heap
from smmc.sim.legacy import legacy_app

if TYPE_CHECKING:
    from smmc.sim.fleet import Fleet
    from smmc.sim.runner import FleetRunner

__all__ = ["describe_fleet", "load_or_exit", "sim_app"]

# The simulator's modules load only when a command runs, so `smmc --help` stays quick.
sim_app = typer.Typer(help="Field simulator.", no_args_is_help=True)
sim_app.add_typer(legacy_app, name="legacy")
console = Console()
err = Console(stderr=True)

_LISTED = 20  # endpoints printed before "… and N more"


def load_or_exit(path: Path | None) -> Fleet:
    """The fleet of ``path`` (built-in when None); exit 1 with the field on an error."""
    from smmc.sim.fleet import FleetError, load_fleet

    try:
        return load_fleet(path)
    except FleetError as exc:
        err.print(f"[red]{exc}")
        raise typer.Exit(1) from exc


@sim_app.command("provisioning-files")
def provisioning_files(
    out: Annotated[Path, typer.Option(help="Directory for the seven CSV files.")],
    fleet: Annotated[
        Path | None, typer.Option(help="Fleet description (YAML); default: the built-in fleet.")
    ] = None,
) -> None:
    """Write the seven provisioning templates of a simulated fleet."""
    from smmc.sim.provisioning_files import write_provisioning_files

    for kind, path in write_provisioning_files(load_or_exit(fleet), out).items():
        console.print(f"{kind.value:26} {path}")


def describe_fleet(runner: FleetRunner, out: Console = console) -> None:
    """Print what the runner serves, where, and on which simulated time."""
    plan, clock = runner.plan, runner.clock
    endpoints = runner.endpoints()
    table = Table("kind", "name", "address", title=f"fleet {plan.fleet.name!r}")
    for endpoint in endpoints[:_LISTED]:
        table.add_row(endpoint.kind, endpoint.name, f"{endpoint.host}:{endpoint.port}")
    out.print(table)
    if len(endpoints) > _LISTED:
        out.print(f"… and {len(endpoints) - _LISTED} more endpoints")
    meters = len(plan) - len(runner.point_to_point)
    if runner.serves_concentrators:
        out.print(f"{len(plan.concentrators)} concentrators with {meters} meters behind them")
    elif plan.concentrators:
        out.print(f"[yellow]{len(plan.concentrators)} concentrators ({meters} meters) not served")
    speed = "real time" if clock.factor == 1.0 else f"{clock.factor:g}× real time"
    out.print(
        f"simulated now {clock.now():%Y-%m-%d %H:%M:%S} UTC ({speed}); "
        f"history since {clock.history_start:%Y-%m-%d %H:%M} UTC"
    )


async def _serve_until_stopped(runner: FleetRunner) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with runner:
            settle_heap()
            describe_fleet(runner)
            console.print("Serving. Press Ctrl+C to stop.")
            await stop.wait()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    console.print("Stopped.")


@sim_app.command("run")
def run(
    fleet: Annotated[
        Path | None, typer.Option(help="Fleet description (YAML); default: the built-in fleet.")
    ] = None,
    labels: Annotated[
        Path | None, typer.Option(help="Write the injected anomalies (ground truth) here.")
    ] = None,
    accelerate: Annotated[
        float | None, typer.Option(help="Run simulated time this many times faster.", min=0.001)
    ] = None,
    history_days: Annotated[
        int | None, typer.Option(help="Days of history behind 'now' at start-up.", min=0)
    ] = None,
    start: Annotated[
        datetime | None,
        typer.Option(
            help="Simulated 'now' at start-up (UTC), for reproducible anomaly times.",
            formats=["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"],
        ),
    ] = None,
) -> None:
    """Serve a simulated fleet over DLMS/TCP until Ctrl+C."""
    from smmc.sim.runner import FleetRunner, RunnerError, prepare, serve_concentrators

    description = load_or_exit(fleet)
    plan, clock = prepare(
        description,
        accelerate=accelerate,
        history_days=history_days,
        start=None if start is None else start.replace(tzinfo=UTC),
    )
    runner = FleetRunner(plan, clock, labels=labels, concentrators=serve_concentrators)
    try:
        asyncio.run(_serve_until_stopped(runner))
    except RunnerError as exc:
        err.print(f"[red]{exc}")
        raise typer.Exit(1) from exc
