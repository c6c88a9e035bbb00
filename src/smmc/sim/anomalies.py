"""Injected anomalies with their ground truth.

Each meter draws its anomalies once, deterministically from the anomaly seed, its index and
the fleet's rates; the meter model applies them to its values and the labels file lists
them, so the head-end's analytics can be scored against what was really injected.
"""

from __future__ import annotations

import csv
import enum
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from smmc.sim.consumption import mix

__all__ = [
    "LABEL_COLUMNS",
    "Anomaly",
    "AnomalyKind",
    "AnomalyRates",
    "assign_anomalies",
    "write_labels",
]

LABEL_COLUMNS = ("serialnumber", "anomaly", "start_utc", "end_utc", "details")


class AnomalyKind(enum.StrEnum):
    BACKWARD_REGISTER = "backward_register"
    TIER_TOTAL_MISMATCH = "tier_total_mismatch"
    TIERS_AND_TOTAL_ZERO = "tiers_and_total_zero"
    EXPORT_WITHOUT_NET_BILLING = "export_without_net_billing"
    CONSUMPTION_WITH_BREAKER_OPEN = "consumption_with_breaker_open"
    METER_CASE_OPENED = "meter_case_opened"
    TERMINAL_COVER_REMOVED = "terminal_cover_removed"
    CLOCK_DRIFT = "clock_drift_beyond_tolerance"
    REPEATED_OUTAGES = "repeated_outages"


_ORDINAL = {kind: number for number, kind in enumerate(AnomalyKind)}


@dataclass(frozen=True, slots=True)
class AnomalyRates:
    """Share of meters (0..1) that receive each anomaly."""

    backward_register: float = 0.02
    tier_total_mismatch: float = 0.02
    tiers_and_total_zero: float = 0.02
    export_without_net_billing: float = 0.02
    consumption_with_breaker_open: float = 0.02
    meter_case_opened: float = 0.02
    terminal_cover_removed: float = 0.02
    clock_drift_beyond_tolerance: float = 0.02
    repeated_outages: float = 0.02

    def rate(self, kind: AnomalyKind) -> float:
        value: float = getattr(self, kind.value)
        return value


@dataclass(frozen=True, slots=True)
class Anomaly:
    """One injected anomaly of one meter.

    ``end`` is None when it lasts for ever (a backward jump, a drifting clock). ``magnitude``
    is in Wh for register anomalies, ppm for the clock and unused (0) otherwise.
    """

    kind: AnomalyKind
    start: datetime
    end: datetime | None
    magnitude: int = 0
    details: str = ""

    def active(self, at: datetime) -> bool:
        """True while the anomaly is in effect at ``at``."""
        return self.start <= at and (self.end is None or at < self.end)


def _between(rng: random.Random, start: datetime, end: datetime) -> datetime:
    seconds = (end - start).total_seconds()
    return start + timedelta(minutes=int(rng.uniform(0, seconds) // 60))


def _draw(
    kind: AnomalyKind,
    rng: random.Random,
    window: tuple[datetime, datetime],
    clock_tolerance_s: float,
) -> list[Anomaly]:
    start = _between(rng, *window)
    days = timedelta(days=1)
    if kind is AnomalyKind.BACKWARD_REGISTER:
        wh = rng.randrange(5_000, 50_000)
        return [Anomaly(kind, start, None, wh, f"active import drops by up to {wh} Wh")]
    if kind is AnomalyKind.TIER_TOTAL_MISMATCH:
        wh = rng.randrange(1_000, 20_000)
        end = start + days * rng.randint(1, 5)
        return [Anomaly(kind, start, end, wh, f"total exceeds T1..T6 by {wh} Wh")]
    if kind is AnomalyKind.TIERS_AND_TOTAL_ZERO:
        end = start + days * rng.randint(1, 3)
        return [Anomaly(kind, start, end, 0, "T1..T6 and total read 0")]
    if kind is AnomalyKind.EXPORT_WITHOUT_NET_BILLING:
        kwp = rng.randrange(40, 100)
        return [
            Anomaly(
                kind,
                start,
                None,
                kwp,
                f"unauthorised PV, {kwp / 10:.1f} kWp per 9 kWh/day of demand",
            )
        ]
    if kind is AnomalyKind.CONSUMPTION_WITH_BREAKER_OPEN:
        end = start + timedelta(hours=rng.randint(12, 72))
        return [Anomaly(kind, start, end, 0, "breaker open, consumption registered (INTA)")]
    if kind in (AnomalyKind.METER_CASE_OPENED, AnomalyKind.TERMINAL_COVER_REMOVED):
        end = start + timedelta(minutes=rng.randint(5, 240))
        bit = "CAPE" if kind is AnomalyKind.METER_CASE_OPENED else "TC_REM"
        return [Anomaly(kind, start, end, 0, f"{bit} set from the opening on")]
    if kind is AnomalyKind.CLOCK_DRIFT:
        ppm = rng.randrange(200, 600) * rng.choice((-1, 1))
        beyond = window[0] + timedelta(seconds=clock_tolerance_s / (abs(ppm) * 1e-6))
        return [
            Anomaly(kind, beyond, None, ppm, f"drift {ppm} ppm, tolerance {clock_tolerance_s} s")
        ]
    count = rng.randint(3, 6)
    outages = []
    cursor = start
    for number in range(1, count + 1):
        cursor += timedelta(minutes=rng.randint(30, 600))
        length = timedelta(minutes=rng.randint(3, 90))
        outages.append(
            Anomaly(kind, cursor, cursor + length, 0, f"outage {number} of {count} (PUP)")
        )
        cursor += length
    return outages


def assign_anomalies(
    rates: AnomalyRates,
    meter_count: int,
    seed: int,
    window: tuple[datetime, datetime],
    net_billing: Callable[[int], bool],
    clock_tolerance_s: float,
) -> dict[int, tuple[Anomaly, ...]]:
    """Anomalies per meter index (meters without any are absent).

    Starts fall in ``window`` (UTC); a meter with a net-billing contract never receives the
    "export without net billing" anomaly. The clock-drift anomaly starts when a clock set at
    the window's start has drifted beyond ``clock_tolerance_s``.
    """
    if window[1] <= window[0]:
        raise ValueError("anomaly window must end after it starts")
    draws = random.Random(seed)
    kinds = [(kind, rates.rate(kind)) for kind in AnomalyKind if rates.rate(kind) > 0]
    result: dict[int, tuple[Anomaly, ...]] = {}
    for index in range(meter_count):
        found: list[Anomaly] = []
        for kind, rate in kinds:
            if draws.random() >= rate:
                continue
            if kind is AnomalyKind.EXPORT_WITHOUT_NET_BILLING and net_billing(index):
                continue
            found.extend(
                _draw(
                    kind, random.Random(mix(seed, index, _ORDINAL[kind])), window, clock_tolerance_s
                )
            )
        if found:
            result[index] = tuple(found)
    return result


def write_labels(path: Path, labels: Iterable[tuple[str, Anomaly]]) -> int:
    """Write the ground-truth CSV (``LABEL_COLUMNS``) and return the number of rows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(LABEL_COLUMNS)
        for serial, anomaly in labels:
            writer.writerow(
                (
                    serial,
                    anomaly.kind.value,
                    anomaly.start.isoformat(),
                    "" if anomaly.end is None else anomaly.end.isoformat(),
                    anomaly.details,
                )
            )
            count += 1
    return count
