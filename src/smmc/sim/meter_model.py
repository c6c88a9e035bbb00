"""The metrology of one simulated meter: registers, load profile, billing, clock and status.

All values are functions of time computed on demand from the consumption model, the
breaker and outage history, the clock history and the injected anomalies. Registers are
whole Wh/varh, summed slot by slot from a forward-moving checkpoint, so reading a meter
again later costs only the slots in between and a meter keeps O(1) state besides its
(short) event histories.
"""

from __future__ import annotations

import bisect
import dataclasses
import enum
import functools
import itertools
import math
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import numpy.typing as npt

from smmc.domain.time import local_day_bounds, to_local
from smmc.sim.anomalies import Anomaly, AnomalyKind
from smmc.sim.consumption import (
    HOUSEHOLD_TYPES,
    POLYPHASE_FACTOR,
    SLOT_SECONDS,
    ConsumptionModel,
    Measurands,
    offset_seconds,
    unit_interval,
)
from smmc.sim.tariff import CHILEAN_TOU, TIER_COUNT, TouCalendar

__all__ = [
    "BillingRow",
    "ExtendedWord1",
    "ExtendedWord2",
    "LoadProfileRow",
    "LoadProfileStatus",
    "MeasurandRow",
    "MeterModel",
    "MeterModelError",
    "NormalWord1",
    "RegisterSet",
    "Registers",
    "StatusWords",
]

_EPOCH = date(1970, 1, 1)
_KINDS = 4  # active import, active export, reactive import, reactive export
_WIDTH = _KINDS * TIER_COUNT


class MeterModelError(ValueError):
    """A request the simulated meter refuses (bad capture period, naive time, …)."""


class NormalWord1(enum.IntFlag):
    """Meter status normal word 1 (DOMAIN.md §4), the bits the simulator drives."""

    PUP = 1 << 0
    ORD = 1 << 1
    ONSI = 1 << 2


class ExtendedWord1(enum.IntFlag):
    WDOG = 1 << 0
    INTA = 1 << 1
    CAPE = 1 << 3
    DRAM = 1 << 4


class ExtendedWord2(enum.IntFlag):
    TC_REM = 1 << 4


class LoadProfileStatus(enum.IntFlag):
    """Status byte of a load-profile row (the IDIS/DSMR "AMR profile status" layout)."""

    CRITICAL_ERROR = 1 << 0
    CLOCK_INVALID = 1 << 1
    DATA_NOT_VALID = 1 << 2
    DAYLIGHT_SAVING = 1 << 3
    CLOCK_ADJUSTED = 1 << 5
    POWER_DOWN = 1 << 7


@dataclass(frozen=True, slots=True)
class StatusWords:
    normal1: int = 0
    normal2: int = 0
    extended1: int = 0
    extended2: int = 0

    def masked(self, masks: tuple[int, int, int, int]) -> StatusWords:
        return StatusWords(
            self.normal1 & masks[0],
            self.normal2 & masks[1],
            self.extended1 & masks[2],
            self.extended2 & masks[3],
        )


@dataclass(frozen=True, slots=True)
class RegisterSet:
    """One energy's tier registers T1..T6 and total, cumulative Wh (or varh)."""

    tiers: tuple[int, ...]
    total: int


@dataclass(frozen=True, slots=True)
class Registers:
    active_import: RegisterSet
    active_export: RegisterSet
    reactive_import: RegisterSet
    reactive_export: RegisterSet


@dataclass(frozen=True, slots=True)
class LoadProfileRow:
    """Energies of one capture period; ``clock`` is the meter's own local time at capture."""

    captured_utc: datetime
    clock: datetime
    status: LoadProfileStatus
    active_import_wh: int
    active_export_wh: int
    reactive_import_varh: int
    reactive_export_varh: int


@dataclass(frozen=True, slots=True)
class MeasurandRow:
    """Averages of one capture period; ``clock`` and ``status`` are those of the load-profile
    row of the same capture."""

    captured_utc: datetime
    clock: datetime
    status: LoadProfileStatus
    voltages: tuple[float, ...]
    currents: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class BillingRow:
    """Daily closure of meter-local ``day``, captured at the meter's next local midnight."""

    day: date
    captured_utc: datetime
    clock: datetime
    registers: Registers


# A row's status bits as plain ints, and every combination as the flag: a look-up per row
# instead of enum arithmetic.
_POWER_DOWN = int(LoadProfileStatus.POWER_DOWN)
_CLOCK_ADJUSTED = int(LoadProfileStatus.CLOCK_ADJUSTED)
_CLOCK_INVALID = int(LoadProfileStatus.CLOCK_INVALID)
_DAYLIGHT_SAVING = int(LoadProfileStatus.DAYLIGHT_SAVING)
_ROW_STATUSES = tuple(LoadProfileStatus(bits) for bits in range(256))


