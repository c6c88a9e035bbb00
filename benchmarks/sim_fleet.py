"""Simulator fleet benchmark (issue 4): start a large fleet, measure time and memory.

    python benchmarks/sim_fleet.py --concentrators 1000 --meters-per-concentrator 100

1. Start: build the plan, start a ``FleetRunner`` serving every concentrator on its own
   endpoint (``serve_concentrators``) plus the point-to-point meters, simulated "now" being
   the latest local midnight; report the start time and the resident memory (current and
   peak, from /proc/self/status).
2. Check that it really serves: read the clock of a few concentrators (client 16) and the
   active-import register of one meter behind each of them through the DC gateway
   (HLS-GMAC with the meter's keys), compared with the meter model; report RSS again and
   the stop time. Then build and read ``--touch`` meters in-process (as if the head-end had
   read them) and report how resident memory grows per meter read.
3. Fast-forward one day: for every meter of the fleet, compute the previous local day of
   15-minute load profile and the registers at "now" from a fresh model, in ``--workers``
   processes (each rebuilds the same plan); report wall and CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import platform
import random
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, date, datetime, timedelta

from smmc.dlms.apdu import AuthenticationMechanism
from smmc.dlms.client import ClientSettings, DlmsClient, SecurityPolicy
from smmc.dlms.obis import Obis
from smmc.domain.time import local_day_bounds, to_local
from smmc.sim.clock import SimClock
from smmc.sim.concentrator import PUBLIC_CLIENT, gateway_address
from smmc.sim.fleet import Fleet, FleetPlan, default_fleet
from smmc.sim.runner import FleetRunner, serve_concentrators

CLOCK = Obis(0, 0, 1, 0, 0, 255)
ACTIVE_IMPORT = Obis(1, 0, 1, 8, 0, 255)


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def rss_mib() -> float:
    return _status_kib("VmRSS") / 1024


def peak_mib() -> float:
    return _status_kib("VmHWM") / 1024


def make_fleet(args: argparse.Namespace) -> Fleet:
    base = default_fleet().sized(
        args.concentrators, args.meters_per_concentrator, args.point_to_point
    )
    return dataclasses.replace(
        base,
        concentrators=dataclasses.replace(
            base.concentrators, host=args.host, first_port=args.first_port
        ),
        point_to_point=dataclasses.replace(base.point_to_point, first_host=args.p2p_host),
        time=dataclasses.replace(base.time, history_days=args.history_days, start=args.now),
    )


async def check_reads(runner: FleetRunner, samples: int) -> int:
    """Read a few DC clocks and one meter behind each through the gateway."""
    plan = runner.plan
    chosen = random.Random(7).sample(plan.concentrators, min(samples, len(plan.concentrators)))
    per = plan.fleet.concentrators.meters_per_concentrator
    checked = 0
    for dc in chosen:
        if dc.down:
            continue
        settings = ClientSettings(client_sap=PUBLIC_CLIENT, timeout=30.0)
        async with DlmsClient.connect(dc.host, dc.port, settings) as client:
            if not (await client.get(8, CLOCK, 2)).value:
                raise AssertionError(f"{dc.name}: empty clock")
        for index in range(dc.index * per, (dc.index + 1) * per):
            spec = plan.meter(index)
            if spec.unreachable or spec.repeater_failure or spec.wrong_key or spec.anomalies:
                continue
            assert spec.node_address is not None
            encryption_key, authentication_key = spec.keys
            meter = ClientSettings(
                client_sap=48,
                server_logical_address=gateway_address(spec.node_address),
                mechanism=AuthenticationMechanism.HIGH_GMAC,
                encryption_key=encryption_key,
                authentication_key=authentication_key,
                system_title=b"SMMC\x00\x00\x00\x01",
                security=SecurityPolicy(authenticated=True, encrypted=True),
                timeout=60.0,
            )
            async with DlmsClient.connect(dc.host, dc.port, meter) as client:
                value = (await client.get(3, ACTIVE_IMPORT, 2)).value
            expected = runner.meters.model(index).registers(runner.clock.now()).active_import
            if not isinstance(value, int) or not 0 <= expected.total - value < 50:
                raise AssertionError(f"meter {spec.serial}: read {value!r}, model {expected.total}")
            checked += 1
            break
    return checked


def fast_forward_share(
    fleet: Fleet, now: datetime, day: date, start: int, stop: int
) -> tuple[int, int, float]:
    """Rows and meters computed for meters [start, stop), and the CPU seconds it took."""
    cpu = time.process_time()
    plan = fleet.build(now)
    rows = 0
    for index in range(start, stop):
        model = plan.meter_model(index)
        rows += len(model.load_profile_day(day))
        registers = model.registers(now)
        if sum(registers.active_import.tiers) < 0:
            raise AssertionError("negative registers")
    return rows, stop - start, time.process_time() - cpu


def fast_forward(fleet: Fleet, plan: FleetPlan, workers: int) -> tuple[float, float, int, int]:
    now = plan.epoch
    day = to_local(now, fleet.concentrators.time_zone).date() - timedelta(days=1)
    total = len(plan)
    bounds = [total * n // workers for n in range(workers + 1)]
    wall = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        results = list(
            pool.map(
                fast_forward_share,
                [fleet] * workers,
                [now] * workers,
                [day] * workers,
                bounds[:-1],
                bounds[1:],
            )
        )
    elapsed = time.perf_counter() - wall
    rows = sum(r[0] for r in results)
    meters = sum(r[1] for r in results)
    return elapsed, sum(r[2] for r in results), rows, meters


async def serve(args: argparse.Namespace) -> tuple[Fleet, FleetPlan]:
    baseline = rss_mib()
    started = time.perf_counter()
    fleet = make_fleet(args)
    plan = fleet.build(args.now)
    built = time.perf_counter() - started
    clock = SimClock(args.now, 1.0, args.history_days)
    runner = FleetRunner(plan, clock, concentrators=serve_concentrators)
    await runner.start()
    start_s = time.perf_counter() - started
    rss_started = rss_mib()
    print(
        f"fleet: {len(plan.concentrators)} concentrators, {len(plan)} meters "
        f"({len(runner.point_to_point)} point-to-point); open-file limit {runner.open_file_limit}"
    )
    print(
        f"start: {start_s:.1f} s (plan {built:.1f} s); RSS {rss_started:.0f} MiB "
        f"(baseline {baseline:.0f} MiB)"
    )
    try:
        read_started = time.perf_counter()
        checked = await check_reads(runner, args.samples)
        print(
            f"reads: {args.samples} DC clocks and {checked} meters through the gateway in "
            f"{time.perf_counter() - read_started:.1f} s; RSS {rss_mib():.0f} MiB, "
            f"peak {peak_mib():.0f} MiB"
        )
        if args.touch:
            touched = time.perf_counter()
            before = rss_mib()
            indices = random.Random(11).sample(range(len(plan)), min(args.touch, len(plan)))
            for index in indices:
                runner.meters.get(index).device.get(3, ACTIVE_IMPORT, 2)
            grown = rss_mib() - before
            print(
                f"touch: {len(indices)} meters built and read in-process in "
                f"{time.perf_counter() - touched:.1f} s; RSS {rss_mib():.0f} MiB "
                f"(+{grown:.0f} MiB, {grown * 1024 / len(indices):.1f} KiB per meter; "
                f"{runner.meters.cached} devices cached)"
            )
    finally:
        stopping = time.perf_counter()
        await runner.stop()
        print(f"stop: {time.perf_counter() - stopping:.1f} s")
    return fleet, plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concentrators", type=int, default=1000)
    parser.add_argument("--meters-per-concentrator", type=int, default=100)
    parser.add_argument("--point-to-point", type=int, default=0)
    parser.add_argument("--host", default="127.82.0.1", help="host of every concentrator")
    parser.add_argument("--first-port", type=int, default=20000)
    parser.add_argument("--p2p-host", default="127.83.0.1")
    parser.add_argument("--history-days", type=int, default=1)
    parser.add_argument("--samples", type=int, default=5, help="DCs and meters read back")
    parser.add_argument(
        "--touch", type=int, default=20000, help="meters built and read in-process (memory)"
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--skip-fast-forward", action="store_true")
    args = parser.parse_args()
    # Simulated "now" is the latest local midnight, so one day of history is exactly the
    # previous local day (96 rows unless it is a DST day).
    time_zone = default_fleet().concentrators.time_zone
    args.now = local_day_bounds(to_local(datetime.now(UTC), time_zone).date(), time_zone)[0]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    print(
        f"{platform.node()} · Python {sys.version.split()[0]} · {os.cpu_count()} CPUs · "
        f"load {os.getloadavg()[0]:.1f} · nofile {soft}/{hard} · {args.now:%Y-%m-%d %H:%M} UTC"
    )
    fleet, plan = asyncio.run(serve(args))
    if args.skip_fast_forward:
        return
    elapsed, cpu, rows, meters = fast_forward(fleet, plan, args.workers)
    print(
        f"fast-forward one day: {meters} meters, {rows} load-profile rows in {elapsed:.1f} s "
        f"with {args.workers} processes ({cpu:.1f} CPU s, {cpu / meters * 1000:.2f} ms per meter)"
    )


if __name__ == "__main__":
    main()
