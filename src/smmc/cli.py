"""The `smmc` command."""

from __future__ import annotations

import asyncio
import functools
import shutil
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TimeRemainingColumn,
)
from rich.table import Table
from sqlalchemy.engine import Engine, make_url

from smmc.config import Settings
from smmc.domain.geo import CHILE, ServiceArea
from smmc.domain.provisioning import TemplateKind
from smmc.engine.cli import wo_app, worker_command
from smmc.events.cli import events_app
from smmc.integration.cli import outbox_app
from smmc.process import settle_heap
from smmc.reports.cli import export_app
from smmc.sim.cli import sim_app
from smmc.store.db import create_engine, normalise_url
from smmc.store.migrate import upgrade
from smmc.store.provisioning import ImportOptions, ImportResult, import_file, import_order
from smmc.store.secrets import SecretBox
from smmc.store.time_tables import refresh_time_tables
from smmc.web.auth_cli import app as user_app

if TYPE_CHECKING:
    from fastapi import FastAPI

    from smmc.engine.scheduler import Scheduler
    from smmc.engine.worker import Worker
    from smmc.events.listener import SpontaneousListener
    from smmc.integration.outbox import OutboxPublisher
    from smmc.sim.runner import FleetRunner

app = typer.Typer(help="SMMC: AMI head-end and operations system.", no_args_is_help=True)
db_app = typer.Typer(help="Central database.", no_args_is_help=True)
provision_app = typer.Typer(
    help="Provisioning from the utility's CSV templates.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(provision_app, name="provision")
app.add_typer(sim_app, name="sim")
app.add_typer(wo_app, name="wo")
app.command("worker")(worker_command)
app.add_typer(events_app, name="events")
app.add_typer(export_app, name="export")
app.add_typer(user_app, name="user")
app.add_typer(outbox_app, name="outbox")

console = Console()
err = Console(stderr=True)

PROGRESS_FROM_ROWS = 2000
TEMPLATE_LABELS = {
    TemplateKind.SERVICE_POINT: "POD",
    TemplateKind.METER: "meter",
    TemplateKind.METER_LINK: "meter-POD link",
    TemplateKind.CONCENTRATOR_SITE: "DC site",
    TemplateKind.TRANSFORMER: "transformer",
    TemplateKind.CONCENTRATOR_ATTRIBUTES: "DC attributes",
    TemplateKind.CONCENTRATOR_COMPOSITION: "DC composition",
}
SERVICE_AREAS = {"chile": CHILE}


def _settings() -> Settings:
    return Settings.from_env()


def _service_area(settings: Settings, check: bool) -> ServiceArea | None:
    if not check or settings.service_area.lower() == "none":
        return None
    area = SERVICE_AREAS.get(settings.service_area.lower())
    if area is None:
        err.print(
            f"[red]SMMC_SERVICE_AREA={settings.service_area!r} is not one of: "
            f"{', '.join([*SERVICE_AREAS, 'none'])}"
        )
        raise typer.Exit(1)
    return area


def prepare_database(settings: Settings) -> Engine:
    engine = create_engine(settings.database_url)
    upgrade(engine)
    refresh_time_tables(engine)
    return engine


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or update the schema and refresh the time-zone and DST tables."""
    settings = _settings()
    prepare_database(settings)
    console.print(f"database at [bold]{_display_url(settings)}[/] is up to date")


def _display_url(settings: Settings) -> str:
    return make_url(normalise_url(settings.database_url)).render_as_string(hide_password=True)


def run_import(
    engine: Engine,
    box: SecretBox,
    files: list[Path],
    options: ImportOptions,
    *,
    quiet: bool = False,
) -> list[ImportResult]:
    results = []
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=quiet,
    ) as progress:
        for path in import_order(files):
            task = progress.add_task(path.name, total=None, visible=False)

            def advance(done: int, total: int, task: TaskID = task) -> None:
                progress.update(
                    task, completed=done, total=total, visible=total > PROGRESS_FROM_ROWS
                )

            results.append(import_file(engine, box, path, options, advance))
            progress.update(task, visible=False)
    return results


def _print_results(results: list[ImportResult]) -> None:
    table = Table(box=None, pad_edge=False)
    table.add_column("file", overflow="fold", min_width=20)
    table.add_column("template")
    for label in ("rows", "ok", "rejected", "new", "updated", "warn"):
        table.add_column(label, justify="right")
    for r in results:
        template = f"{r.template.number} {TEMPLATE_LABELS[r.template.kind]}" if r.template else "-"
        rejected = f"[red]{r.rejected}[/]" if r.rejected else "0"
        table.add_row(
            r.path.name,
            template,
            str(r.rows_total),
            str(r.accepted),
            rejected,
            str(r.created),
            str(r.updated),
            str(r.warnings),
        )
    console.print(table)
    for r in results:
        if r.fatal:
            err.print(f"[red]cannot import[/] {r.fatal}")
        if r.report_path:
            console.print(f"{r.path.name}: error report at [bold]{r.report_path}[/]")


@provision_app.command("import")
def provision_import(
    files: Annotated[list[Path], typer.Argument(help="Template CSV files, in any order.")],
    area_check: Annotated[
        bool,
        typer.Option(
            "--area-check/--no-area-check",
            help="Reject coordinates outside the service area.",
        ),
    ] = True,
    report_dir: Annotated[
        Path | None, typer.Option(help="Where error reports go (default: <var>/reports).")
    ] = None,
) -> None:
    """Import provisioning templates. Exit 0: all rows accepted; 2: some rejected (see the
    error report); 1: a file could not be read."""
    settings = _settings()
    engine = prepare_database(settings)
    box = SecretBox.from_settings(settings.secret_key, settings.secret_key_file)
    options = ImportOptions(
        _service_area(settings, area_check), report_dir or settings.var_dir / "reports"
    )
    results = run_import(engine, box, files, options)
    _print_results(results)
    raise typer.Exit(max((r.exit_code for r in results), key=lambda code: (code == 1, code)))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    auth: Annotated[
        bool, typer.Option("--auth/--no-auth", help="Require a login or API token on /api/*.")
    ] = True,
) -> None:
    """Run the web UI, the REST API and the CIM SOAP endpoints against SMMC_DATABASE_URL."""
    import uvicorn

    from smmc.web.app import create_app

    settings = _settings()
    engine = prepare_database(settings)
    box = SecretBox.from_settings(settings.secret_key, settings.secret_key_file)
    api = create_app(
        engine, auth_required=auth, secret_box=box, report_dir=settings.var_dir / "reports"
    )
    uvicorn.run(api, host=host, port=port, log_level="info")


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="API port.")] = 8000,
    fresh: Annotated[bool, typer.Option(help="Start from an empty demo database.")] = True,
    fleet: Annotated[
        Path | None,
        typer.Option(help="Simulated fleet (YAML); default: the built-in demo fleet."),
    ] = None,
    events_port: Annotated[
        int, typer.Option(help="Spontaneous-message port (TCP and UDP) the concentrators push to.")
    ] = 58700,
) -> None:
    """Head-end demo: an embedded SQLite database provisioned with a simulated fleet, the
    API, and that fleet served over DLMS/TCP in the same process."""
    from smmc.engine.cli import field_registry
    from smmc.engine.scheduler import Scheduler, add_collection_schedules
    from smmc.engine.worker import Worker, WorkerConfig
    from smmc.events.cli import auto_sync_default
    from smmc.events.service import events_service
    from smmc.integration.outbox import OutboxPublisher
    from smmc.sim.cli import load_or_exit
    from smmc.sim.concentrator import HeadEndAddress
    from smmc.sim.provisioning_files import write_provisioning_files
    from smmc.sim.runner import FleetRunner, RunnerError, prepare, serve_concentrators
    from smmc.store.work_orders import WorkOrderQueue
    from smmc.web.app import create_app
    from smmc.web.auth_cli import ensure_demo_integration_token, ensure_demo_login

    description = load_or_exit(fleet)
    demo_dir = Settings.from_env().var_dir / "demo"
    if fresh and demo_dir.exists():
        shutil.rmtree(demo_dir)
    settings = Settings.from_env(
        {"SMMC_VAR_DIR": str(demo_dir), "SMMC_DATABASE_URL": f"sqlite:///{demo_dir / 'smmc.db'}"}
    )
    engine = prepare_database(settings)
    box = SecretBox.from_settings(None, settings.secret_key_file)
    plan, clock = prepare(description)
    files = write_provisioning_files(plan, demo_dir / "provisioning")
    results = run_import(
        engine, box, list(files.values()), ImportOptions(CHILE, demo_dir / "reports"), quiet=True
    )
    _print_results(results)
    if any(r.exit_code for r in results):
        err.print("[red]the simulated fleet did not import cleanly")
        raise typer.Exit(1)
    runner = FleetRunner(
        plan,
        clock,
        labels=demo_dir / "anomaly_labels.csv",
        concentrators=functools.partial(
            serve_concentrators,
            head_end=HeadEndAddress("127.0.0.1", events_port),
            alarm_interval_s=60.0,
        ),
    )
    api = create_app(engine, auth_required=True, secret_box=box, report_dir=demo_dir / "reports")
    login = ensure_demo_login(engine)
    token = ensure_demo_integration_token(engine)
    queue = WorkOrderQueue(engine)
    worker = Worker(
        queue, field_registry(engine, box), WorkerConfig(name="demo-worker", poll_interval=0.5)
    )
    scheduler = Scheduler(queue)
    if not scheduler.schedules():
        add_collection_schedules(scheduler)
    services = _DemoServices(worker, scheduler, OutboxPublisher(engine, settings.outbox))
    listener = events_service(
        engine, host="127.0.0.1", port=events_port, auto_sync=auto_sync_default()
    )
    settle_heap()
    try:
        asyncio.run(_demo(api, port, runner, services, listener, (login, token), demo_dir))
    except RunnerError as exc:
        err.print(f"[red]{exc}")
        raise typer.Exit(1) from exc


class _DemoServices:
    """The head-end's background jobs in the demo: a worker, the scheduler and the outbox
    publisher (the embedded Legacy inbox unless SMMC_OUTBOX_BACKEND says otherwise)."""

    def __init__(self, worker: Worker, scheduler: Scheduler, publisher: OutboxPublisher) -> None:
        self.worker = worker
        self.scheduler = scheduler
        self.publisher = publisher
        self._stop = asyncio.Event()

    async def run(self) -> None:
        await asyncio.gather(
            self.worker.run(), self.scheduler.run(self._stop), self.publisher.run()
        )

    def stop(self) -> None:
        self.worker.stop()
        self.publisher.stop()
        self._stop.set()


async def _demo(
    api: FastAPI,
    port: int,
    runner: FleetRunner,
    services: _DemoServices,
    listener: AbstractAsyncContextManager[SpontaneousListener],
    accounts: tuple[tuple[str, str], tuple[str, str]],
    demo_dir: Path,
) -> None:
    """The web app (uvicorn), the head-end's background jobs, the spontaneous-message
    listener and the simulated fleet (pushing to it) in one event loop; Ctrl+C stops them
    all."""
    import uvicorn

    from smmc.sim.cli import describe_fleet

    server = uvicorn.Server(uvicorn.Config(api, host="127.0.0.1", port=port, log_level="warning"))
    login, token = accounts
    async with listener as events, runner:
        base = f"http://127.0.0.1:{port}"
        console.print(
            f"\n[bold green]SMMC demo[/] — database {demo_dir / 'smmc.db'}\n"
            f"  web UI       {base}/  (login [bold]{login[0]}[/] / [bold]{login[1]}[/])\n"
            f"  API docs     {base}/docs\n"
            f"  meters       {base}/api/meters\n"
            f"  map (GeoJSON) {base}/api/map/meters\n"
            f"  CIM (SOAP)   {base}/cim/ExecuteEndDeviceControls?wsdl  "
            f"(Legacy token for [bold]{token[0]}[/]: {token[1]})\n"
            f"  spontaneous  tcp+udp 127.0.0.1:{events.bound_port} (concentrator pushes)\n"
            f"  outbox       {base}/api/outbox  (outcomes and events for Legacy, in table "
            "legacy_inbox)\n"
            f"  provisioning files {demo_dir / 'provisioning'}\n"
            f"  anomaly labels     {runner.labels}\n"
        )
        describe_fleet(runner)
        console.print("Press Ctrl+C to stop.\n")
        working = asyncio.create_task(services.run())
        try:
            await server.serve()
        finally:
            services.stop()
            await working


if __name__ == "__main__":
    app()
