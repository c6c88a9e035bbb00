"""`smmc wo …` (submit, list, show, cancel, schedule, schedules) and `smmc worker`.

The lead mounts them: ``app.add_typer(wo_app, name="wo")`` and
``app.command("worker")(worker_command)``.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress
from rich.table import Table
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from smmc.config import Settings
from smmc.domain.time import DEFAULT_TIME_ZONE, UnknownTimeZone, to_local
from smmc.domain.work_orders import (
    ActivityType,
    InvalidTransition,
    InvalidWorkOrder,
    Origin,
    PolicyError,
    State,
    Target,
    View,
    load_policies,
    parse_activity_type,
    parse_target_csv,
)
from smmc.engine.activities import FieldContext, register_field_executors
from smmc.engine.executors import ExecutorRegistry
from smmc.engine.scheduler import Scheduler, ScheduleScope
from smmc.engine.worker import Worker, WorkerConfig, default_worker_name
from smmc.field.drivers import FieldDrivers
from smmc.field.sessions import SessionLimits, SessionManager, load_permits
from smmc.process import settle_heap
from smmc.store.db import create_engine
from smmc.store.migrate import upgrade
from smmc.store.secrets import SecretBox
from smmc.store.work_orders import (
    Rejected,
    SubmitResult,
    TargetRef,
    WorkOrderFilter,
    WorkOrderNotFound,
    WorkOrderQueue,
    write_csv,
)

__all__ = ["build_registry", "field_registry", "wo_app", "worker_command"]

wo_app = typer.Typer(help="Work orders: submit, list, show, cancel.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

PROGRESS_FROM = 1000

PoliciesOption = Annotated[
    Path | None,
    typer.Option(
        "--policies",
        envvar="SMMC_WORK_ORDER_POLICIES",
        exists=True,
        dir_okay=False,
        help="YAML file overriding the per-activity policy defaults",
    ),
]


def _queue(policies: Path | None = None) -> WorkOrderQueue:
    engine: Engine = create_engine(Settings.from_env().database_url)
    upgrade(engine)
    try:
        return WorkOrderQueue(engine, load_policies(policies))
    except PolicyError as exc:
        err.print(f"[red]{exc}")
        raise typer.Exit(2) from None


def _activity(text: str) -> ActivityType:
    try:
        return parse_activity_type(text)
    except InvalidWorkOrder as exc:
        raise typer.BadParameter(str(exc)) from None


def _csv_targets(path: Path) -> tuple[list[TargetRef], list[int], list[str]]:
    rows, errors = parse_target_csv(path.read_text(encoding="utf-8-sig"))
    problems = [f"{path.name}:{error.line}: {error.reason}" for error in errors]
    return [TargetRef(meter=r.serial, pod=r.pod) for r in rows], [r.line for r in rows], problems


@wo_app.command("submit")
def submit(
    activity: Annotated[str, typer.Argument(help="activity type (Reading, CORTE, MeterSync…)")],
    meter: Annotated[list[str] | None, typer.Option("--meter", "-m", help="meter serial")] = None,
    pod: Annotated[list[str] | None, typer.Option("--pod", help="POD name")] = None,
    csv_file: Annotated[
        Path | None,
        typer.Option("--csv", exists=True, dir_okay=False, help="podname;serialnumber file"),
    ] = None,
    concentrator: Annotated[
        str | None, typer.Option(help="concentrator: its own activity, or all its meters")
    ] = None,
    priority: Annotated[int | None, typer.Option(min=0, max=9)] = None,
    reason: Annotated[str | None, typer.Option(help="disconnect/connect reason")] = None,
    special: Annotated[bool, typer.Option(help="bypass the working-day rule")] = False,
    external_id: Annotated[str | None, typer.Option(help="external correlation id")] = None,
    at: Annotated[
        datetime | None, typer.Option(help="not before this time (UTC if no offset given)")
    ] = None,
    policies: PoliciesOption = None,
) -> None:
    """Queue one batch (one idwork) of work orders."""
    chosen = _activity(activity)
    queue = _queue(policies)
    targets = [TargetRef(meter=serial) for serial in meter or []]
    targets += [TargetRef(pod=name) for name in pod or []]
    lines: list[str] = [f"--meter {serial}" for serial in meter or []]
    lines += [f"--pod {name}" for name in pod or []]
    problems: list[str] = []
    if csv_file is not None:
        csv_targets, csv_lines, problems = _csv_targets(csv_file)
        targets += csv_targets
        lines += [f"{csv_file.name}:{line}" for line in csv_lines]
    if concentrator is not None:
        if queue.policies[chosen].target is Target.CONCENTRATOR:
            targets.append(TargetRef(concentrator=concentrator))
            lines.append(f"--concentrator {concentrator}")
        elif not targets:
            try:
                targets = queue.meters_of_concentrator(concentrator)
            except InvalidWorkOrder as exc:
                raise typer.BadParameter(str(exc)) from None
            lines = [f"{concentrator}/{t.meter}" for t in targets]
    if not targets:
        raise typer.BadParameter("give --meter, --pod, --csv or --concentrator")
    scheduled_at = None
    if at is not None:
        scheduled_at = at if at.tzinfo else at.replace(tzinfo=UTC)
    for problem in problems:
        err.print(f"[yellow]skipped {problem}")
    result = _run_submit(
        queue, chosen, targets, priority, reason, special, external_id, scheduled_at
    )
    _report_rejected(result.rejected, lines)
    if result.batch_id is None:
        err.print("[red]no work order accepted")
        raise typer.Exit(1)
    console.print(
        f"batch (idwork) {result.batch_id}: {result.accepted} {chosen.value} order(s) queued, "
        f"{len(result.rejected) + len(problems)} row(s) rejected"
    )


def _run_submit(
    queue: WorkOrderQueue,
    activity: ActivityType,
    targets: list[TargetRef],
    priority: int | None,
    reason: str | None,
    special: bool,
    external_id: str | None,
    scheduled_at: datetime | None,
) -> SubmitResult:
    def submit_with(on_progress: Callable[[int, int], None] | None) -> SubmitResult:
        return queue.submit(
            activity,
            targets,
            origin=Origin.OPERATOR,
            external_id=external_id,
            priority=priority,
            scheduled_at=scheduled_at,
            special=special,
            reason=reason,
            on_progress=on_progress,
        )

    try:
        if len(targets) < PROGRESS_FROM:
            return submit_with(None)
        with Progress(
            *Progress.get_default_columns()[:1], BarColumn(), MofNCompleteColumn(), console=err
        ) as progress:
            task = progress.add_task("queueing", total=len(targets))

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total)

            return submit_with(advance)
    except InvalidWorkOrder as exc:
        raise typer.BadParameter(str(exc)) from None


def _report_rejected(rejected: tuple[Rejected, ...], lines: list[str]) -> None:
    for item in rejected:
        where = lines[item.index] if item.index < len(lines) else f"row {item.index}"
        err.print(f"[yellow]rejected {where}: {item.reason}")


def _stamp(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else ""


@wo_app.command("list")
def list_orders(
    idwork: Annotated[int | None, typer.Option(help="batch id")] = None,
    activity: Annotated[str | None, typer.Option(help="activity type")] = None,
    concentrator: Annotated[str | None, typer.Option()] = None,
    meter: Annotated[str | None, typer.Option(help="meter serial")] = None,
    pod: Annotated[str | None, typer.Option(help="POD name")] = None,
    ended_from: Annotated[datetime | None, typer.Option(help="end date from (UTC)")] = None,
    ended_to: Annotated[datetime | None, typer.Option(help="end date before (UTC)")] = None,
    view: Annotated[View | None, typer.Option(help="monitoring view")] = None,
    state: Annotated[State | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 50,
    csv_out: Annotated[
        Path | None, typer.Option("--csv", help="write the seed's CSV report ('-' for stdout)")
    ] = None,
) -> None:
    """Orders matching the seed's filters (newest first), or the full CSV report."""
    queue = _queue()
    filters = WorkOrderFilter(
        batch_id=idwork,
        activity=_activity(activity) if activity else None,
        concentrator=concentrator,
        meter=meter,
        pod=pod,
        ended_from=ended_from.replace(tzinfo=UTC)
        if ended_from and not ended_from.tzinfo
        else ended_from,
        ended_to=ended_to.replace(tzinfo=UTC) if ended_to and not ended_to.tzinfo else ended_to,
        view=view,
        state=state,
    )
    if csv_out is not None:
        if str(csv_out) == "-":
            write_csv(queue.iter_rows(filters), sys.stdout)
            return
        with csv_out.open("w", encoding="utf-8", newline="") as stream:
            count = write_csv(queue.iter_rows(filters), stream)
        console.print(f"{count} work order(s) written to {csv_out}")
        return
    rows, total = queue.list_orders(filters, limit=limit)
    table = Table(title=f"{len(rows)} of {total} work order(s)")
    for column in (
        "id",
        "idwork",
        "activity",
        "state",
        "prio",
        "concentrator",
        "meter",
        "pod",
        "attempts",
        "ended (UTC)",
        "error",
    ):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row["id"]),
            str(row["batch_id"]),
            row["activity"],
            row["state"],
            str(row["priority"]),
            row["concentrator_name"] or "",
            row["meter_serial"] or "",
            row["service_point_name"] or "",
            f"{row['attempts']}/{row['max_attempts']}",
            _stamp(row["ended_at"]),
            row["error_text"] or "",
        )
    console.print(table)


