"""Serve a whole simulated fleet: point-to-point meters, concentrators, time and labels.

``FleetRunner(plan, clock)`` is an async context manager. On entry it raises the open-file
limit to its hard maximum (a large fleet holds thousands of sockets), writes the anomaly
labels file when asked, starts one ``DlmsServer`` per point-to-point meter on the meter's
own loopback address and port (Linux routes all of 127.0.0.0/8 to ``lo``, so every meter
keeps the standard port 4059), and enters the concentrator hook, which serves the
concentrators and, through them, the meters behind them (built lazily by the shared
``MeterDevices``; ``serve_concentrators`` runs the concentrator simulator). On exit
everything stops and every socket is closed.

Simulation time is the ``SimClock``: real time, accelerated by a factor, and N days of
history behind "now" at start-up. Fast-forwarding costs nothing at start-up because the
models are functions of time: a meter computes its history when first read.
``prepare(fleet, …)`` builds the plan and the clock that agree on "now" and history.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import resource
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from smmc.dlms.apdu import DataNotification
from smmc.dlms.axdr import Data
from smmc.dlms.cosem.push_setup import PushSetup
from smmc.dlms.errors import DlmsError
from smmc.dlms.server import DlmsServer
from smmc.sim.anomalies import write_labels
from smmc.sim.clock import SimClock, TimeMode
from smmc.sim.concentrator import ConcentratorServer, HeadEndAddress
from smmc.sim.fleet import Fleet, FleetPlan
from smmc.sim.meter_device import METER_LOGICAL_ADDRESS, MeterDevices

__all__ = [
    "ConcentratorHook",
    "Endpoint",
    "FleetRunner",
    "RunnerError",
    "parse_destination",
    "prepare",
    "raise_open_file_limit",
    "serve_concentrators",
]

_LOG = logging.getLogger(__name__)

ConcentratorHook = Callable[
    [FleetPlan, MeterDevices, SimClock], AbstractAsyncContextManager[object]
]
"""Serves the plan's concentrators while its context is entered (meters through
``MeterDevices``)."""


class RunnerError(RuntimeError):
    """The fleet could not be started (an address in use, …)."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One thing the runner serves."""

    kind: Literal["meter", "concentrator"]
    name: str
    host: str
    port: int


@contextlib.asynccontextmanager
async def serve_concentrators(
    plan: FleetPlan,
    meters: MeterDevices,
    clock: SimClock,
    *,
    head_end: HeadEndAddress | None = None,
    alarm_interval_s: float | None = None,
) -> AsyncIterator[list[ConcentratorServer]]:
    """The ``ConcentratorHook`` of the concentrator simulator: every DC of the plan on its
    own endpoint, sharing ``meters`` with the point-to-point servers.

    With ``head_end`` the DCs send their power off/on frames there and, every
    ``alarm_interval_s`` seconds, relay new meter alarms as pushes; bind it with
    ``functools.partial(serve_concentrators, head_end=HeadEndAddress(host, 58700))``."""
    async with contextlib.AsyncExitStack() as stack:
        servers: list[ConcentratorServer] = []
        for spec in plan.concentrators:
            server = ConcentratorServer(
                plan,
                spec,
                clock,
                meters=meters,
                head_end=head_end,
                alarm_interval_s=alarm_interval_s,
            )
            try:
                await stack.enter_async_context(server)
            except OSError as exc:
                raise RunnerError(
                    f"concentrator {spec.name} cannot listen on {spec.host}:{spec.port}: {exc}"
                ) from exc
            servers.append(server)
        yield servers


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; returns the soft limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def prepare(
    fleet: Fleet,
    *,
    accelerate: float | None = None,
    history_days: int | None = None,
    start: datetime | None = None,
) -> tuple[FleetPlan, SimClock]:
    """The plan and the simulation clock of a fleet, with command-line overrides.

    ``accelerate`` switches to accelerated time with that factor; ``history_days`` sets the
    fast-forwarded history; ``start`` fixes simulated "now" at start-up.
    """
    time = fleet.time
    if accelerate is not None:
        time = dataclasses.replace(time, mode=TimeMode.ACCELERATED, factor=accelerate)
    if history_days is not None:
        time = dataclasses.replace(time, history_days=history_days)
    if start is not None:
        time = dataclasses.replace(time, start=start)
    fleet = dataclasses.replace(fleet, time=time)
    factor = time.factor if time.mode is TimeMode.ACCELERATED else 1.0
    now = time.start or datetime.now(UTC)
    return fleet.build(now), SimClock(now, factor, time.history_days)


def parse_destination(destination: bytes) -> tuple[str, int]:
    """``host:port`` of a push setup's destination (ASCII); ``ValueError`` otherwise."""
    text = destination.decode("ascii")
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"push destination {text!r} is not host:port")
    return host, int(port)


