"""Time-zone and DST rules: UTC is stored, local time is derived.

Every zone is loaded from the pinned ``tzdata`` package, never from the operating system, so
that every machine (server, worker, CI) computes the same local days, interval counts and DST
tables. Chile changes its rules by decree; updating ``tzdata`` is how the product follows.
"""

from __future__ import annotations

import functools
import importlib.resources
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = [
    "DEFAULT_TIME_ZONE",
    "WINDOWS_TO_IANA",
    "DstTransition",
    "NonexistentLocalTime",
    "TimeZoneInfo",
    "UnknownTimeZone",
    "available_time_zones",
    "dst_transitions",
    "interval_count",
    "interval_ends",
    "local_day_bounds",
    "time_zone_info",
    "to_local",
    "to_utc",
    "utc_offset_minutes",
    "windows_time_zone_to_iana",
    "zone",
]

DEFAULT_TIME_ZONE = "America/Santiago"

# Step of the offset walk in dst_transitions: far shorter than the time between two offset
# changes of any zone in modern tzdata, so no change (and its reversal) can hide in one step.
_WALK_STEP = timedelta(hours=12)


class UnknownTimeZone(ValueError):
    """A time-zone name that the pinned tzdata (or the Windows mapping) does not know."""


class NonexistentLocalTime(ValueError):
    """A local wall time inside a spring-forward gap: no UTC instant shows that time."""


@functools.cache
def available_time_zones() -> frozenset[str]:
    """IANA names the pinned tzdata package ships (canonical zones and their links)."""
    listing = importlib.resources.files("tzdata").joinpath("zones").read_text(encoding="ascii")
    return frozenset(listing.split())


@functools.lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    """Load ``name`` from the pinned tzdata package, one shared instance per name."""
    if name not in available_time_zones():
        raise UnknownTimeZone(f"unknown IANA time zone {name!r} (tzdata has no such zone)")
    resource = importlib.resources.files("tzdata.zoneinfo").joinpath(*name.split("/"))
    with resource.open("rb") as stream:
        return ZoneInfo.from_file(stream, key=name)