@wo_app.command("show")
def show(order_id: Annotated[int, typer.Argument(help="work order id")]) -> None:
    """One order with its attempt history."""
    queue = _queue()
    try:
        row = queue.get(order_id)
    except WorkOrderNotFound as exc:
        err.print(f"[red]{exc}")
        raise typer.Exit(1) from None
    for label, value in (
        ("id", row["id"]),
        ("idwork", row["batch_id"]),
        ("activity", row["activity"]),
        ("state", row["state"]),
        ("priority", row["priority"]),
        ("origin", row["origin"]),
        ("outer id", row["external_id"] or ""),
        ("concentrator", row["concentrator_name"] or ""),
        ("meter", row["meter_serial"] or ""),
        ("pod", row["service_point_name"] or ""),
        ("reason", row["reason"] or ""),
        ("attempts", f"{row['attempts']}/{row['max_attempts']}"),
        ("scheduled (UTC)", _stamp(row["scheduled_at"])),
        ("deadline (UTC)", _stamp(row["deadline"])),
        ("started (UTC)", _stamp(row["started_at"])),
        ("ended (UTC)", _stamp(row["ended_at"])),
        ("result", row["result"] or ""),
        ("error", row["error_text"] or ""),
    ):
        console.print(f"[bold]{label}:[/bold] {value}")
    history = Table(title="attempts")
    for column in ("#", "worker", "started (UTC)", "ended (UTC)", "outcome", "error"):
        history.add_column(column)
    for attempt in queue.attempts(order_id):
        history.add_row(
            str(attempt["attempt"]),
            attempt["worker"],
            _stamp(attempt["started_at"]),
            _stamp(attempt["ended_at"]),
            attempt["outcome"] or "",
            attempt["error_text"] or "",
        )
    console.print(history)


