"""Meter data as typed values: reading types, quality flags, the tier-sum rule, gaps and
energy profiles (DOMAIN.md §6).

Reading types are IEC 61968-9 18-field codes. The seed's copies of the codes are garbled
(missing or extra zero fields, the reverse-flow field one position late, DC registers under
``0.0.16…``); Legacy may still send them, so :func:`reading_type` accepts both and always
answers with the corrected form. Values are kept in the meter's base units (Wh, varh, A, V),
as the seed's files show them: the corrected codes' multiplier field (``3`` = kilo) is the
code DOMAIN.md prescribes, and a kWh figure is ``value / 1000``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from smmc.domain.time import interval_ends, local_day_bounds, to_local

__all__ = [
    "AVERAGE_CURRENT",
    "AVERAGE_VOLTAGE",
    "DAILY_CLOSURE_ENERGY_PROFILE",
    "DAILY_CLOSURE_PROFILES",
    "DEFAULT_DAILY_CLOSURE_PROFILE",
    "DEFAULT_LOAD_PROFILE_PROFILE",
    "LOAD_PROFILE_PROFILES",
    "LP_ACTIVE",
    "LP_ACTIVE_EXPORT",
    "LP_FOUR_QUADRANTS",
    "PROFILE_STATUS_CLOCK_ADJUSTED",
    "READING_TYPES",
    "TIER_COUNT",
    "CollectionKind",
    "DailyClosureProfile",
    "Energy",
    "LoadProfileProfile",
    "QualityFlag",
    "ReadingKind",
    "ReadingType",
    "UnknownReadingType",
    "closed_day",
    "closure_days",
    "daily_closure_type",
    "energy_type_code",
    "interval_type",
    "is_dst_day",
    "local_sample_time",
    "missing_interval_ends",
    "profile_status_quality",
    "reading_type",
    "reading_type_by_id",
    "tier_sum_violated",
]

TIER_COUNT = 6


class UnknownReadingType(ValueError):
    """A code that is neither a corrected nor a known literal reading-type code."""


class Energy(enum.StrEnum):
    """The four energies the regulation requires."""

    ACTIVE_FORWARD = "active_forward"
    REACTIVE_FORWARD = "reactive_forward"
    ACTIVE_REVERSE = "active_reverse"
    REACTIVE_REVERSE = "reactive_reverse"


class ReadingKind(enum.StrEnum):
    INTERVAL = "interval"
    REGISTER = "register"
    MEASURAND = "measurand"


class QualityFlag(enum.IntFlag):
    """Quality of a stored value; ``ACTUAL`` (no bit set) is a value read as is, and the
    integer is what the files' ``state`` column shows."""

    ACTUAL = 0
    MISSING = 1
    DST_DAY = 2
    CLOCK_ADJUSTED = 4
    TIER_SUM_VIOLATION = 8


class CollectionKind(enum.StrEnum):
    """What a scheduled collection order reads (its payload's ``collect`` list)."""

    DAILY_CLOSURE = "daily_closure"
    LOAD_PROFILE = "load_profile"
    MEASURANDS = "measurands"


# Bit 5 of a load-profile row's status byte (the IDIS/DSMR "AMR profile status"): the clock
# was adjusted (set or synchronised) during the capture period.
PROFILE_STATUS_CLOCK_ADJUSTED = 0x20


def profile_status_quality(status: int) -> QualityFlag:
    """The quality flags a load-profile row's status byte implies."""
    if not 0 <= status <= 0xFF:
        raise ValueError(f"a profile status byte is 0..255, got {status}")
    if status & PROFILE_STATUS_CLOCK_ADJUSTED:
        return QualityFlag.CLOCK_ADJUSTED
    return QualityFlag.ACTUAL


_FLOW = {Energy.ACTIVE_FORWARD: 1, Energy.REACTIVE_FORWARD: 1}
_UNIT = {
    Energy.ACTIVE_FORWARD: 72,
    Energy.ACTIVE_REVERSE: 72,
    Energy.REACTIVE_FORWARD: 73,
    Energy.REACTIVE_REVERSE: 73,
}
_UNIT_NAME = {72: "Wh", 73: "varh", 5: "A", 29: "V"}
_PERIOD_FIELD = {15: 2, 60: 7}


