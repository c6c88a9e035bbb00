"""Consumption, PV export and measurands of one simulated service point.

Every value is a pure function of the meter's seed and a 15-minute slot (UTC seconds since
the epoch divided by 900), so any interval of any day can be computed on demand: a fleet of
100,000 meters keeps no history in memory. Energies are whole Wh (varh) per slot; the meter
model sums them into registers, which is why they are integers.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import numpy.typing as npt

from smmc.domain.calendar import WorkingDayCalendar
from smmc.domain.time import utc_offset_minutes

__all__ = [
    "HOUSEHOLD_TYPES",
    "POLYPHASE_FACTOR",
    "SLOT_SECONDS",
    "ConsumptionModel",
    "HouseholdType",
    "Measurands",
    "SlotEnergy",
    "mix",
    "offset_seconds",
    "unit_interval",
]

SLOT_SECONDS = 900
_SLOTS_PER_DAY = 86400 // SLOT_SECONDS
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MASK = (1 << 64) - 1


def mix(*values: int) -> int:
    """64-bit hash of integers (splitmix64 finaliser): stable across processes and runs."""
    state = 0x9E3779B97F4A7C15
    for value in values:
        state = (state ^ (value & _MASK)) * 0xBF58476D1CE4E5B9 & _MASK
        state ^= state >> 31
        state = (state + 0x9E3779B97F4A7C15) * 0x94D049BB133111EB & _MASK
        state ^= state >> 29
    return state


def unit_interval(*values: int) -> float:
    """Deterministic uniform number in [0, 1) from integers."""
    return (mix(*values) >> 11) / float(1 << 53)


_U64 = np.uint64


def unit_intervals(prefix: tuple[int, ...], last: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    """``unit_interval(*prefix, n)`` for every ``n`` of ``last`` (non-negative), bit for bit:
    the prefix is hashed once (``mix`` folds its values in order), the last round runs on
    uint64 arrays, whose products wrap like ``& _MASK``."""
    state = _U64(mix(*prefix))
    mixed = (state ^ last.astype(_U64)) * _U64(0xBF58476D1CE4E5B9)
    mixed ^= mixed >> _U64(31)
    mixed = (mixed + _U64(0x9E3779B97F4A7C15)) * _U64(0x94D049BB133111EB)
    mixed ^= mixed >> _U64(29)
    return (mixed >> _U64(11)).astype(np.float64) / float(1 << 53)


@dataclass(frozen=True, slots=True, eq=False)
class HouseholdType:
    """A kind of customer: typical daily energy, hourly shape and seasonal sensitivity.

    ``weekday`` and ``weekend`` are 24 relative hourly weights (normalised on use);
    ``weekend_level`` scales the daily energy on weekends and holidays.
    ``winter_evening`` multiplies 18:00-23:00 from June to August (electric heating);
    ``summer_afternoon`` multiplies 13:00-18:00 from December to February (cooling).
    """

    name: str
    daily_kwh: float
    weekday: tuple[float, ...]
    weekend: tuple[float, ...]
    winter_evening: float
    summer_afternoon: float
    power_factor: float
    weekend_level: float


@functools.cache
def _normalised(weights: tuple[float, ...]) -> tuple[float, ...]:
    total = sum(weights)
    return tuple(weight / total for weight in weights)


HOUSEHOLD_TYPES: dict[str, HouseholdType] = {
    household.name: household
    for household in (
        HouseholdType(
            "small_apartment",
            5.0,
            (3, 2, 2, 2, 2, 2, 4, 7, 6, 3, 3, 3, 4, 4, 3, 3, 4, 6, 9, 11, 11, 9, 7, 5),
            (4, 3, 2, 2, 2, 2, 2, 3, 5, 7, 7, 6, 6, 6, 5, 5, 5, 6, 8, 10, 10, 9, 7, 5),
            1.5,
            1.2,
            0.95,
            1.1,
        ),
        HouseholdType(
            "family_house",
            9.0,
            (3, 2, 2, 2, 2, 3, 5, 8, 7, 4, 4, 4, 5, 5, 4, 4, 5, 7, 10, 12, 12, 10, 7, 5),
            (4, 3, 3, 2, 2, 2, 3, 4, 6, 8, 8, 8, 8, 7, 6, 6, 6, 7, 9, 11, 11, 10, 8, 5),
            1.6,
            1.3,
            0.93,
            1.15,
        ),
        HouseholdType(
            "commercial",
            30.0,
            (2, 2, 2, 2, 2, 2, 3, 6, 10, 12, 12, 12, 11, 12, 12, 12, 11, 9, 6, 4, 3, 2, 2, 2),
            (2, 2, 2, 2, 2, 2, 2, 3, 5, 7, 8, 8, 8, 7, 6, 5, 4, 3, 3, 2, 2, 2, 2, 2),
            1.1,
            1.5,
            0.88,
            0.45,
        ),
    )
}

# Southern hemisphere: consumption is highest in the June-August winter.
_MONTH_LEVEL = (0.9, 0.9, 0.95, 1.05, 1.15, 1.3, 1.3, 1.25, 1.1, 1.0, 0.95, 0.9)
# Santiago lies at about 70.65° W: solar noon is near 16:43 UTC all year.
_SOLAR_NOON_UTC_HOURS = 16.72
POLYPHASE_FACTOR = 2.4
_NOMINAL_VOLTAGE = 220.0


@dataclass(frozen=True, slots=True)
class SlotEnergy:
    """Energy of one 15-minute slot, before the breaker and outages gate it."""

    import_wh: int
    export_wh: int
    reactive_import_varh: int
    reactive_export_varh: int


@dataclass(frozen=True, slots=True)
class Measurands:
    """Average voltage (V) and current (A) per phase over one interval."""

    voltages: tuple[float, ...]
    currents: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class _LocalDay:
    month: int
    day_of_year: int
    rest_day: bool


@functools.cache
def _holidays() -> WorkingDayCalendar:
    return WorkingDayCalendar()


@functools.lru_cache(maxsize=8192)
def local_day(day_number: int) -> _LocalDay:
    day = date.fromordinal(_EPOCH_ORDINAL + day_number)
    rest = day.weekday() >= 5 or _holidays().is_holiday(day)
    return _LocalDay(day.month, day.timetuple().tm_yday, rest)


@functools.lru_cache(maxsize=65536)
def offset_seconds(time_zone: str, utc_hour: int) -> int:
    """UTC offset of ``time_zone`` during a whole UTC hour (offsets change on the hour)."""
    instant = datetime.fromtimestamp(utc_hour * 3600, UTC)
    return utc_offset_minutes(instant, time_zone) * 60


@functools.lru_cache(maxsize=1024)
def _day_levels(household: HouseholdType, time_zone: str, utc_day: int) -> tuple[float, ...]:
    """Share of the typical daily energy in each slot of a UTC day, before per-meter noise.

    Shared by every meter of the same household type: the per-slot work of a meter is then
    one lookup and one hash.
    """
    levels = []
    for slot in range(utc_day * _SLOTS_PER_DAY, (utc_day + 1) * _SLOTS_PER_DAY):
        start = slot * SLOT_SECONDS
        local = start + offset_seconds(time_zone, start // 3600)
        day = local_day(local // 86400)
        hour = local % 86400 // 3600
        shape = _normalised(household.weekend if day.rest_day else household.weekday)
        level = shape[hour] * _MONTH_LEVEL[day.month - 1] / 4.0
        if day.rest_day:
            level *= household.weekend_level
        if day.month in (6, 7, 8) and 18 <= hour < 23:
            level *= household.winter_evening
        elif day.month in (12, 1, 2) and 13 <= hour < 18:
            level *= household.summer_afternoon
        levels.append(level)
    return tuple(levels)


@functools.lru_cache(maxsize=1024)
def _day_level_array(
    household: HouseholdType, time_zone: str, utc_day: int
) -> npt.NDArray[np.float64]:
    levels = np.array(_day_levels(household, time_zone, utc_day), dtype=np.float64)
    levels.flags.writeable = False
    return levels


@dataclass(frozen=True)
class ConsumptionModel:
    """Load of one service point: household type, per-meter scale, season, noise and PV.

    ``pv_kwp`` is the installed PV peak power (0: no PV). Whether the export is allowed
    by a net-billing contract is the fleet's business, not this model's.
    """

    seed: int
    household: HouseholdType
    polyphase: bool = False
    pv_kwp: float = 0.0
    time_zone: str = "America/Santiago"

    @functools.cached_property
    def scale(self) -> float:
        """Per-meter size factor, 0.6..1.4 of the household's typical daily energy."""
        return 0.6 + 0.8 * unit_interval(self.seed, 1)

    @functools.cached_property
    def power_factor(self) -> float:
        return self.household.power_factor + 0.04 * (unit_interval(self.seed, 2) - 0.5)

    @functools.cached_property
    def _tan_phi(self) -> float:
        return math.tan(math.acos(self.power_factor))

    @functools.cached_property
    def _daily_wh(self) -> float:
        factor = POLYPHASE_FACTOR if self.polyphase else 1.0
        return self.household.daily_kwh * 1000.0 * self.scale * factor

    def local_seconds(self, slot: int) -> int:
        """Local wall-clock seconds since the epoch at the start of ``slot``."""
        start = slot * SLOT_SECONDS
        return start + offset_seconds(self.time_zone, start // 3600)

    def demand_wh(self, slot: int) -> float:
        """Household consumption in the slot (Wh, not rounded), before PV."""
        levels = _day_levels(self.household, self.time_zone, slot // _SLOTS_PER_DAY)
        noise = 0.55 + 0.9 * unit_interval(self.seed, 3, slot)
        return self._daily_wh * levels[slot % _SLOTS_PER_DAY] * noise

    def pv_wh(self, slot: int) -> float:
        """PV production in the slot (Wh): a daylight bell by season with cloudy days."""
        if self.pv_kwp <= 0:
            return 0.0
        start = slot * SLOT_SECONDS
        day = local_day(self.local_seconds(slot) // 86400)
        half_day = 6.05 + 1.125 * math.cos(2 * math.pi * (day.day_of_year - 355) / 365.0)
        middle = (start % 86400 + SLOT_SECONDS / 2) / 3600.0
        position = (middle - (_SOLAR_NOON_UTC_HOURS - half_day)) / (2 * half_day)
        if not 0.0 < position < 1.0:
            return 0.0
        bell: float = math.sin(math.pi * position) ** 1.5
        clouds = unit_interval(self.seed, 4, start // 86400)
        winter = day.month in (5, 6, 7, 8)
        cover = 0.35 + 0.5 * clouds if clouds < (0.45 if winter else 0.15) else 0.9 + 0.1 * clouds
        flicker = 0.85 + 0.15 * unit_interval(self.seed, 5, slot)
        return self.pv_kwp * 1000.0 * 0.25 * 0.82 * bell * cover * flicker

    def slot_values(self, slot: int) -> tuple[int, int, int, int]:
        """``slot_energy`` as a plain tuple, for the meter model's register loop."""
        net = self.demand_wh(slot)
        if self.pv_kwp > 0:
            net -= self.pv_wh(slot)
        if net >= 0:
            imported = round(net)
            return imported, 0, round(imported * self._tan_phi), 0
        exported = round(-net)
        return 0, exported, 0, round(exported * 0.05)

    def slot_values_block(self, first: int, count: int) -> npt.NDArray[np.int64]:
        """``slot_values`` of the ``count`` slots from ``first`` as a ``(count, 4)`` array,
        the same integers: the demand is computed on arrays with the same operations in the
        same order (IEEE doubles, round half to even like ``round``); PV, which needs
        ``math``'s sine, is computed slot by slot by ``pv_wh`` itself."""
        if count <= 0:
            return np.zeros((0, 4), dtype=np.int64)
        days = range(first // _SLOTS_PER_DAY, (first + count - 1) // _SLOTS_PER_DAY + 1)
        offset = first - days[0] * _SLOTS_PER_DAY
        levels = np.concatenate(
            [_day_level_array(self.household, self.time_zone, day) for day in days]
        )[offset : offset + count]
        slots = np.arange(first, first + count, dtype=np.int64)
        noise = 0.55 + 0.9 * unit_intervals((self.seed, 3), slots)
        net = self._daily_wh * levels * noise
        if self.pv_kwp > 0:
            net = net - np.fromiter(map(self.pv_wh, range(first, first + count)), np.float64)
        importing = net >= 0
        imported = np.where(importing, np.rint(net), 0.0)
        exported = np.where(importing, 0.0, np.rint(-net))
        block = np.empty((count, 4), dtype=np.int64)
        block[:, 0] = imported
        block[:, 1] = exported
        block[:, 2] = np.rint(imported * self._tan_phi)
        block[:, 3] = np.rint(exported * 0.05)
        return block

    def slot_energy(self, slot: int) -> SlotEnergy:
        """Import, export and reactive energies of the slot, whole Wh/varh."""
        return SlotEnergy(*self.slot_values(slot))

    def measurands(self, slot: int, power_w: float, supplied: float = 1.0) -> Measurands:
        """Average voltages and currents around ``slot`` for an average active power.

        ``supplied`` is the share (0..1) of the interval with supply: an outage pulls the
        average voltage down, and a whole interval without supply reads zero.
        """
        phases = 3 if self.polyphase else 1
        if supplied <= 0:
            return Measurands((0.0,) * phases, (0.0,) * phases)
        line = tuple(
            _NOMINAL_VOLTAGE * (1 + 0.06 * (unit_interval(self.seed, 6, slot, p) - 0.5))
            for p in range(phases)
        )
        weights = (
            (1.0,)
            if phases == 1
            else tuple(0.8 + 0.4 * unit_interval(self.seed, 7, p) for p in range(3))
        )
        share = sum(weights)
        currents = tuple(
            round(power_w * weight / share / (voltage * self.power_factor), 2)
            for weight, voltage in zip(weights, line, strict=True)
        )
        return Measurands(tuple(round(v * min(supplied, 1.0), 1) for v in line), currents)