@wo_app.command("cancel")
def cancel(order_id: Annotated[int, typer.Argument(help="work order id")]) -> None:
    """Cancel a queued order (a RUNNING one cannot be: its command may be on the wire)."""
    queue = _queue()
    try:
        queue.cancel(order_id)
    except (WorkOrderNotFound, InvalidTransition) as exc:
        err.print(f"[red]{exc}")
        raise typer.Exit(1) from None
    console.print(f"work order {order_id} cancelled")


@wo_app.command("schedule")
def schedule(
    name: Annotated[str, typer.Argument(help="unique schedule name")],
    activity: Annotated[str, typer.Argument(help="activity type")],
    cron: Annotated[str, typer.Argument(help="cron expression in local time, e.g. '0 1 * * *'")],
    scope: Annotated[ScheduleScope, typer.Option(help="which targets each run covers")] = (
        ScheduleScope.CONCENTRATOR_METERS
    ),
    target: Annotated[
        str | None, typer.Option(help="meter serial or concentrator name, per scope")
    ] = None,
    time_zone: Annotated[str, typer.Option(help="IANA zone of the cron times")] = (
        DEFAULT_TIME_ZONE
    ),
    priority: Annotated[int | None, typer.Option(min=0, max=9)] = None,
) -> None:
    """Add a recurring activity; `smmc worker` turns it into work orders when due."""
    queue = _queue()
    try:
        Scheduler(queue).add(
            name,
            _activity(activity),
            cron,
            scope,
            target,
            time_zone=time_zone,
            priority=priority,
        )
    except (InvalidWorkOrder, UnknownTimeZone) as exc:
        raise typer.BadParameter(str(exc)) from None
    except IntegrityError:
        raise typer.BadParameter(f"a schedule named {name!r} already exists") from None
    console.print(f"schedule {name} added")


