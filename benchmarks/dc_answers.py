"""The simulated concentrators' answers to the fleet-day reads, in one process, no sockets.

    python benchmarks/dc_answers.py --meters 10000 [--now 2026-12-03T03:10:00+00:00]

For each DC of the fleet-day's fleet (``fleet_day.make_fleet``: no communication faults,
default drift and anomalies), the management device answers the two range reads the
head-end makes (the collected load profile of the local day before "now", the daily
closure at its end) and the answer is encoded as the GET response, as the server does.
Reported: CPU time per meter-day (fresh meter models, so the metrology is included) and a
SHA-256 of every encoded answer: two trees that give the same digest for the same
``--now`` and ``--meters`` serve the same octets.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fleet_day import make_fleet

from smmc.dlms.apdu import GetResponseNormal, InvokeIdAndPriority
from smmc.dlms.apdu.selective_access import RangeDescriptor
from smmc.dlms.cosem_time import CosemDateTime
from smmc.domain.time import local_day_bounds, to_local
from smmc.sim.clock import SimClock
from smmc.sim.concentrator import (
    COLLECTED_DAILY_OBIS,
    COLLECTED_LOAD_PROFILE_OBIS,
    MANAGEMENT_CLIENT,
    ConcentratorServer,
)
from smmc.sim.fleet import default_fleet
from smmc.sim.meter_device import MeterDevices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--meters", type=int, default=1000)
    parser.add_argument("--per-concentrator", type=int, default=100)
    parser.add_argument("--history-days", type=int, default=2)
    parser.add_argument("--now", type=datetime.fromisoformat, help="default: as fleet_day")
    parser.add_argument("--profile", type=Path, help="write a cProfile here")
    args = parser.parse_args()
    time_zone = default_fleet().concentrators.time_zone
    if args.now is None:
        today = to_local(datetime.now(UTC), time_zone).date()
        args.now = local_day_bounds(today, time_zone)[0] + timedelta(minutes=10)
    args.host, args.first_port = "127.0.0.1", 24000  # nothing listens: no socket is opened
    plan = make_fleet(args).build(args.now)
    clock = SimClock(args.now, 1.0, args.history_days)
    meters = MeterDevices(plan, clock)
    dcs = [ConcentratorServer(plan, spec, clock, meters=meters) for spec in plan.concentrators]
    start, end = local_day_bounds(
        to_local(args.now, time_zone).date() - timedelta(days=1), time_zone
    )
    reads = [
        (COLLECTED_LOAD_PROFILE_OBIS, start + timedelta(seconds=1), end),
        (COLLECTED_DAILY_OBIS, end, end + timedelta(minutes=5)),
    ]
    digest = hashlib.sha256()
    size = 0

    def answer_all() -> None:
        nonlocal size
        for dc in dcs:
            for obis, low, high in reads:
                selection = RangeDescriptor.between(
                    CosemDateTime.from_datetime(low), CosemDateTime.from_datetime(high)
                ).to_access_selection()
                buffer = dc.device.get(7, obis, 2, selection, client_sap=MANAGEMENT_CLIENT)
                response = GetResponseNormal(buffer, InvokeIdAndPriority()).to_bytes()
                digest.update(response)
                size += len(response)

    began = time.process_time()
    if args.profile is None:
        answer_all()
    else:
        cProfile.runctx("answer_all()", globals(), locals(), str(args.profile))
    used = time.process_time() - began
    print(
        f"{args.meters} meters, now {args.now.isoformat()}: {used:.2f} s CPU, "
        f"{used / args.meters * 1000:.3f} ms per meter-day; {size:,} octets, "
        f"sha256 {digest.hexdigest()}"
    )


if __name__ == "__main__":
    main()