@dataclass(frozen=True, slots=True)
class ReadingType:
    """One reading type; ``id`` is the stable small integer the store keeps per value."""

    id: int
    code: str
    name: str
    kind: ReadingKind
    unit: str
    energy: Energy | None = None
    minutes: int | None = None
    tier: int | None = None


def _energy_code(prefix: tuple[int, int, int, int], energy: Energy, tier: int = 0) -> str:
    flow = _FLOW.get(energy, 19)
    fields = (*prefix, flow, 1, 12, 0, 0, 0, 0, tier, 0, 0, 0, 3, _UNIT[energy], 0)
    return ".".join(str(f) for f in fields)


def _build() -> tuple[ReadingType, ...]:
    types: list[ReadingType] = []
    words = {
        Energy.ACTIVE_FORWARD: "forward active energy",
        Energy.REACTIVE_FORWARD: "forward reactive energy",
        Energy.ACTIVE_REVERSE: "reverse active energy",
        Energy.REACTIVE_REVERSE: "reverse reactive energy",
    }
    for minutes, field in _PERIOD_FIELD.items():
        for energy in Energy:
            types.append(
                ReadingType(
                    len(types) + 1,
                    _energy_code((0, 0, field, 4), energy),
                    f"{minutes}-minute {words[energy]}",
                    ReadingKind.INTERVAL,
                    _UNIT_NAME[_UNIT[energy]],
                    energy,
                    minutes,
                )
            )
    for tier in range(TIER_COUNT + 1):
        for energy in Energy:
            label = "total" if tier == 0 else f"tier {tier}"
            types.append(
                ReadingType(
                    len(types) + 1,
                    _energy_code((11, 0, 0, 1), energy, tier),
                    f"daily closure {words[energy]}, {label}",
                    ReadingKind.REGISTER,
                    _UNIT_NAME[_UNIT[energy]],
                    energy,
                    None,
                    tier or None,
                )
            )
    types.append(
        ReadingType(
            len(types) + 1,
            "0.2.2.6.0.1.4.0.0.0.0.0.0.0.128.0.5.0",
            "15-minute average current",
            ReadingKind.MEASURAND,
            "A",
            minutes=15,
        )
    )
    types.append(
        ReadingType(
            len(types) + 1,
            "0.2.2.6.0.1.54.0.0.0.0.0.0.0.129.0.29.0",
            "15-minute average voltage",
            ReadingKind.MEASURAND,
            "V",
            minutes=15,
        )
    )
    return tuple(types)


READING_TYPES: tuple[ReadingType, ...] = _build()
_BY_CODE = {t.code: t for t in READING_TYPES}
_BY_ID = {t.id: t for t in READING_TYPES}
_BY_KEY = {(t.kind, t.energy, t.minutes, t.tier): t for t in READING_TYPES}
AVERAGE_CURRENT = READING_TYPES[-2]
AVERAGE_VOLTAGE = READING_TYPES[-1]


def interval_type(energy: Energy, minutes: int = 15) -> ReadingType:
    """The load-profile reading type of ``energy`` for 15- or 60-minute intervals."""
    found = _BY_KEY.get((ReadingKind.INTERVAL, energy, minutes, None))
    if found is None:
        raise UnknownReadingType(f"no {minutes}-minute reading type for {energy}")
    return found


def daily_closure_type(energy: Energy, tier: int | None = None) -> ReadingType:
    """The daily-closure register type of ``energy``: the total, or TOU tier 1..6."""
    found = _BY_KEY.get((ReadingKind.REGISTER, energy, None, tier))
    if found is None:
        raise UnknownReadingType(f"no daily-closure tier {tier} for {energy}")
    return found


def reading_type_by_id(type_id: int) -> ReadingType:
    found = _BY_ID.get(type_id)
    if found is None:
        raise UnknownReadingType(f"unknown reading type id {type_id}")
    return found