@wo_app.command("schedules")
def schedules() -> None:
    """The recurring activities and when each runs next (UTC and local)."""
    table = Table(title="schedules")
    for column in (
        "name",
        "activity",
        "cron",
        "zone",
        "scope",
        "target",
        "next (UTC)",
        "next (local)",
        "last (UTC)",
    ):
        table.add_column(column)
    for item in Scheduler(_queue()).schedules():
        table.add_row(
            item.name,
            item.activity.value,
            item.cron,
            item.time_zone,
            item.scope.value,
            item.target or "",
            _stamp(item.next_run_at),
            _stamp(to_local(item.next_run_at, item.time_zone)),
            _stamp(item.last_run_at),
        )
    console.print(table)


def build_registry(engine: Engine) -> ExecutorRegistry:
    """The field executors, talking to the devices registered in ``engine``'s database with
    the keys opened by the master key (SMMC_SECRET_KEY or its key file); none without it."""
    settings = Settings.from_env()
    if not settings.secret_key and not settings.secret_key_file.exists():
        # Never create a master key here: the device keys were sealed with an existing one.
        err.print("[yellow]no master key (SMMC_SECRET_KEY or its key file): no field executors")
        return ExecutorRegistry()
    return field_registry(
        engine, SecretBox.from_settings(settings.secret_key, settings.secret_key_file)
    )


def field_registry(engine: Engine, box: SecretBox) -> ExecutorRegistry:
    """Every field activity, with device keys opened by ``box``; the concentrator permits
    are re-read from the store every half minute while the worker runs."""
    registry = ExecutorRegistry()
    sessions = SessionManager(
        SessionLimits(), load_permits(engine), reload=partial(load_permits, engine)
    )
    drivers = FieldDrivers(engine, box, sessions)
    register_field_executors(registry, FieldContext(drivers))
    return registry


async def _serve(worker: Worker | None, scheduler: Scheduler | None, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()

    def request_stop() -> None:
        stop.set()
        if worker is not None:
            worker.stop()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, request_stop)
    tasks = []
    if worker is not None:
        tasks.append(asyncio.create_task(worker.run()))
    if scheduler is not None:
        tasks.append(asyncio.create_task(scheduler.run(stop)))
    await asyncio.gather(*tasks)


def worker_command(
    name: Annotated[str | None, typer.Option(help="worker name (default host:pid)")] = None,
    max_in_flight: Annotated[int, typer.Option(min=1, help="orders run at once")] = 16,
    lease_seconds: Annotated[float, typer.Option(min=1, help="lease length")] = 120.0,
    poll_seconds: Annotated[float, typer.Option(min=0.05, help="idle poll interval")] = 1.0,
    scheduler: Annotated[
        bool, typer.Option(help="also turn due schedules into work orders")
    ] = True,
    policies: PoliciesOption = None,
    field: Annotated[
        bool, typer.Option(help="run the field executors (talk to meters and concentrators)")
    ] = True,
) -> None:
    """Lease and run work orders until SIGINT/SIGTERM (then finish the orders in flight).
    Several workers may share one PostgreSQL database."""
    queue = _queue(policies)
    registry = build_registry(queue.engine) if field else ExecutorRegistry()
    worker = None
    if registry.activities():
        config = WorkerConfig(
            name=name or default_worker_name(),
            max_in_flight=max_in_flight,
            lease_for=timedelta(seconds=lease_seconds),
            poll_interval=poll_seconds,
        )
        worker = Worker(queue, registry, config)
        listed = ", ".join(sorted(a.value for a in registry.activities()))
        console.print(f"worker {config.name}: running {listed}")
    else:
        err.print("[yellow]no executors registered: no work order will be run by this worker")
    if worker is None and not scheduler:
        raise typer.Exit(1)
    settle_heap()
    asyncio.run(_serve(worker, Scheduler(queue) if scheduler else None, asyncio.Event()))