def _seconds(moment: datetime) -> float:
    if moment.tzinfo is None:
        raise MeterModelError(f"times must be timezone-aware, got {moment.isoformat()}")
    return moment.timestamp()


def _instant(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@functools.lru_cache(maxsize=8192)
def _local_clock(meter_seconds: float, time_zone: str) -> datetime:
    """A meter clock value as local time: the fleet's meters capture at the same few
    boundaries of their own clocks, so each is converted once."""
    return to_local(_instant(meter_seconds), time_zone)


def _overlap(start: float, end: float, periods: list[tuple[float, float]]) -> float:
    total = 0.0
    for low, high in periods:
        if high > start and low < end:
            total += min(end, high) - max(start, low)
    return total


_SLOTS_PER_DAY = 86400 // SLOT_SECONDS
# Day checkpoints kept per meter: re-reading the last days (load profile, billing after
# a register read) never walks back to installation. 3 × 24 int64 ≈ 0.8 kB per meter.
_ANCHORS = 3


def _tier_at(tariff: TouCalendar, time_zone: str, utc_seconds: int) -> int:
    """Tier index (0..5) at a UTC instant read as local time in ``time_zone``."""
    local = utc_seconds + offset_seconds(time_zone, utc_seconds // 3600)
    day = _EPOCH + timedelta(days=local // 86400)
    return tariff.day_profile_on(day).tier_at(local % 86400 // 60) - 1


@functools.cache
def _quarter_aligned(tariff: TouCalendar) -> bool:
    """True when every tier switch falls on a quarter hour."""
    return all(minute % 15 == 0 for day in tariff.day_profiles for minute, _ in day.switches)


@functools.lru_cache(maxsize=1024)
def _tier_table(tariff: TouCalendar, time_zone: str, utc_day: int) -> tuple[int, ...]:
    """Tier index at the middle of each slot of a UTC day, shared by all exact clocks."""
    first = utc_day * 86400 + SLOT_SECONDS // 2
    return tuple(
        _tier_at(tariff, time_zone, first + n * SLOT_SECONDS) for n in range(_SLOTS_PER_DAY)
    )


@functools.lru_cache(maxsize=1024)
def _tier_matrix(tariff: TouCalendar, time_zone: str, utc_day: int) -> npt.NDArray[np.int64]:
    """``_tier_table`` one-hot: row n has a 1 in the column of slot n's tier index."""
    matrix = np.eye(TIER_COUNT, dtype=np.int64)[list(_tier_table(tariff, time_zone, utc_day))]
    matrix.flags.writeable = False
    return matrix


# Alarm bits latched by an anomaly's start until the alarms are cleared.
_LATCHED_BITS: dict[AnomalyKind, ExtendedWord1 | ExtendedWord2] = {
    AnomalyKind.CONSUMPTION_WITH_BREAKER_OPEN: ExtendedWord1.INTA,
    AnomalyKind.METER_CASE_OPENED: ExtendedWord1.CAPE,
    AnomalyKind.TERMINAL_COVER_REMOVED: ExtendedWord2.TC_REM,
}


def _inside(moment: float, periods: list[tuple[float, float]]) -> bool:
    return any(low <= moment < high for low, high in periods)


class MeterModel:
    """One meter; every public method takes and returns aware datetimes (true UTC time).

    ``clock_set_at`` is when the meter clock was last exact; ``drift_ppm`` is its rate
    error (positive runs fast; ``ppm_from_seconds_per_day`` converts). Registers start
    at seeded values at ``installed_at``.
    """

    __slots__ = (
        "_aligned",
        "_anchors",
        "_backward",
        "_breaker",
        "_ck_slot",
        "_ck_values",
        "_clears",
        "_clock",
        "_consumption",
        "_firmware",
        "_installed",
        "_intact_breaker",
        "_off",
        "_outages",
        "_periods",
        "_rogue_pv",
        "alarm_masks",
        "anomalies",
        "clock_tolerance_s",
        "seed",
        "serial",
        "tariff",
        "time_zone",
    )

    def __init__(
        self,
        serial: str,
        seed: int,
        household: str = "family_house",
        *,
        installed_at: datetime,
        polyphase: bool = False,
        pv_kwp: float = 0.0,
        time_zone: str = "America/Santiago",
        drift_ppm: float = 0.0,
        clock_set_at: datetime | None = None,
        clock_tolerance_s: float = 60.0,
        anomalies: tuple[Anomaly, ...] = (),
        tariff: TouCalendar = CHILEAN_TOU,
        capture_minutes: int = 15,
        firmware: str = "1.0.0",
    ) -> None:
        if household not in HOUSEHOLD_TYPES:
            raise MeterModelError(f"unknown household type {household!r}")
        self.serial = serial
        self.seed = seed
        self.time_zone = time_zone
        self.tariff = tariff
        self._aligned = _quarter_aligned(tariff)
        self.clock_tolerance_s = clock_tolerance_s
        self.anomalies = anomalies
        self.alarm_masks: tuple[int, int, int, int] = (0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF)
        self._installed = _seconds(installed_at)
        self._consumption = ConsumptionModel(
            seed, HOUSEHOLD_TYPES[household], polyphase, pv_kwp, time_zone
        )
        self._rogue_pv: list[tuple[float, ConsumptionModel]] = []
        self._breaker: list[tuple[float, bool]] = []
        self._off: list[tuple[float, float]] = []
        self._outages: list[tuple[float, float]] = []
        self._intact_breaker: list[tuple[float, float]] = []
        self._clears: list[float] = []
        self._periods: list[tuple[float, int]] = []
        self._firmware: list[tuple[float, str]] = [(-math.inf, firmware)]
        self.set_capture_period(capture_minutes, installed_at)
        drift = next(
            (a.magnitude for a in anomalies if a.kind is AnomalyKind.CLOCK_DRIFT), drift_ppm
        )
        set_at = _seconds(clock_set_at or installed_at)
        self._clock: list[tuple[float, float, float]] = [(set_at, set_at, drift * 1e-6)]
        self._backward: dict[Anomaly, tuple[int, int]] = {}
        self._reset_checkpoint()
        for anomaly in anomalies:
            self._apply(anomaly)

    # --- construction ---------------------------------------------------------------------

    def _apply(self, anomaly: Anomaly) -> None:
        start = _seconds(anomaly.start)
        end = math.inf if anomaly.end is None else _seconds(anomaly.end)
        if anomaly.kind is AnomalyKind.REPEATED_OUTAGES:
            self.power_outage(anomaly.start, anomaly.end or anomaly.start)
        elif anomaly.kind is AnomalyKind.CONSUMPTION_WITH_BREAKER_OPEN:
            self.disconnect(anomaly.start)
            if anomaly.end is not None:
                self.reconnect(anomaly.end)
            self._intact_breaker.append((start, end))
        elif anomaly.kind is AnomalyKind.EXPORT_WITHOUT_NET_BILLING:
            c = self._consumption
            size = c.household.daily_kwh * c.scale * (POLYPHASE_FACTOR if c.polyphase else 1) / 9
            pv = dataclasses.replace(c, pv_kwp=anomaly.magnitude / 10 * size)
            self._rogue_pv.append((start, pv))

    @staticmethod
    def ppm_from_seconds_per_day(seconds: float) -> float:
        """Clock drift in ppm for a drift given in seconds per day."""
        return seconds / 0.0864

    # --- events ---------------------------------------------------------------------------

    def _reset_checkpoint(self) -> None:
        """Forget the checkpoints; the next read starts again from installation."""
        self._ck_slot = -1
        self._ck_values: list[int] = []
        self._anchors: dict[int, array[int]] = {}

    def _touch(self, at: float) -> None:
        """An event at ``at`` changes every slot from its own on: drop what summed them."""
        slot = math.floor(at / SLOT_SECONDS)
        if self._ck_values and slot < self._ck_slot:
            self._ck_slot, self._ck_values = -1, []
        self._anchors = {s: v for s, v in self._anchors.items() if s <= slot}
        self._backward.clear()

    def _rewind(self, slot: int) -> None:
        """Move the checkpoint back to the latest day anchor not after ``slot``."""
        usable = [s for s in self._anchors if s <= slot]
        if usable:
            self._ck_slot = max(usable)
            self._ck_values = list(self._anchors[self._ck_slot])
        else:
            self._ck_slot = math.floor(self._installed / SLOT_SECONDS)
            self._ck_values = self._initial_values()

    def disconnect(self, at: datetime) -> None:
        """Open the breaker at ``at``: import and export stop from then on."""
        self._set_breaker(at, False)

    def reconnect(self, at: datetime) -> None:
        """Close the breaker at ``at``."""
        self._set_breaker(at, True)

    def _set_breaker(self, at: datetime, closed: bool) -> None:
        moment = _seconds(at)
        bisect.insort(self._breaker, (moment, closed))
        self._off = self._off_periods()
        self._touch(moment)

    def breaker_closed(self, at: datetime) -> bool:
        moment = _seconds(at)
        state = True
        for when, closed in self._breaker:
            if when > moment:
                break
            state = closed
        return state

    def power_outage(self, start: datetime, end: datetime) -> None:
        """Supply is lost during ``[start, end)``: no energy, no voltage, PUP raised."""
        low, high = _seconds(start), _seconds(end)
        if high < low:
            raise MeterModelError("an outage must end after it starts")
        bisect.insort(self._outages, (low, high))
        self._touch(low)

    def clear_alarms(self, at: datetime) -> None:
        """Reset the latched alarm bits (PUP, INTA, CAPE, TC_REM) at ``at``."""
        bisect.insort(self._clears, _seconds(at))

    def activate_firmware(self, version: str, at: datetime) -> None:
        """Image activation: the firmware version reads ``version`` from ``at`` on."""
        bisect.insort(self._firmware, (_seconds(at), version))

    def firmware_version(self, at: datetime) -> str:
        moment = _seconds(at)
        version = self._firmware[0][1]
        for when, candidate in self._firmware:
            if when > moment:
                break
            version = candidate
        return version

    def set_capture_period(self, minutes: int, at: datetime) -> None:
        """Load-profile capture period from ``at`` on (a divisor of a day, in minutes)."""
        if minutes <= 0 or 1440 % minutes:
            raise MeterModelError(f"capture period must divide 1440 minutes, got {minutes}")
        bisect.insort(self._periods, (_seconds(at), minutes))

    def capture_minutes(self, at: datetime) -> int:
        return self._period_at(self.meter_seconds(_seconds(at)))

    def _period_at(self, meter_seconds: float) -> int:
        minutes = self._periods[0][1]
        for when, candidate in self._periods:
            if self.meter_seconds(when) > meter_seconds:
                break
            minutes = candidate
        return minutes

    # --- clock ----------------------------------------------------------------------------

    def set_clock(self, at: datetime, value: datetime) -> None:
        """At true instant ``at`` the meter clock is set to ``value`` (a MeterSync)."""
        moment = _seconds(at)
        rate = self._clock[-1][2]
        self._clock = [s for s in self._clock if s[0] < moment]
        self._clock.append((moment, _seconds(value), rate))
        self._touch(moment)

    def meter_seconds(self, true_seconds: float) -> float:
        segment = self._clock[0]
        for candidate in self._clock:
            if candidate[0] > true_seconds:
                break
            segment = candidate
        origin, value, rate = segment
        return value + (true_seconds - origin) * (1 + rate)

    def true_seconds(self, meter_seconds: float) -> float | None:
        """True instant at which the meter clock shows ``meter_seconds``; None if skipped.

        After a clock set backwards the later occurrence wins.
        """
        for index in range(len(self._clock) - 1, -1, -1):
            origin, value, rate = self._clock[index]
            moment = origin + (meter_seconds - value) / (1 + rate)
            following = self._clock[index + 1][0] if index + 1 < len(self._clock) else math.inf
            if (moment >= origin or index == 0) and moment < following:
                return moment
        return None

    def _reached(self, meter_seconds: float) -> float | None:
        """When the meter clock first shows ``meter_seconds`` or later: the true instant,
        or the clock set that jumped over it."""
        moment = self.true_seconds(meter_seconds)
        if moment is not None:
            return moment
        for index in range(1, len(self._clock)):
            origin, value, _ = self._clock[index]
            before_origin, before_value, before_rate = self._clock[index - 1]
            shown = before_value + (origin - before_origin) * (1 + before_rate)
            if shown <= meter_seconds < value:
                return origin
        return None

    def meter_time(self, at: datetime) -> datetime:
        """What the meter clock shows at true ``at`` (aware, UTC)."""
        return _instant(self.meter_seconds(_seconds(at)))

    def clock_error(self, at: datetime) -> timedelta:
        """Meter clock minus true time."""
        moment = _seconds(at)
        return timedelta(seconds=self.meter_seconds(moment) - moment)

    # --- energy ---------------------------------------------------------------------------

    def _initial_values(self) -> list[int]:
        values = [0] * _WIDTH
        for tier in range(TIER_COUNT):
            base = int(200_000 + 2_000_000 * unit_interval(self.seed, 20, tier))
            values[tier] = base
            values[2 * TIER_COUNT + tier] = base // 3
            if self._consumption.pv_kwp > 0:
                values[TIER_COUNT + tier] = base // 4
                values[3 * TIER_COUNT + tier] = base // 80
        return values

    def _slot_tier(self, slot: int) -> int:
        """Tier index (0..5) by the meter's own clock at the middle of the slot."""
        middle = slot * SLOT_SECONDS + SLOT_SECONDS // 2
        meter = self.meter_seconds(middle)
        if self._aligned and abs(meter - middle) < SLOT_SECONDS // 2:
            # Still inside the same quarter hour, so the same tier as an exact clock.
            return _tier_table(self.tariff, self.time_zone, slot // _SLOTS_PER_DAY)[
                slot % _SLOTS_PER_DAY
            ]
        return _tier_at(self.tariff, self.time_zone, int(meter))

    def _slot_values(
        self, slot: int, until: float | None = None
    ) -> tuple[int, tuple[int, int, int, int]]:
        """Tier index and (import, export, reactive import, reactive export) of the slot.

        Energy flows evenly over the seconds of the slot with supply and a closed breaker;
        ``until`` cuts the slot short (a read in the middle of it).
        """
        values = self._consumption.slot_values(slot)
        start = slot * SLOT_SECONDS
        for since, pv in self._rogue_pv:
            if start >= since:
                values = pv.slot_values(slot)
        if until is not None or self._breaker or self._outages:
            end = start + SLOT_SECONDS if until is None else until
            share = self._available(start, end) / SLOT_SECONDS
            if share < 1.0:
                a, b, c, d = (math.floor(value * share) for value in values)
                values = (a, b, c, d)
        return self._slot_tier(slot), values

    def _off_periods(self) -> list[tuple[float, float]]:
        periods: list[tuple[float, float]] = []
        opened: float | None = None
        for when, closed in self._breaker:
            if not closed and opened is None:
                opened = when
            elif closed and opened is not None:
                periods.append((opened, when))
                opened = None
        if opened is not None:
            periods.append((opened, math.inf))
        return periods

    def _available(self, start: float, end: float) -> float:
        """Seconds of ``[start, end)`` with supply and the breaker closed (or bypassed)."""
        if not self._breaker and not self._outages:
            return end - start
        off = self._off
        cuts = {start, end}
        for low, high in (*self._outages, *off, *self._intact_breaker):
            cuts.update(edge for edge in (low, high) if start < edge < end)
        edges = sorted(cuts)
        lost = 0.0
        for low, high in itertools.pairwise(edges):
            middle = (low + high) / 2
            if _inside(middle, self._outages) or (
                _inside(middle, off) and not _inside(middle, self._intact_breaker)
            ):
                lost += high - low
        return end - start - lost

    def _raw(self, at: float) -> list[int]:
        """True cumulative values at ``at`` (24 ints: 4 energies × 6 tiers)."""
        if at < self._installed:
            raise MeterModelError(f"{_instant(at).isoformat()} is before the meter was installed")
        slot = math.floor(at / SLOT_SECONDS)
        if slot < self._ck_slot or not self._ck_values:
            self._rewind(slot)
        self._advance(slot)
        result = list(self._ck_values)
        if at > slot * SLOT_SECONDS:
            tier, energies = self._slot_values(slot, at)
            for kind in range(_KINDS):
                result[kind * TIER_COUNT + tier] += energies[kind]
        return result

    def _simple(self) -> bool:
        """No breaker or outage history: every slot holds a consumption model's energy as it
        is, so a run of slots can be computed as one array (``_slot_block``)."""
        return not (self._breaker or self._outages)

    def _slot_block(self, first: int, count: int) -> npt.NDArray[np.int64]:
        """The energies of ``count`` slots from ``first`` as ``_slot_values`` gives them
        with ``_simple`` history: the consumption model's, then from its start on each
        rogue PV's (the last one listed wins, as there)."""
        block = self._consumption.slot_values_block(first, count)
        for since, pv in self._rogue_pv:
            begin = math.ceil(since / SLOT_SECONDS)  # the first slot starting at or after
            while (begin - 1) * SLOT_SECONDS >= since:
                begin -= 1
            while begin * SLOT_SECONDS < since:
                begin += 1
            begin = max(begin, first)
            if begin < first + count:
                block[begin - first :] = pv.slot_values_block(begin, first + count - begin)
        return block

    def _block_tiers(self, start: int, stop: int) -> npt.NDArray[np.int64] | None:
        """Tiers of slots ``[start, stop)`` (within one UTC day, one-hot rows) from the
        shared table, when every slot's tier is the exact clock's (what ``_slot_tier`` checks slot
        by slot); None otherwise. Inside one clock segment the clock error is linear in
        time, so checking the first and last slot middles covers the ones between."""
        if not self._aligned:
            return None
        low = start * SLOT_SECONDS + SLOT_SECONDS // 2
        high = (stop - 1) * SLOT_SECONDS + SLOT_SECONDS // 2
        if any(low < origin <= high for origin, _, _ in self._clock):
            return None
        if any(abs(self.meter_seconds(m) - m) >= SLOT_SECONDS // 2 for m in (low, high)):
            return None
        first = start % _SLOTS_PER_DAY
        return _tier_matrix(self.tariff, self.time_zone, start // _SLOTS_PER_DAY)[
            first : first + stop - start
        ]

    def _advance(self, slot: int) -> None:
        """Move the checkpoint forward to ``slot``, keeping an anchor at each UTC midnight;
        a day's run of slots is summed as arrays when ``_simple`` and the tiers allow.

        A run stops at the first slot whose middle is at or after a clock set (the clock
        set at installation, too): ``_block_tiers`` takes a run without a set inside."""
        values = self._ck_values
        while self._ck_slot < slot:
            stop = min(slot, (self._ck_slot // _SLOTS_PER_DAY + 1) * _SLOTS_PER_DAY)
            for origin, _, _ in self._clock:
                cut = math.ceil((origin - SLOT_SECONDS // 2) / SLOT_SECONDS)
                if self._ck_slot < cut < stop:
                    stop = cut
            tiers = self._block_tiers(self._ck_slot, stop) if self._simple() else None
            if tiers is not None:
                energies = self._slot_block(self._ck_slot, stop - self._ck_slot)
                # (kind, tier) sums in the order of ``values``: kind-major, as in _raw.
                sums: list[int] = (energies.T @ tiers).ravel().tolist()
                values[:] = [a + b for a, b in zip(values, sums, strict=True)]
                self._ck_slot = stop
            else:
                while self._ck_slot < stop:
                    tier, slot_energies = self._slot_values(self._ck_slot)
                    for kind in range(_KINDS):
                        values[kind * TIER_COUNT + tier] += slot_energies[kind]
                    self._ck_slot += 1
            if self._ck_slot % _SLOTS_PER_DAY == 0:
                self._anchor()

    def _anchor(self) -> None:
        """Keep the checkpoint of a UTC midnight, so re-reading recent days is cheap."""
        self._anchors[self._ck_slot] = array("q", self._ck_values)
        if len(self._anchors) > _ANCHORS:
            del self._anchors[min(self._anchors)]

    def registers(self, at: datetime) -> Registers:
        """Register values the meter shows at ``at``, anomalies included."""
        moment = _seconds(at)
        raw = self._raw(moment)
        sets = []
        for kind in range(_KINDS):
            tiers = raw[kind * TIER_COUNT : (kind + 1) * TIER_COUNT]
            sets.append(RegisterSet(tuple(tiers), sum(tiers)))
        active = self._active_import(at, sets[0])
        return Registers(active, sets[1], sets[2], sets[3])

    def _active_import(self, at: datetime, true: RegisterSet) -> RegisterSet:
        tiers, total = list(true.tiers), true.total
        for anomaly in self.anomalies:
            if anomaly.kind is AnomalyKind.BACKWARD_REGISTER and anomaly.start <= at:
                tier, drop = self._backward_drop(anomaly)
                tiers[tier] -= drop
                total -= drop
        for anomaly in self.anomalies:
            if anomaly.kind is AnomalyKind.TIER_TOTAL_MISMATCH and anomaly.active(at):
                total += anomaly.magnitude
            if anomaly.kind is AnomalyKind.TIERS_AND_TOTAL_ZERO and anomaly.active(at):
                return RegisterSet((0,) * TIER_COUNT, 0)
        return RegisterSet(tuple(tiers), total)

    def _backward_drop(self, anomaly: Anomaly) -> tuple[int, int]:
        if anomaly not in self._backward:
            raw = self._raw(_seconds(anomaly.start))[:TIER_COUNT]
            tier = max(range(TIER_COUNT), key=raw.__getitem__)
            self._backward[anomaly] = (tier, min(anomaly.magnitude, raw[tier]))
        return self._backward[anomaly]

    # --- profiles -------------------------------------------------------------------------

    def _captures(self, start: datetime, end: datetime) -> list[tuple[float, float, float]]:
        """(meter seconds, true seconds, true seconds of previous capture) in meter range."""
        low, high = _seconds(start), _seconds(end)
        if len(self._clock) == 1 and len(self._periods) == 1:
            return self._steady_captures(low, high)
        return self._stepped_captures(low, high)

    def _stepped_captures(self, low: float, high: float) -> list[tuple[float, float, float]]:
        """``_captures`` boundary by boundary, through clock sets and period changes."""
        result: list[tuple[float, float, float]] = []
        minutes = self._period_at(low)
        cursor = float((math.floor(low / (minutes * 60)) + 1) * minutes * 60)
        reached: dict[float, float | None] = {}  # a boundary ends one capture, starts the next
        while cursor <= high:
            # A boundary skipped by a clock set forward is captured at the set; the
            # following skipped ones would be empty and are dropped.
            true_end = reached[cursor] = self._reached(cursor)
            previous = cursor - minutes * 60
            true_start = reached[previous] if previous in reached else self._reached(previous)
            if (
                true_end is not None
                and true_start is not None
                and self._installed <= true_start < true_end
            ):
                result.append((cursor, true_end, true_start))
            minutes = self._period_at(cursor)
            cursor = float((math.floor(cursor / (minutes * 60)) + 1) * minutes * 60)
        return result

    def _steady_captures(self, low: float, high: float) -> list[tuple[float, float, float]]:
        """``_captures`` with one clock segment and one capture period (most meters): every
        boundary is reached, at ``origin + (meter - value) / (1 + rate)`` as ``true_seconds``
        computes it, here for all the boundaries as one array (the same IEEE operations)."""
        step = self._periods[0][1] * 60
        first = math.floor(low / step) + 1
        last = math.floor(high / step)
        while last * step > high:
            last -= 1
        while (last + 1) * step <= high:
            last += 1
        if last < first:
            return []
        origin, value, rate = self._clock[0]
        boundaries = (np.arange(first - 1, last + 1, dtype=np.int64) * step).astype(np.float64)
        reached = (origin + (boundaries - value) / (1 + rate)).tolist()
        installed = self._installed
        return [
            (meter, true_end, true_start)
            for meter, true_end, true_start in zip(
                boundaries[1:].tolist(), reached[1:], reached[:-1], strict=True
            )
            if installed <= true_start < true_end
        ]

    def _capture_deltas(self, captures: list[tuple[float, float, float]]) -> list[list[int]]:
        """Per capture, each energy's growth (all tiers) from its previous capture to it.

        The general way reads the registers at both instants. With ``_simple`` history the
        slots of the whole span are computed as one array and the growth is a difference
        of running sums plus the two partial slots, cut as ``_slot_values`` cuts them: the
        same integers, without summing slots three times per row.
        """
        if not captures or not self._simple():
            deltas = []
            for _, true_end, true_start in captures:
                before, after = self._raw(true_start), self._raw(true_end)
                deltas.append(
                    [
                        sum(after[k * TIER_COUNT : (k + 1) * TIER_COUNT])
                        - sum(before[k * TIER_COUNT : (k + 1) * TIER_COUNT])
                        for k in range(_KINDS)
                    ]
                )
            return deltas
        ends = np.array([c[1] for c in captures])
        starts = np.array([c[2] for c in captures])
        first = math.floor(starts.min() / SLOT_SECONDS)
        last = math.floor(ends.max() / SLOT_SECONDS)
        block = self._slot_block(first, last - first + 1)
        running = np.zeros((len(block) + 1, _KINDS), dtype=np.int64)
        np.cumsum(block, axis=0, out=running[1:])

        def level(at: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
            """Running sums up to each instant: whole slots, then ``floor(value × share)``
            of the slot it falls in (nothing of it when it falls on the slot's start)."""
            slot = np.floor(at / SLOT_SECONDS).astype(np.int64)
            begin = slot * SLOT_SECONDS
            share = (at - begin) / SLOT_SECONDS
            part = np.floor(block[slot - first] * share[:, None]).astype(np.int64)
            part[at <= begin] = 0
            levels: npt.NDArray[np.int64] = running[slot - first] + part
            return levels

        growth: list[list[int]] = (level(ends) - level(starts)).tolist()
        return growth

    def _meter_local(self, meter_seconds: float) -> datetime:
        return _local_clock(meter_seconds, self.time_zone)

    def _row_status(self, low: float, high: float, clock: datetime) -> LoadProfileStatus:
        status = 0
        if self._outages and _overlap(low, high, self._outages) > 0:
            status = _POWER_DOWN
        if len(self._clock) > 1 and any(low < origin <= high for origin, _, _ in self._clock[1:]):
            status |= _CLOCK_ADJUSTED
        if abs(self.meter_seconds(high) - high) > self.clock_tolerance_s:
            status |= _CLOCK_INVALID
        if clock.dst():
            status |= _DAYLIGHT_SAVING
        return _ROW_STATUSES[status]

    def _row_statuses(
        self, captures: list[tuple[float, float, float]], clocks: list[datetime]
    ) -> list[LoadProfileStatus]:
        """``_row_status`` of each capture. A clock never set has no adjustment to find and
        no outage means no power-down: the invalid-clock test then runs on all the rows as
        one array (``meter_seconds``' IEEE operations)."""
        if len(self._clock) > 1 or self._outages:
            return [
                self._row_status(low, high, clock)
                for (_, high, low), clock in zip(captures, clocks, strict=True)
            ]
        origin, value, rate = self._clock[0]
        ends = np.array([high for _, high, _ in captures], dtype=np.float64)
        error = value + (ends - origin) * (1 + rate) - ends
        invalid: list[bool] = (np.abs(error) > self.clock_tolerance_s).tolist()
        return [
            _ROW_STATUSES[(_CLOCK_INVALID if bad else 0) | (_DAYLIGHT_SAVING if clock.dst() else 0)]
            for bad, clock in zip(invalid, clocks, strict=True)
        ]

    def _captured(
        self, start: datetime, end: datetime
    ) -> Iterator[tuple[tuple[float, float, float], datetime, LoadProfileStatus, list[int]]]:
        """Each capture in ``(start, end]`` of the meter clock with its local clock, its
        row status and the registers' growth over it."""
        captures = self._captures(start, end)
        clocks = [self._meter_local(meter) for meter, _, _ in captures]
        return zip(
            captures,
            clocks,
            self._row_statuses(captures, clocks),
            self._capture_deltas(captures),
            strict=True,
        )

    def load_profile(self, start: datetime, end: datetime) -> list[LoadProfileRow]:
        """Rows whose capture time on the meter clock lies in ``(start, end]``."""
        return [
            LoadProfileRow(_instant(true_end), clock, status, *growth)
            for (_, true_end, _), clock, status, growth in self._captured(start, end)
        ]

    def load_profile_day(self, day: date) -> list[LoadProfileRow]:
        """The rows of one local day of the meter's own clock (92/96/100 at 15 min)."""
        start, end = local_day_bounds(day, self.time_zone)
        return self.load_profile(start, end)

    def measurands(self, start: datetime, end: datetime) -> list[MeasurandRow]:
        """Average voltage and current per capture period, captured like the load profile."""
        rows = []
        for (_, true_end, true_start), clock, status, deltas in self._captured(start, end):
            energy = deltas[0] + deltas[1]
            length = true_end - true_start
            power = energy * 3600.0 / length
            supplied = 1.0 - _overlap(true_start, true_end, self._outages) / length
            slot = math.floor((true_start + true_end) / 2 / SLOT_SECONDS)
            values: Measurands = self._consumption.measurands(slot, power, supplied)
            rows.append(
                MeasurandRow(_instant(true_end), clock, status, values.voltages, values.currents)
            )
        return rows

    def billing_capture(self, day: date) -> tuple[datetime, datetime] | None:
        """When the daily closure of ``day`` is captured: the true instant (UTC) and the
        meter's clock then, without its registers (the costly part of ``billing_row``)."""
        midnight = local_day_bounds(day + timedelta(days=1), self.time_zone)[0]
        true = self._reached(midnight.timestamp())
        if true is None:
            return None
        clock = self._meter_local(max(midnight.timestamp(), self.meter_seconds(true)))
        return _instant(true), clock

    def billing_row(self, day: date) -> BillingRow | None:
        """Daily closure of ``day``: registers at the meter clock's next local midnight.

        A clock set forward over that midnight captures at the set (the clock then shows
        the later time); None only if the clock history never reaches that midnight.
        """
        capture = self.billing_capture(day)
        if capture is None:
            return None
        captured, clock = capture
        return BillingRow(day, captured, clock, self.registers(captured))

    # --- status ---------------------------------------------------------------------------

    def _latched(self, event: float, moment: float) -> bool:
        if event > moment:
            return False
        index = bisect.bisect_left(self._clears, event)
        return index == len(self._clears) or self._clears[index] > moment

    def status_words(self, at: datetime) -> StatusWords:
        """Status words at ``at`` (DOMAIN.md §4 bit positions)."""
        moment = _seconds(at)
        normal1 = extended1 = extended2 = 0
        if any(self._latched(low, moment) for low, _ in self._outages):
            normal1 |= NormalWord1.PUP
        if abs(self.meter_seconds(moment) - moment) > self.clock_tolerance_s:
            normal1 |= NormalWord1.ORD
        for anomaly in self.anomalies:
            latch = _LATCHED_BITS.get(anomaly.kind)
            if latch is not None and self._latched(_seconds(anomaly.start), moment):
                if isinstance(latch, ExtendedWord1):
                    extended1 |= latch
                else:
                    extended2 |= latch
        active = self.registers(at).active_import
        if sum(active.tiers) != active.total:
            extended1 |= ExtendedWord1.DRAM
        return StatusWords(int(normal1), 0, int(extended1), int(extended2))

    def alarm_register(self, at: datetime) -> StatusWords:
        """Status words filtered by ``alarm_masks`` (a set bit in a mask enables the alarm)."""
        return self.status_words(at).masked(self.alarm_masks)