def _fields(code: str) -> list[int]:
    parts = code.strip().split(".")
    if not all(p.isdigit() for p in parts):
        raise UnknownReadingType(f"reading-type code {code!r} is not dot-separated integers")
    return [int(p) for p in parts]


def _energy_from(flow: int, unit: int) -> Energy | None:
    table = {
        (1, 72): Energy.ACTIVE_FORWARD,
        (1, 73): Energy.REACTIVE_FORWARD,
        (19, 72): Energy.ACTIVE_REVERSE,
        (19, 73): Energy.REACTIVE_REVERSE,
    }
    return table.get((flow, unit))


def _tail_unit(tail: Sequence[int]) -> int | None:
    """The unit of a garbled tail: any run of zero fields, then ``unit.0``."""
    if len(tail) < 2 or tail[-1] != 0 or any(tail[:-2]):
        return None
    return tail[-2]


def _literal(fields: list[int]) -> ReadingType | None:
    """The seed's literal forms (see docs/meter-data.md for the table)."""
    head = fields[:7]
    # Load profile: 0.0.P.4.1.D.12 <zeros> U.0 with P = 2 (15 min) or 7 (60 min) and the
    # flow direction D one field late (1 forward, 19 reverse).
    if len(head) == 7 and head[:2] == [0, 0] and head[3:5] == [4, 1] and head[6] == 12:
        minutes = {2: 15, 7: 60}.get(head[2])
        unit = _tail_unit(fields[7:])
        energy = _energy_from(head[5], unit) if unit is not None else None
        if minutes is not None and energy is not None:
            return interval_type(energy, minutes)
    # Daily closure registers: 0.0.16.1.D.1.12 <zeros> U.0 (total) and
    # 0.0.16.9.D.1.12.0.0.0.0.x <zeros> U.0 (TOU tier x).
    if len(head) == 7 and head[:3] == [0, 0, 16] and head[5:7] == [1, 12]:
        if head[3] == 1:
            unit = _tail_unit(fields[7:])
            energy = _energy_from(head[4], unit) if unit is not None else None
            if energy is not None:
                return daily_closure_type(energy)
        if head[3] == 9 and len(fields) > 12 and not any(fields[7:11]):
            tier = fields[11]
            unit = _tail_unit(fields[12:])
            energy = _energy_from(head[4], unit) if unit is not None else None
            if energy is not None and 1 <= tier <= TIER_COUNT:
                return daily_closure_type(energy, tier)
    # Measurands file: 0.0.2.6.0.1.5 <zeros> 224 <zeros> (the M_ example, amperes).
    if head == [0, 0, 2, 6, 0, 1, 5] and fields.count(224) == 1:
        rest = [f for f in fields[7:] if f != 224]
        if not any(rest):
            return AVERAGE_CURRENT
    return None


def reading_type(code: str) -> ReadingType:
    """The reading type of a corrected or literal (seed) code; raises UnknownReadingType."""
    found = _BY_CODE.get(code.strip())
    if found is not None:
        return found
    literal = _literal(_fields(code))
    if literal is None:
        raise UnknownReadingType(f"unknown reading-type code {code!r}")
    return literal


# Energy types of the DC file. 8 and 9 are the seed's; 10 and 11 are ours for the reactive
# registers, which the seed's examples do not show.
_ENERGY_TYPES = {
    Energy.ACTIVE_FORWARD: (8, "Active Energy Import Previous"),
    Energy.ACTIVE_REVERSE: (9, "Active Energy Export Previous"),
    Energy.REACTIVE_FORWARD: (10, "Reactive Energy Import Previous"),
    Energy.REACTIVE_REVERSE: (11, "Reactive Energy Export Previous"),
}


def energy_type_code(energy: Energy) -> tuple[int, str]:
    """``(energytype, energytype_description)`` of the DC file for ``energy``."""
    code, text = _ENERGY_TYPES[energy]
    return code, f"{code} {text}"