class FleetRunner:
    """Serves ``plan`` on simulated time ``clock`` while entered.

    ``concentrators`` starts the concentrators (``None``: only point-to-point meters are
    served). ``labels`` is where the anomaly ground truth is written at start-up.
    """

    def __init__(
        self,
        plan: FleetPlan,
        clock: SimClock,
        *,
        concentrators: ConcentratorHook | None = None,
        labels: Path | None = None,
        meter_cache: int = 2048,
        idle_timeout: float | None = 120.0,
    ) -> None:
        self.plan = plan
        self.clock = clock
        self.labels = labels
        self.idle_timeout = idle_timeout
        self.meters = MeterDevices(plan, clock, capacity=meter_cache, on_push=self._push)
        self._concentrator_hook = concentrators
        self._stack = contextlib.AsyncExitStack()
        self.servers: dict[int, DlmsServer] = {}
        self.open_file_limit = 0
        self._pushes: set[asyncio.Task[None]] = set()
        self._started = False

    async def __aenter__(self) -> FleetRunner:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def point_to_point(self) -> range:
        """Indices of the point-to-point meters (they follow the concentrator meters)."""
        section = self.plan.fleet.concentrators
        return range(section.count * section.meters_per_concentrator, len(self.plan))

    @property
    def serves_concentrators(self) -> bool:
        return self._concentrator_hook is not None

    def endpoints(self) -> list[Endpoint]:
        """What is served: concentrators (when the hook is set), then point-to-point meters."""
        found: list[Endpoint] = []
        if self._concentrator_hook is not None:
            found.extend(
                Endpoint("concentrator", c.name, c.host, c.port) for c in self.plan.concentrators
            )
        for index in self.point_to_point:
            spec = self.plan.meter(index)
            if spec.host is not None and spec.port is not None:
                found.append(Endpoint("meter", spec.serial, spec.host, spec.port))
        return found

    async def start(self) -> None:
        """Start serving; on failure everything already started is stopped again."""
        if self._started:
            raise RunnerError("the fleet runner is already started")
        self._started = True
        self.open_file_limit = raise_open_file_limit()
        if self.labels is not None:
            write_labels(self.labels, self.plan.labels())
        try:
            await self._start_meters()
            if self._concentrator_hook is not None:
                await self._stack.enter_async_context(
                    self._concentrator_hook(self.plan, self.meters, self.clock)
                )
        except BaseException:
            await self.stop()
            raise

    async def _start_meters(self) -> None:
        for index in self.point_to_point:
            spec = self.plan.meter(index)
            if spec.host is None or spec.port is None:
                continue
            served = self.meters.pin(index).served
            self.servers[index] = DlmsServer(
                {METER_LOGICAL_ADDRESS: served},
                host=spec.host,
                port=spec.port,
                idle_timeout=self.idle_timeout,
            )
        results = await asyncio.gather(
            *(server.start() for server in self.servers.values()), return_exceptions=True
        )
        for (index, server), result in zip(self.servers.items(), results, strict=True):
            if isinstance(result, BaseException):
                spec = self.plan.meter(index)
                raise RunnerError(
                    f"meter {spec.serial} cannot listen on {server.host}:{spec.port}: {result}"
                ) from result

    async def stop(self) -> None:
        """Stop the concentrators, the meters' servers and pending pushes."""
        stack, self._stack = self._stack, contextlib.AsyncExitStack()
        await stack.aclose()
        for task in list(self._pushes):
            task.cancel()
        if self._pushes:
            await asyncio.gather(*self._pushes, return_exceptions=True)
        servers = list(self.servers.values())
        self.servers.clear()
        await asyncio.gather(*(server.stop() for server in servers), return_exceptions=True)
        self._started = False

    # -- pushes ----------------------------------------------------------------------------

    def _push(self, index: int, setup: PushSetup, values: tuple[Data, ...]) -> None:
        """A point-to-point meter's push setup fired: send the DataNotification."""
        server = self.servers.get(index)
        if server is None:
            _LOG.info("push of meter %d dropped: it is not a point-to-point meter", index)
            return
        try:
            host, port = parse_destination(setup.destination)
        except (UnicodeDecodeError, ValueError) as exc:
            _LOG.info("push of meter %d dropped: %s", index, exc)
            return
        notification = DataNotification(Data.structure(values))
        task = asyncio.get_running_loop().create_task(self._send(server, notification, host, port))
        self._pushes.add(task)
        task.add_done_callback(self._pushes.discard)

    @staticmethod
    async def _send(
        server: DlmsServer, notification: DataNotification, host: str, port: int
    ) -> None:
        try:
            await server.push(notification, host, port)
        except (DlmsError, OSError) as exc:
            _LOG.info("push to %s:%d failed: %s", host, port, exc)
