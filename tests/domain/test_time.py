"""Time-zone rules: pinned tzdata, Chilean DST days, Windows ids, DST table."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smmc.domain.time import (
    DEFAULT_TIME_ZONE,
    WINDOWS_TO_IANA,
    DstTransition,
    NonexistentLocalTime,
    TimeZoneInfo,
    UnknownTimeZone,
    available_time_zones,
    dst_transitions,
    interval_count,
    interval_ends,
    local_day_bounds,
    time_zone_info,
    to_local,
    to_utc,
    utc_offset_minutes,
    windows_time_zone_to_iana,
    zone,
)

SANTIAGO = "America/Santiago"
PUNTA_ARENAS = "America/Punta_Arenas"


def test_default_time_zone_is_santiago() -> None:
    assert DEFAULT_TIME_ZONE == SANTIAGO


def test_zone_is_cached_and_keyed() -> None:
    assert zone(SANTIAGO) is zone(SANTIAGO)
    assert zone(SANTIAGO).key == SANTIAGO


def test_zone_comes_from_the_tzdata_package() -> None:
    # The pinned package, not /usr/share/zoneinfo: the set lists what tzdata ships.
    assert SANTIAGO in available_time_zones()
    assert "Etc/UTC" in available_time_zones()


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "america/santiago", "../../etc/passwd"])
def test_unknown_zone_names_the_zone(name: str) -> None:
    with pytest.raises(UnknownTimeZone) as caught:
        zone(name)
    assert repr(name) in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_to_local_winter_and_summer() -> None:
    winter = to_local(datetime(2025, 7, 1, 12, tzinfo=UTC), SANTIAGO)
    summer = to_local(datetime(2025, 1, 15, 12, tzinfo=UTC), SANTIAGO)
    assert (winter.hour, winter.utcoffset()) == (8, timedelta(hours=-4))
    assert (summer.hour, summer.utcoffset()) == (9, timedelta(hours=-3))


def test_to_local_rejects_naive() -> None:
    with pytest.raises(ValueError, match="aware"):
        to_local(datetime(2025, 7, 1, 12), SANTIAGO)


def test_to_local_accepts_other_offsets() -> None:
    plus_two = timezone(timedelta(hours=2))
    local = to_local(datetime(2025, 7, 1, 14, tzinfo=plus_two), SANTIAGO)
    assert local.replace(tzinfo=None) == datetime(2025, 7, 1, 8)


def test_to_utc_plain() -> None:
    assert to_utc(datetime(2025, 7, 1, 8), SANTIAGO) == datetime(2025, 7, 1, 12, tzinfo=UTC)


def test_to_utc_rejects_aware_and_bad_fold() -> None:
    with pytest.raises(ValueError, match="naive"):
        to_utc(datetime(2025, 7, 1, 8, tzinfo=UTC), SANTIAGO)
    with pytest.raises(ValueError, match="fold"):
        to_utc(datetime(2025, 7, 1, 8), SANTIAGO, fold=2)


def test_to_utc_ambiguous_april_hour() -> None:
    # Saturday 2025-04-05 23:30 happens twice: first at -03, then at -04.
    wall = datetime(2025, 4, 5, 23, 30)
    assert to_utc(wall, SANTIAGO) == datetime(2025, 4, 6, 2, 30, tzinfo=UTC)
    assert to_utc(wall, SANTIAGO, fold=1) == datetime(2025, 4, 6, 3, 30, tzinfo=UTC)


def test_to_utc_gap_is_strict_by_default() -> None:
    # Sunday 2025-09-07 00:00-01:00 does not exist in Santiago.
    wall = datetime(2025, 9, 7, 0, 30)
    with pytest.raises(NonexistentLocalTime, match="2025-09-07T00:30"):
        to_utc(wall, SANTIAGO)
    assert to_utc(wall, SANTIAGO, strict=False) == datetime(2025, 9, 7, 4, 30, tzinfo=UTC)
    assert to_utc(wall, SANTIAGO, fold=1, strict=False) == datetime(2025, 9, 7, 3, 30, tzinfo=UTC)


def test_utc_offset_minutes() -> None:
    assert utc_offset_minutes(datetime(2025, 7, 1, tzinfo=UTC), SANTIAGO) == -240
    assert utc_offset_minutes(datetime(2025, 1, 1, tzinfo=UTC), SANTIAGO) == -180
    assert utc_offset_minutes(datetime(2025, 7, 1, tzinfo=UTC), PUNTA_ARENAS) == -180
    assert utc_offset_minutes(datetime(2025, 7, 1, tzinfo=UTC), "Asia/Kolkata") == 330


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2025, 4, 5), 100),  # fall back: Saturday 23:00-24:00 repeated
        (date(2025, 4, 6), 96),
        (date(2025, 9, 6), 96),
        (date(2025, 9, 7), 92),  # spring forward: Sunday 00:00-01:00 skipped
        (date(2025, 6, 15), 96),
        (date(2022, 9, 4), 96),  # the decree moved 2022's change a week later...
        (date(2022, 9, 11), 92),  # ...to 11 September
        (date(2022, 4, 2), 100),
    ],
)
def test_santiago_interval_counts(day: date, expected: int) -> None:
    assert interval_count(day, SANTIAGO) == expected


def test_hourly_and_five_minute_counts() -> None:
    assert interval_count(date(2025, 4, 5), SANTIAGO, minutes=60) == 25
    assert interval_count(date(2025, 9, 7), SANTIAGO, minutes=60) == 23
    assert interval_count(date(2025, 9, 7), SANTIAGO, minutes=5) == 276


def test_punta_arenas_has_96_intervals_every_day_of_a_year() -> None:
    day = date(2025, 1, 1)
    while day.year == 2025:
        assert interval_count(day, PUNTA_ARENAS) == 96, day
        day += timedelta(days=1)


@pytest.mark.parametrize("minutes", [0, -15, 7, 1441])
def test_interval_length_must_divide_a_day(minutes: int) -> None:
    with pytest.raises(ValueError, match="divide a day"):
        interval_count(date(2025, 1, 1), SANTIAGO, minutes=minutes)


def test_interval_not_fitting_the_day_is_an_error() -> None:
    # Lord Howe shifts by 30 minutes: its fall-back day lasts 24.5 hours.
    with pytest.raises(ValueError, match="whole number"):
        interval_ends(date(2025, 4, 6), "Australia/Lord_Howe", minutes=60)
    assert interval_count(date(2025, 4, 6), "Australia/Lord_Howe", minutes=30) == 49


def test_local_day_bounds() -> None:
    assert local_day_bounds(date(2025, 6, 15), SANTIAGO) == (
        datetime(2025, 6, 15, 4, tzinfo=UTC),
        datetime(2025, 6, 16, 4, tzinfo=UTC),
    )
    # Midnight skipped: the day starts at the transition (01:00 local, 04:00 UTC).
    assert local_day_bounds(date(2025, 9, 7), SANTIAGO) == (
        datetime(2025, 9, 7, 4, tzinfo=UTC),
        datetime(2025, 9, 8, 3, tzinfo=UTC),
    )


def test_day_bounds_in_another_zone_skipping_midnight() -> None:
    # Asia/Beirut springs forward at 00:00 on the last Sunday of March.
    start, end = local_day_bounds(date(2025, 3, 30), "Asia/Beirut")
    assert to_local(start, "Asia/Beirut").replace(tzinfo=None) == datetime(2025, 3, 30, 1)
    assert end - start == timedelta(hours=23)


def test_interval_ends_cover_the_repeated_hour_twice() -> None:
    ends = interval_ends(date(2025, 4, 5), SANTIAGO)
    assert len(ends) == 100
    assert ends[0] == datetime(2025, 4, 5, 3, 15, tzinfo=UTC)
    assert ends[-1] == datetime(2025, 4, 6, 4, tzinfo=UTC)
    assert all(b - a == timedelta(minutes=15) for a, b in pairwise(ends))
    walls = [to_local(end, SANTIAGO).replace(tzinfo=None) for end in ends]
    assert walls.count(datetime(2025, 4, 5, 23, 15)) == 2
    assert walls[-1] == datetime(2025, 4, 6, 0, 0)


def test_interval_ends_skip_the_missing_hour() -> None:
    walls = [
        to_local(end, SANTIAGO).replace(tzinfo=None)
        for end in interval_ends(date(2025, 9, 7), SANTIAGO)
    ]
    assert walls[0] == datetime(2025, 9, 7, 1, 15)
    assert walls[-1] == datetime(2025, 9, 8, 0, 0)
    assert len(set(walls)) == 92


UTC_2025 = st.datetimes(
    min_value=datetime(2024, 12, 25), max_value=datetime(2026, 1, 5), timezones=st.just(UTC)
)


@given(instant=UTC_2025, tz=st.sampled_from([SANTIAGO, PUNTA_ARENAS, "Pacific/Easter"]))
def test_round_trip_utc_local_utc(instant: datetime, tz: str) -> None:
    local = to_local(instant, tz)
    back = to_utc(local.replace(tzinfo=None), tz, fold=local.fold)
    assert back == instant
    assert back.tzinfo is UTC


@given(instant=UTC_2025)
def test_offset_matches_local_minus_utc(instant: datetime) -> None:
    local = to_local(instant, SANTIAGO).replace(tzinfo=None)
    offset = utc_offset_minutes(instant, SANTIAGO)
    assert offset in (-180, -240)
    assert local - instant.replace(tzinfo=None) == timedelta(minutes=offset)


@given(day=st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31)))
def test_intervals_tile_the_local_day(day: date) -> None:
    start, end = local_day_bounds(day, SANTIAGO)
    ends = interval_ends(day, SANTIAGO)
    assert len(ends) in (92, 96, 100)
    assert ends[-1] == end
    assert ends[0] - timedelta(minutes=15) == start
    assert to_local(start, SANTIAGO).date() == day
    assert to_local(end - timedelta(seconds=1), SANTIAGO).date() == day
    assert to_local(end, SANTIAGO).date() == day + timedelta(days=1)


@pytest.mark.parametrize(
    ("windows", "iana"),
    [
        ("Pacific SA Standard Time", "America/Santiago"),
        ("Magallanes Standard Time", "America/Punta_Arenas"),
        ("Easter Island Standard Time", "Pacific/Easter"),
        ("Greenwich Standard Time", "Atlantic/Reykjavik"),
        ("UTC", "Etc/UTC"),
        ("Argentina Standard Time", "America/Argentina/Buenos_Aires"),
        ("W. Europe Standard Time", "Europe/Berlin"),
        ("Tokyo Standard Time", "Asia/Tokyo"),
        ("  pacific sa standard time ", "America/Santiago"),
        ("America/Santiago", "America/Santiago"),
        ("Europe/Rome", "Europe/Rome"),
    ],
)
def test_windows_time_zone_to_iana(windows: str, iana: str) -> None:
    assert windows_time_zone_to_iana(windows) == iana


def test_every_windows_mapping_targets_a_pinned_zone() -> None:
    for windows, iana in WINDOWS_TO_IANA.items():
        assert zone(iana).key == iana, windows


def test_unknown_windows_id_lists_accepted_forms() -> None:
    with pytest.raises(UnknownTimeZone) as caught:
        windows_time_zone_to_iana("Chile Standard Time")
    message = str(caught.value)
    assert "'Chile Standard Time'" in message
    assert "Windows time-zone id" in message
    assert "IANA" in message


def test_santiago_transition_table_2020_2030() -> None:
    table = dst_transitions(SANTIAGO, 2020, 2030)
    assert len(table) == 22
    assert all(item.time_zone == SANTIAGO for item in table)
    assert [item.at_utc for item in table] == sorted(item.at_utc for item in table)
    assert DstTransition(SANTIAGO, datetime(2025, 4, 6, 3, tzinfo=UTC), -180, -240, False) in table
    assert DstTransition(SANTIAGO, datetime(2025, 9, 7, 4, tzinfo=UTC), -240, -180, True) in table
    assert DstTransition(SANTIAGO, datetime(2022, 9, 11, 4, tzinfo=UTC), -240, -180, True) in table
    for item in table:
        local_month = to_local(item.at_utc, SANTIAGO).month
        if item.is_dst_after:
            assert (local_month, item.offset_before_minutes, item.offset_after_minutes) == (
                9,
                -240,
                -180,
            )
        else:
            assert (local_month, item.offset_before_minutes, item.offset_after_minutes) == (
                4,
                -180,
                -240,
            )


def test_transitions_agree_with_offsets() -> None:
    for item in dst_transitions(SANTIAGO, 2020, 2030):
        before = item.at_utc - timedelta(seconds=1)
        assert utc_offset_minutes(before, SANTIAGO) == item.offset_before_minutes
        assert utc_offset_minutes(item.at_utc, SANTIAGO) == item.offset_after_minutes


def test_transitions_in_a_single_year_and_none_for_punta_arenas() -> None:
    assert [t.at_utc.month for t in dst_transitions(SANTIAGO, 2025, 2025)] == [4, 9]
    assert dst_transitions(PUNTA_ARENAS, 2017, 2030) == []
    # Magallanes left the national DST in December 2016: the last change is in range 2016.
    assert [t.at_utc.month for t in dst_transitions(PUNTA_ARENAS, 2016, 2016)] == [5, 8, 12]


def test_transition_range_is_validated() -> None:
    with pytest.raises(ValueError, match="after"):
        dst_transitions(SANTIAGO, 2030, 2020)
    with pytest.raises(ValueError, match=r"1900\.\.2999"):
        time_zone_info(SANTIAGO, 1, 2020)


def test_time_zone_info() -> None:
    assert time_zone_info(SANTIAGO, 2020, 2030) == TimeZoneInfo(SANTIAGO, -240, True)
    assert time_zone_info(PUNTA_ARENAS, 2020, 2030) == TimeZoneInfo(PUNTA_ARENAS, -180, False)
    assert time_zone_info("Pacific/Easter", 2020, 2030) == TimeZoneInfo(
        "Pacific/Easter", -360, True
    )
    assert time_zone_info("Etc/UTC", 2020, 2030) == TimeZoneInfo("Etc/UTC", 0, False)