def _require_aware(value: datetime, what: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {value.isoformat()}")


def to_local(utc: datetime, tz: str) -> datetime:
    """Aware local time in ``tz`` for an aware instant (any offset, usually UTC)."""
    _require_aware(utc, "to_local input")
    return utc.astimezone(zone(tz))


def to_utc(local: datetime, tz: str, *, fold: int = 0, strict: bool = True) -> datetime:
    """UTC instant for a naive local wall time in ``tz``.

    Ambiguous wall times (the repeated hour when clocks go back) follow PEP 495: ``fold=0``
    picks the first occurrence (the earlier UTC instant, still on summer time), ``fold=1``
    the second. A wall time inside a spring-forward gap raises ``NonexistentLocalTime``;
    with ``strict=False`` it is converted PEP 495 style instead: ``fold=0`` applies the
    offset in force before the gap (the result lands after the gap, shifted forward by the
    gap's length), ``fold=1`` the offset after it.
    """
    if local.tzinfo is not None:
        raise ValueError(f"to_utc expects a naive local wall time, got {local.isoformat()}")
    if fold not in (0, 1):
        raise ValueError(f"fold must be 0 or 1, got {fold}")
    result = local.replace(tzinfo=zone(tz), fold=fold).astimezone(UTC)
    if strict and result.astimezone(zone(tz)).replace(tzinfo=None) != local:
        raise NonexistentLocalTime(
            f"{local.isoformat()} does not exist in {tz}: clocks jump forward over it"
        )
    return result


def utc_offset_minutes(utc: datetime, tz: str) -> int:
    """Offset of ``tz`` from UTC at an aware instant, in whole minutes (Santiago: -180/-240)."""
    offset = to_local(utc, tz).utcoffset()
    if offset is None:
        raise UnknownTimeZone(f"time zone {tz!r} has no UTC offset at {utc.isoformat()}")
    return int(offset.total_seconds() // 60)


def _bisect_seconds(low: datetime, high: datetime, reached: Callable[[datetime], bool]) -> datetime:
    """First whole UTC second in ``(low, high]`` where monotonic ``reached`` becomes true."""
    low_s, high_s = int(low.timestamp()), math.ceil(high.timestamp())
    while high_s - low_s > 1:
        middle = (low_s + high_s) // 2
        if reached(datetime.fromtimestamp(middle, UTC)):
            high_s = middle
        else:
            low_s = middle
    return datetime.fromtimestamp(high_s, UTC)


def _local_wall(instant: datetime, tz: str) -> datetime:
    return instant.astimezone(zone(tz)).replace(tzinfo=None)


def _first_instant_at_or_after(wall: datetime, tz: str) -> datetime:
    """Earliest UTC instant whose local wall time is ``wall`` or, if skipped, just after it."""
    try:
        return to_utc(wall, tz, fold=0)
    except NonexistentLocalTime:
        pass
    # Inside a gap the transition instant lies between the two PEP 495 readings.
    readings = sorted(to_utc(wall, tz, fold=fold, strict=False) for fold in (0, 1))
    return _bisect_seconds(readings[0], readings[1], lambda t: _local_wall(t, tz) >= wall)


def local_day_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    """UTC ``[start, end)`` of the local calendar day ``day`` in ``tz``.

    When local midnight is skipped by a spring-forward gap the day starts at the transition
    instant; when it is repeated the day starts at its first occurrence.
    """
    start = _first_instant_at_or_after(datetime.combine(day, time()), tz)
    end = _first_instant_at_or_after(datetime.combine(day + timedelta(days=1), time()), tz)
    return start, end


def _check_interval_minutes(minutes: int) -> None:
    if minutes <= 0 or 1440 % minutes != 0:
        raise ValueError(f"interval length must divide a day (1440 min), got {minutes} min")


def interval_count(day: date, tz: str, minutes: int = 15) -> int:
    """Number of ``minutes``-long intervals in the local day (15 min in Santiago: 92/96/100)."""
    return len(interval_ends(day, tz, minutes))


def interval_ends(day: date, tz: str, minutes: int = 15) -> list[datetime]:
    """UTC end instants of the local day's intervals, in order.

    Intervals are equal steps of real (UTC) time from the start of the local day, so the
    repeated April hour contributes its intervals twice, as distinct UTC instants. A day
    whose length is not a multiple of ``minutes`` (e.g. a 30-minute DST shift with hourly
    intervals) raises ``ValueError`` rather than inventing a short interval.
    """
    _check_interval_minutes(minutes)
    start, end = local_day_bounds(day, tz)
    step = timedelta(minutes=minutes)
    count, remainder = divmod(end - start, step)
    if remainder:
        raise ValueError(
            f"local day {day.isoformat()} in {tz} lasts {end - start}, "
            f"not a whole number of {minutes}-minute intervals"
        )
    return [start + step * (index + 1) for index in range(count)]


# Windows time-zone ids (the provisioning column ``windowstimezoneid``) to IANA names: the
# "001" (primary) territory of the CLDR windowsZones table, written with the current
# canonical IANA names (America/Argentina/Buenos_Aires rather than America/Buenos_Aires…).
WINDOWS_TO_IANA: dict[str, str] = {
    # Chile first: these are the ids the concentrator-site template actually carries.
    "Pacific SA Standard Time": "America/Santiago",
    "Magallanes Standard Time": "America/Punta_Arenas",
    "Easter Island Standard Time": "Pacific/Easter",
    # UTC and fixed offsets.
    "UTC": "Etc/UTC",
    "UTC-11": "Etc/GMT+11",
    "UTC-09": "Etc/GMT+9",
    "UTC-08": "Etc/GMT+8",
    "UTC-02": "Etc/GMT+2",
    "UTC+12": "Etc/GMT-12",
    "UTC+13": "Etc/GMT-13",
    "Dateline Standard Time": "Etc/GMT+12",
    "Mid-Atlantic Standard Time": "Etc/GMT+2",
    # Americas.
    "Hawaiian Standard Time": "Pacific/Honolulu",
    "Marquesas Standard Time": "Pacific/Marquesas",
    "Aleutian Standard Time": "America/Adak",
    "Alaskan Standard Time": "America/Anchorage",
    "Pacific Standard Time": "America/Los_Angeles",
    "Pacific Standard Time (Mexico)": "America/Tijuana",
    "Yukon Standard Time": "America/Whitehorse",
    "US Mountain Standard Time": "America/Phoenix",
    "Mountain Standard Time": "America/Denver",
    "Mountain Standard Time (Mexico)": "America/Mazatlan",
    "Central America Standard Time": "America/Guatemala",
    "Central Standard Time": "America/Chicago",
    "Central Standard Time (Mexico)": "America/Mexico_City",
    "Canada Central Standard Time": "America/Regina",
    "SA Pacific Standard Time": "America/Bogota",
    "Eastern Standard Time": "America/New_York",
    "Eastern Standard Time (Mexico)": "America/Cancun",
    "US Eastern Standard Time": "America/Indiana/Indianapolis",
    "Haiti Standard Time": "America/Port-au-Prince",
    "Cuba Standard Time": "America/Havana",
    "Turks And Caicos Standard Time": "America/Grand_Turk",
    "Paraguay Standard Time": "America/Asuncion",
    "Atlantic Standard Time": "America/Halifax",
    "Venezuela Standard Time": "America/Caracas",
    "Central Brazilian Standard Time": "America/Cuiaba",
    "SA Western Standard Time": "America/La_Paz",
    "Newfoundland Standard Time": "America/St_Johns",
    "Tocantins Standard Time": "America/Araguaina",
    "E. South America Standard Time": "America/Sao_Paulo",
    "SA Eastern Standard Time": "America/Cayenne",
    "Argentina Standard Time": "America/Argentina/Buenos_Aires",
    "Greenland Standard Time": "America/Nuuk",
    "Montevideo Standard Time": "America/Montevideo",
    "Saint Pierre Standard Time": "America/Miquelon",
    "Bahia Standard Time": "America/Bahia",
    # Atlantic, Europe and Africa.
    "Azores Standard Time": "Atlantic/Azores",
    "Cape Verde Standard Time": "Atlantic/Cape_Verde",
    "GMT Standard Time": "Europe/London",
    "Greenwich Standard Time": "Atlantic/Reykjavik",
    "Sao Tome Standard Time": "Africa/Sao_Tome",
    "Morocco Standard Time": "Africa/Casablanca",
    "W. Europe Standard Time": "Europe/Berlin",
    "Central Europe Standard Time": "Europe/Budapest",
    "Romance Standard Time": "Europe/Paris",
    "Central European Standard Time": "Europe/Warsaw",
    "W. Central Africa Standard Time": "Africa/Lagos",
    "GTB Standard Time": "Europe/Bucharest",
    "Egypt Standard Time": "Africa/Cairo",
    "E. Europe Standard Time": "Europe/Chisinau",
    "South Africa Standard Time": "Africa/Johannesburg",
    "FLE Standard Time": "Europe/Kyiv",
    "Kaliningrad Standard Time": "Europe/Kaliningrad",
    "South Sudan Standard Time": "Africa/Juba",
    "Sudan Standard Time": "Africa/Khartoum",
    "Libya Standard Time": "Africa/Tripoli",
    "Namibia Standard Time": "Africa/Windhoek",
    "Turkey Standard Time": "Europe/Istanbul",
    "Belarus Standard Time": "Europe/Minsk",
    "Russian Standard Time": "Europe/Moscow",
    "E. Africa Standard Time": "Africa/Nairobi",
    "Volgograd Standard Time": "Europe/Volgograd",
    "Astrakhan Standard Time": "Europe/Astrakhan",
    "Russia Time Zone 3": "Europe/Samara",
    "Saratov Standard Time": "Europe/Saratov",
    "Mauritius Standard Time": "Indian/Mauritius",
    # Asia and Oceania.
    "Jordan Standard Time": "Asia/Amman",
    "Middle East Standard Time": "Asia/Beirut",
    "Syria Standard Time": "Asia/Damascus",
    "West Bank Standard Time": "Asia/Hebron",
    "Israel Standard Time": "Asia/Jerusalem",
    "Arabic Standard Time": "Asia/Baghdad",
    "Arab Standard Time": "Asia/Riyadh",
    "Iran Standard Time": "Asia/Tehran",
    "Arabian Standard Time": "Asia/Dubai",
    "Azerbaijan Standard Time": "Asia/Baku",
    "Georgian Standard Time": "Asia/Tbilisi",
    "Caucasus Standard Time": "Asia/Yerevan",
    "Afghanistan Standard Time": "Asia/Kabul",
    "West Asia Standard Time": "Asia/Tashkent",
    "Ekaterinburg Standard Time": "Asia/Yekaterinburg",
    "Pakistan Standard Time": "Asia/Karachi",
    "Qyzylorda Standard Time": "Asia/Qyzylorda",
    "India Standard Time": "Asia/Kolkata",
    "Sri Lanka Standard Time": "Asia/Colombo",
    "Nepal Standard Time": "Asia/Kathmandu",
    "Central Asia Standard Time": "Asia/Bishkek",
    "Bangladesh Standard Time": "Asia/Dhaka",
    "Omsk Standard Time": "Asia/Omsk",
    "Myanmar Standard Time": "Asia/Yangon",
    "SE Asia Standard Time": "Asia/Bangkok",
    "Altai Standard Time": "Asia/Barnaul",
    "W. Mongolia Standard Time": "Asia/Hovd",
    "North Asia Standard Time": "Asia/Krasnoyarsk",
    "N. Central Asia Standard Time": "Asia/Novosibirsk",
    "Tomsk Standard Time": "Asia/Tomsk",
    "China Standard Time": "Asia/Shanghai",
    "North Asia East Standard Time": "Asia/Irkutsk",
    "Singapore Standard Time": "Asia/Singapore",
    "W. Australia Standard Time": "Australia/Perth",
    "Taipei Standard Time": "Asia/Taipei",
    "Ulaanbaatar Standard Time": "Asia/Ulaanbaatar",
    "Aus Central W. Standard Time": "Australia/Eucla",
    "Transbaikal Standard Time": "Asia/Chita",
    "Tokyo Standard Time": "Asia/Tokyo",
    "North Korea Standard Time": "Asia/Pyongyang",
    "Korea Standard Time": "Asia/Seoul",
    "Yakutsk Standard Time": "Asia/Yakutsk",
    "Cen. Australia Standard Time": "Australia/Adelaide",
    "AUS Central Standard Time": "Australia/Darwin",
    "E. Australia Standard Time": "Australia/Brisbane",
    "AUS Eastern Standard Time": "Australia/Sydney",
    "West Pacific Standard Time": "Pacific/Port_Moresby",
    "Tasmania Standard Time": "Australia/Hobart",
    "Vladivostok Standard Time": "Asia/Vladivostok",
    "Lord Howe Standard Time": "Australia/Lord_Howe",
    "Bougainville Standard Time": "Pacific/Bougainville",
    "Russia Time Zone 10": "Asia/Srednekolymsk",
    "Magadan Standard Time": "Asia/Magadan",
    "Norfolk Standard Time": "Pacific/Norfolk",
    "Sakhalin Standard Time": "Asia/Sakhalin",
    "Central Pacific Standard Time": "Pacific/Guadalcanal",
    "Russia Time Zone 11": "Asia/Kamchatka",
    "New Zealand Standard Time": "Pacific/Auckland",
    "Fiji Standard Time": "Pacific/Fiji",
    "Chatham Islands Standard Time": "Pacific/Chatham",
    "Tonga Standard Time": "Pacific/Tongatapu",
    "Samoa Standard Time": "Pacific/Apia",
    "Line Islands Standard Time": "Pacific/Kiritimati",
}

_WINDOWS_BY_FOLDED_NAME = {key.casefold(): value for key, value in WINDOWS_TO_IANA.items()}


def windows_time_zone_to_iana(name: str) -> str:
    """IANA name for a Windows time-zone id (case-insensitive) or for a valid IANA name.

    Surrounding blanks are ignored: the value comes from hand-edited CSV templates.
    """
    cleaned = name.strip()
    mapped = _WINDOWS_BY_FOLDED_NAME.get(cleaned.casefold())
    if mapped is not None:
        return mapped
    if cleaned in available_time_zones():
        zone(cleaned)
        return cleaned
    raise UnknownTimeZone(
        f"unknown time zone {name!r}: expected a Windows time-zone id such as "
        f"'Pacific SA Standard Time' or 'Magallanes Standard Time' (CLDR windowsZones), "
        f"or an IANA name such as 'America/Santiago'"
    )


@dataclass(frozen=True, slots=True)
class DstTransition:
    """One change of UTC offset (or of the DST flag) of a zone, as stored in the DST table."""

    time_zone: str
    at_utc: datetime
    offset_before_minutes: int
    offset_after_minutes: int
    is_dst_after: bool


@dataclass(frozen=True, slots=True)
class TimeZoneInfo:
    """Summary row of the time-zone table for a range of years."""

    name: str
    standard_offset_minutes: int
    has_dst: bool


def _state(instant: datetime, tz: ZoneInfo) -> tuple[timedelta, timedelta]:
    local = instant.astimezone(tz)
    return local.utcoffset() or timedelta(0), local.dst() or timedelta(0)


def _differs(tz: ZoneInfo, state: tuple[timedelta, timedelta], instant: datetime) -> bool:
    return _state(instant, tz) != state


def _minutes(delta: timedelta) -> int:
    return int(delta.total_seconds() // 60)


def _range_bounds(first_year: int, last_year: int) -> tuple[datetime, datetime]:
    if first_year > last_year:
        raise ValueError(f"first_year {first_year} is after last_year {last_year}")
    if first_year < 1900 or last_year > 2999:
        raise ValueError(f"years must lie in 1900..2999, got {first_year}..{last_year}")
    return datetime(first_year, 1, 1, tzinfo=UTC), datetime(last_year + 1, 1, 1, tzinfo=UTC)


def dst_transitions(tz: str, first_year: int, last_year: int) -> list[DstTransition]:
    """Offset changes of ``tz`` from 1 January ``first_year`` to 31 December ``last_year`` (UTC).

    Computed by walking the pinned tzdata in 12-hour steps and bisecting each change to the
    second, so rules beyond the last explicit transition (the TZif footer) are covered too.
    """
    tzinfo = zone(tz)
    start, stop = _range_bounds(first_year, last_year)
    transitions: list[DstTransition] = []
    previous_instant = start
    previous_state = _state(start, tzinfo)
    while previous_instant < stop:
        instant = min(previous_instant + _WALK_STEP, stop)
        state = _state(instant, tzinfo)
        if state != previous_state:
            high = _bisect_seconds(
                previous_instant, instant, functools.partial(_differs, tzinfo, previous_state)
            )
            after_offset, after_dst = _state(high, tzinfo)
            transitions.append(
                DstTransition(
                    time_zone=tz,
                    at_utc=high,
                    offset_before_minutes=_minutes(previous_state[0]),
                    offset_after_minutes=_minutes(after_offset),
                    is_dst_after=after_dst != timedelta(0),
                )
            )
        previous_instant, previous_state = instant, state
    return [item for item in transitions if item.at_utc < stop]


def time_zone_info(tz: str, first_year: int, last_year: int) -> TimeZoneInfo:
    """Standard offset in force at the end of the range, and whether DST occurs in it."""
    tzinfo = zone(tz)
    start, stop = _range_bounds(first_year, last_year)
    last_instant = stop - timedelta(seconds=1)
    offset, dst = _state(last_instant, tzinfo)
    has_dst = _state(start, tzinfo)[1] != timedelta(0) or any(
        item.is_dst_after for item in dst_transitions(tz, first_year, last_year)
    )
    return TimeZoneInfo(name=tz, standard_offset_minutes=_minutes(offset - dst), has_dst=has_dst)