def tier_sum_violated(tiers: Sequence[int], total: int) -> bool:
    """True when t1+…+t6 differs from the total (the invariant of every register set)."""
    if len(tiers) != TIER_COUNT:
        raise ValueError(f"a register set has {TIER_COUNT} tiers, got {len(tiers)}")
    return sum(tiers) != total


def is_dst_day(day: date, tz: str) -> bool:
    """True on a local day whose length is not 24 h (92 or 100 fifteen-minute intervals)."""
    start, end = local_day_bounds(day, tz)
    return (end - start).total_seconds() != 86400


def missing_interval_ends(
    day: date, tz: str, stored: Iterable[datetime], minutes: int = 15
) -> list[datetime]:
    """The UTC interval ends of the local ``day`` in ``tz`` that ``stored`` lacks, in order."""
    have = set(stored)
    return [end for end in interval_ends(day, tz, minutes) if end not in have]


def closed_day(captured_at: datetime, tz: str) -> date:
    """The local day a daily closure captured at ``captured_at`` (its next midnight) closes."""
    return to_local(captured_at - timedelta(seconds=1), tz).date()


def closure_days(tz: str, since: datetime, until: datetime) -> list[date]:
    """The local days whose closing midnight falls in ``(since, until]``, in order."""
    days: list[date] = []
    day = closed_day(since, tz)
    while True:
        midnight = local_day_bounds(day + timedelta(days=1), tz)[0]
        if midnight > until:
            return days
        if midnight > since:
            days.append(day)
        day += timedelta(days=1)


def local_sample_time(utc: datetime, tz: str) -> datetime:
    """Wall-clock time of an interval end as the files show it (naive local time)."""
    return to_local(utc, tz).replace(tzinfo=None)


# -- energy profiles ("Procedure Parameters") ----------------------------------------------


@dataclass(frozen=True, slots=True)
class DailyClosureProfile:
    """Which energies' daily closure to collect, per meter type; inactive collects none."""

    name: str
    active: bool
    monophase: frozenset[Energy]
    polyphase: frozenset[Energy]

    def energies(self, meter_type: str) -> frozenset[Energy]:
        if not self.active:
            return frozenset()
        if meter_type == "polyphase":
            return self.polyphase
        if meter_type == "monophase":
            return self.monophase
        raise ValueError(f"unknown meter type {meter_type!r}")


@dataclass(frozen=True, slots=True)
class LoadProfileProfile:
    """Which energies' load profile to collect and at what interval."""

    name: str
    energies: frozenset[Energy]
    minutes: int = 15

    def reading_types(self) -> tuple[ReadingType, ...]:
        return tuple(interval_type(e, self.minutes) for e in Energy if e in self.energies)


DAILY_CLOSURE_ENERGY_PROFILE = DailyClosureProfile(
    "DailyClosure Energy Profile",
    active=True,
    monophase=frozenset({Energy.ACTIVE_FORWARD, Energy.ACTIVE_REVERSE}),
    polyphase=frozenset(Energy),
)
LP_ACTIVE = LoadProfileProfile("LP Active", frozenset({Energy.ACTIVE_FORWARD}))
LP_ACTIVE_EXPORT = LoadProfileProfile(
    "LP Active + Active Export", frozenset({Energy.ACTIVE_FORWARD, Energy.ACTIVE_REVERSE})
)
LP_FOUR_QUADRANTS = LoadProfileProfile("LP Four Quadrants", frozenset(Energy))
"""Active and reactive, import and export: the four channels of the load profile."""
DAILY_CLOSURE_PROFILES = {p.name: p for p in (DAILY_CLOSURE_ENERGY_PROFILE,)}
LOAD_PROFILE_PROFILES = {p.name: p for p in (LP_ACTIVE, LP_ACTIVE_EXPORT, LP_FOUR_QUADRANTS)}
DEFAULT_DAILY_CLOSURE_PROFILE = DAILY_CLOSURE_ENERGY_PROFILE
"""What the collection reads for a meter without an assignment (``meter_energy_profiles``)."""
DEFAULT_LOAD_PROFILE_PROFILE = LP_ACTIVE
