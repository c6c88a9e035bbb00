"""MeterModel invariants: registers, load profile, billing, clock, breaker, status, firmware."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smmc.domain.time import interval_count, local_day_bounds, to_local
from smmc.sim.anomalies import Anomaly, AnomalyKind
from smmc.sim.consumption import HOUSEHOLD_TYPES, ConsumptionModel
from smmc.sim.fleet import default_fleet
from smmc.sim.meter_model import (
    ExtendedWord1,
    LoadProfileStatus,
    MeterModel,
    MeterModelError,
    NormalWord1,
    Registers,
    _instant,
)

TZ = "America/Santiago"
INSTALLED = datetime(2026, 3, 30, 4, 0, tzinfo=UTC)
SEEDS = st.integers(min_value=0, max_value=2**64 - 1)
HOUSEHOLDS = st.sampled_from(sorted(HOUSEHOLD_TYPES))
OFFSETS = st.lists(st.integers(min_value=0, max_value=3 * 86400), min_size=2, max_size=6)


def model(seed: int = 7, **kwargs: object) -> MeterModel:
    return MeterModel("UAAEEDN17700000001", seed, installed_at=INSTALLED, **kwargs)  # type: ignore[arg-type]


def energies(registers: Registers) -> list[tuple[tuple[int, ...], int]]:
    return [
        (r.tiers, r.total)
        for r in (
            registers.active_import,
            registers.active_export,
            registers.reactive_import,
            registers.reactive_export,
        )
    ]


@settings(max_examples=40, deadline=None)
@given(SEEDS, HOUSEHOLDS, st.booleans(), st.sampled_from([0.0, 3.5]), OFFSETS)
def test_registers_are_monotonic_integers_and_tiers_sum_to_total(
    seed: int, household: str, polyphase: bool, pv: float, offsets: list[int]
) -> None:
    meter = model(seed, household=household, polyphase=polyphase, pv_kwp=pv)
    previous = None
    for offset in sorted(offsets):
        values = energies(meter.registers(INSTALLED + timedelta(seconds=offset)))
        for tiers, total in values:
            assert all(isinstance(v, int) and v >= 0 for v in tiers)
            assert sum(tiers) == total
        if previous is not None:
            for (tiers, total), (old_tiers, old_total) in zip(values, previous, strict=True):
                assert total >= old_total
                assert all(new >= old for new, old in zip(tiers, old_tiers, strict=True))
        previous = values


@settings(max_examples=25, deadline=None)
@given(SEEDS, OFFSETS)
def test_reading_backwards_gives_the_same_values(seed: int, offsets: list[int]) -> None:
    forward = model(seed)
    readings = {o: forward.registers(INSTALLED + timedelta(seconds=o)) for o in sorted(offsets)}
    for offset in sorted(offsets, reverse=True):
        assert forward.registers(INSTALLED + timedelta(seconds=offset)) == readings[offset]


@settings(max_examples=25, deadline=None)
@given(
    SEEDS,
    st.integers(min_value=0, max_value=86400),
    st.integers(min_value=900, max_value=86400),
    st.lists(st.integers(min_value=0, max_value=86400), min_size=1, max_size=5),
)
def test_open_breaker_stops_import_and_export(
    seed: int, open_at: int, length: int, probes: list[int]
) -> None:
    meter = model(seed, pv_kwp=3.0)
    opened = INSTALLED + timedelta(seconds=open_at)
    closed = opened + timedelta(seconds=length)
    meter.disconnect(opened)
    meter.reconnect(closed)
    at_open = meter.registers(opened)
    for probe in probes:
        moment = opened + timedelta(seconds=min(probe, length))
        assert not meter.breaker_closed(moment) or moment == closed
        assert meter.registers(moment).active_import == at_open.active_import
        assert meter.registers(moment).active_export == at_open.active_export
    later = meter.registers(closed + timedelta(hours=6))
    flowed = later.active_import.total + later.active_export.total
    assert flowed > at_open.active_import.total + at_open.active_export.total


def test_consumption_with_breaker_open_anomaly_keeps_counting() -> None:
    start = INSTALLED + timedelta(days=1)
    end = start + timedelta(hours=24)
    anomaly = Anomaly(AnomalyKind.CONSUMPTION_WITH_BREAKER_OPEN, start, end)
    meter = model(3, anomalies=(anomaly,))
    assert not meter.breaker_closed(start + timedelta(hours=1))
    inside = meter.registers(end).active_import.total - meter.registers(start).active_import.total
    assert inside > 1000
    honest = model(3)
    honest.disconnect(start)
    honest.reconnect(end)
    assert honest.registers(end).active_import == honest.registers(start).active_import
    words = meter.status_words(start + timedelta(minutes=1))
    assert words.extended1 & ExtendedWord1.INTA
    assert not model(3).status_words(start).extended1 & ExtendedWord1.INTA


@pytest.mark.parametrize("drift_ppm", [0.0, 300.0, -300.0])
def test_dst_days_have_92_and_100_rows_on_the_meter_local_day(drift_ppm: float) -> None:
    meter = model(5, drift_ppm=drift_ppm)
    counts = {}
    for day in (date(2026, 4, 4), date(2026, 4, 6), date(2026, 9, 6)):
        rows = meter.load_profile_day(day)
        counts[day] = len(rows)
        assert len(rows) == interval_count(day, TZ)
        assert all(row.clock.date() == day or row.clock.time().hour == 0 for row in rows)
        assert all(row.clock.minute % 15 == 0 and row.clock.second == 0 for row in rows)
    assert counts == {date(2026, 4, 4): 100, date(2026, 4, 6): 96, date(2026, 9, 6): 92}


def test_load_profile_sums_to_the_register_difference_over_the_day() -> None:
    meter = model(8, pv_kwp=2.0, drift_ppm=150.0)
    day = date(2026, 4, 8)
    rows = meter.load_profile_day(day)
    first_start = rows[0].captured_utc - (rows[1].captured_utc - rows[0].captured_utc)
    before = meter.registers(first_start)
    after = meter.registers(rows[-1].captured_utc)
    assert sum(r.active_import_wh for r in rows) == (
        after.active_import.total - before.active_import.total
    )
    assert sum(r.active_export_wh for r in rows) == (
        after.active_export.total - before.active_export.total
    )


def test_daily_capture_happens_at_local_midnight_of_the_drifting_clock() -> None:
    fast = model(9, drift_ppm=500.0)  # 43.2 s/day fast
    day = date(2026, 4, 2)
    row = fast.billing_row(day)
    assert row is not None
    midnight = local_day_bounds(day + timedelta(days=1), TZ)[0]
    assert row.clock == to_local(midnight, TZ)
    assert row.clock.hour == 0
    assert row.clock.minute == 0
    assert fast.meter_time(row.captured_utc) == midnight
    assert row.captured_utc < midnight  # a fast clock reaches midnight early
    assert timedelta(seconds=100) < midnight - row.captured_utc < timedelta(seconds=200)
    assert row.registers == fast.registers(row.captured_utc)
    exact = model(9).billing_row(day)
    assert exact is not None
    assert exact.captured_utc == midnight


def test_same_seed_same_values_different_seed_different_values() -> None:
    day = date(2026, 4, 3)
    one = model(100).load_profile_day(day)
    assert model(100).load_profile_day(day) == one
    assert model(101).load_profile_day(day) != one
    at = INSTALLED + timedelta(days=2)
    assert model(100).registers(at) == model(100).registers(at)
    assert model(100).registers(at) != model(101).registers(at)


def test_export_only_with_pv_or_the_unauthorised_pv_anomaly() -> None:
    start, end = INSTALLED, INSTALLED + timedelta(days=3)
    plain = model(12)
    assert plain.registers(end).active_export == plain.registers(start).active_export
    pv = model(12, pv_kwp=4.0)
    assert pv.registers(end).active_export.total > pv.registers(start).active_export.total
    rogue_from = INSTALLED + timedelta(days=1)
    anomaly = Anomaly(AnomalyKind.EXPORT_WITHOUT_NET_BILLING, rogue_from, None, 40)
    rogue = model(12, anomalies=(anomaly,))
    assert rogue.registers(rogue_from).active_export == plain.registers(rogue_from).active_export
    assert (
        rogue.registers(end).active_export.total > rogue.registers(rogue_from).active_export.total
    )


def test_clock_drift_set_clock_and_ord() -> None:
    meter = model(1, drift_ppm=1000.0, clock_tolerance_s=60.0)  # 86.4 s/day
    assert meter.clock_error(INSTALLED) == timedelta(0)
    later = INSTALLED + timedelta(days=1)
    assert abs(meter.clock_error(later).total_seconds() - 86.4) < 1e-3
    assert meter.status_words(later).normal1 & NormalWord1.ORD
    assert not meter.status_words(INSTALLED + timedelta(hours=12)).normal1 & NormalWord1.ORD
    meter.set_clock(later, later)
    assert abs(meter.clock_error(later).total_seconds()) < 1e-3
    assert not meter.status_words(later).normal1 & NormalWord1.ORD
    rows = meter.load_profile(later - timedelta(minutes=30), later + timedelta(minutes=30))
    adjusted = [r for r in rows if r.status & LoadProfileStatus.CLOCK_ADJUSTED]
    assert len(adjusted) == 1


def test_outage_zeroes_energy_raises_pup_until_cleared() -> None:
    meter = model(4)
    start = INSTALLED + timedelta(hours=10)
    end = start + timedelta(hours=2)
    meter.power_outage(start, end)
    assert meter.registers(end).active_import == meter.registers(start).active_import
    assert not meter.status_words(start - timedelta(seconds=1)).normal1 & NormalWord1.PUP
    assert meter.status_words(start + timedelta(minutes=5)).normal1 & NormalWord1.PUP
    assert meter.status_words(end + timedelta(hours=5)).normal1 & NormalWord1.PUP
    meter.clear_alarms(end + timedelta(hours=6))
    assert not meter.status_words(end + timedelta(hours=7)).normal1 & NormalWord1.PUP
    rows = meter.measurands(start, end)
    assert rows
    assert all(v == 0.0 for row in rows for v in row.voltages)
    lp = meter.load_profile(start, end)
    assert all(r.status & LoadProfileStatus.POWER_DOWN for r in lp)


def test_alarm_masks_filter_the_status_words() -> None:
    meter = model(4, drift_ppm=2000.0)
    later = INSTALLED + timedelta(days=1)
    assert meter.alarm_register(later).normal1 & NormalWord1.ORD
    meter.alarm_masks = (0xFFFF & ~NormalWord1.ORD, 0xFFFF, 0xFFFF, 0xFFFF)
    assert not meter.alarm_register(later).normal1 & NormalWord1.ORD
    assert meter.status_words(later).normal1 & NormalWord1.ORD


def test_capture_period_is_settable() -> None:
    meter = model(6)
    switch = datetime(2026, 4, 2, 3, 0, tzinfo=UTC)  # local midnight, 2 April
    meter.set_capture_period(60, switch)
    assert meter.capture_minutes(switch - timedelta(hours=1)) == 15
    assert meter.capture_minutes(switch) == 60
    assert len(meter.load_profile_day(date(2026, 4, 1))) == 96
    assert len(meter.load_profile_day(date(2026, 4, 2))) == 24
    assert len(meter.load_profile_day(date(2026, 4, 4))) == 25
    with pytest.raises(MeterModelError, match="divide 1440"):
        meter.set_capture_period(7, switch)


def test_firmware_version_changes_after_activation() -> None:
    meter = model(2, firmware="1.0.0")
    at = INSTALLED + timedelta(days=1)
    meter.activate_firmware("1.1.0", at)
    assert meter.firmware_version(at - timedelta(seconds=1)) == "1.0.0"
    assert meter.firmware_version(at) == "1.1.0"


def test_naive_times_and_reads_before_installation_are_refused() -> None:
    meter = model(2)
    with pytest.raises(MeterModelError, match="timezone-aware"):
        meter.registers(datetime(2026, 4, 1))
    with pytest.raises(MeterModelError, match="before the meter was installed"):
        meter.registers(INSTALLED - timedelta(days=1))


EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["open", "close", "outage", "set_clock", "capture"]),
        st.integers(min_value=0, max_value=2 * 86400),
        st.integers(min_value=-3600, max_value=3600),
    ),
    max_size=6,
)


@settings(max_examples=40, deadline=None)
@given(SEEDS, st.sampled_from([0.0, -80.0, 400.0]), EVENTS, OFFSETS)
def test_invariants_hold_under_breaker_outage_and_clock_events(
    seed: int, drift: float, events: list[tuple[str, int, int]], offsets: list[int]
) -> None:
    meter = model(seed, pv_kwp=2.5, drift_ppm=drift)
    for action, offset, amount in events:
        at = INSTALLED + timedelta(seconds=offset)
        if action == "open":
            meter.disconnect(at)
        elif action == "close":
            meter.reconnect(at)
        elif action == "outage":
            meter.power_outage(at, at + timedelta(seconds=abs(amount)))
        elif action == "set_clock":
            meter.set_clock(at, at + timedelta(seconds=amount))
        else:
            meter.set_capture_period(60 if amount > 0 else 30, at)
    previous = None
    for offset in sorted(offsets):
        moment = INSTALLED + timedelta(seconds=offset)
        values = energies(meter.registers(moment))
        for tiers, total in values:
            assert sum(tiers) == total
        if previous is not None:
            for (tiers, total), (old_tiers, old_total) in zip(values, previous, strict=True):
                assert total >= old_total
                assert all(new >= old for new, old in zip(tiers, old_tiers, strict=True))
        previous = values
    day = date(2026, 3, 31)
    rows = meter.load_profile_day(day)
    assert all(r.active_import_wh >= 0 and r.active_export_wh >= 0 for r in rows)
    assert [r.captured_utc for r in rows] == sorted(r.captured_utc for r in rows)


def apply_events(meter: MeterModel, events: list[tuple[str, int, int]]) -> None:
    for action, offset, amount in events:
        at = INSTALLED + timedelta(seconds=offset)
        if action == "open":
            meter.disconnect(at)
        elif action == "close":
            meter.reconnect(at)
        elif action == "outage":
            meter.power_outage(at, at + timedelta(seconds=abs(amount)))
        elif action == "set_clock":
            meter.set_clock(at, at + timedelta(seconds=amount * 2))
        else:
            meter.set_capture_period(60 if amount > 0 else 30, at)


@settings(max_examples=30, deadline=None)
@given(SEEDS, EVENTS, OFFSETS)
def test_events_after_reads_give_the_same_values_as_events_first(
    seed: int, events: list[tuple[str, int, int]], offsets: list[int]
) -> None:
    late = model(seed, pv_kwp=1.5)
    for offset in offsets:  # reads in any order fill checkpoints and day anchors
        late.registers(INSTALLED + timedelta(seconds=offset))
    apply_events(late, events)
    early = model(seed, pv_kwp=1.5)
    apply_events(early, events)
    for offset in sorted(offsets, reverse=True):
        moment = INSTALLED + timedelta(seconds=offset)
        assert late.registers(moment) == early.registers(moment)


def test_clock_set_forward_over_midnight_still_closes_the_day() -> None:
    meter = model(13)
    day = date(2026, 4, 2)
    midnight = local_day_bounds(day + timedelta(days=1), TZ)[0]
    set_at = midnight - timedelta(minutes=20)
    meter.set_clock(set_at, midnight + timedelta(minutes=10))
    row = meter.billing_row(day)
    assert row is not None
    assert row.captured_utc == set_at
    assert row.clock == to_local(midnight + timedelta(minutes=10), TZ)
    rows = meter.load_profile(midnight - timedelta(hours=1), midnight + timedelta(hours=1))
    adjusted = [r for r in rows if r.status & LoadProfileStatus.CLOCK_ADJUSTED]
    assert [r.captured_utc for r in adjusted] == [set_at]
    assert len(rows) == 7  # 23:15, 23:30, 23:45 (taken at the set), 00:15 … 01:00; no 00:00
    total = sum(r.active_import_wh for r in rows)
    first_start = meter.true_seconds((midnight - timedelta(minutes=60)).timestamp())
    assert first_start is not None
    last = rows[-1].captured_utc
    span = (
        meter.registers(last).active_import.total
        - meter.registers(datetime.fromtimestamp(first_start, UTC)).active_import.total
    )
    assert total == span  # no energy lost or counted twice across the jump


def test_local_time_follows_the_meter_time_zone() -> None:
    # Punta Arenas keeps UTC-3 all year: its winter peak starts an hour earlier in UTC.
    santiago = model(21)
    magallanes = model(21, time_zone="America/Punta_Arenas")
    day = date(2026, 6, 10)
    assert len(magallanes.load_profile_day(day)) == 96
    first = magallanes.load_profile_day(day)[0]
    assert first.captured_utc == datetime(2026, 6, 10, 3, 15, tzinfo=UTC)
    assert santiago.load_profile_day(day)[0].captured_utc == datetime(
        2026, 6, 10, 4, 15, tzinfo=UTC
    )
    peak_start = datetime(
        2026, 6, 10, 21, 0, tzinfo=UTC
    )  # 18:00 in Punta Arenas, 17:00 in Santiago
    after = peak_start + timedelta(hours=1)

    def t1(meter: MeterModel) -> int:
        return (
            meter.registers(after).active_import.tiers[0]
            - meter.registers(peak_start).active_import.tiers[0]
        )

    assert t1(magallanes) > 0
    assert t1(santiago) == 0


def _everything(m: MeterModel, day: date) -> tuple[object, ...]:
    """What a head-end reads of one local day: profiles, closure, registers during the day."""
    start, end = local_day_bounds(day, TZ)
    probes = [start + (end - start) * k / 7 + timedelta(seconds=k * 37.3) for k in range(1, 7)]
    return (
        m.load_profile_day(day),
        m.measurands(start, end),
        m.billing_row(day),
        [energies(m.registers(at)) for at in probes],
    )


@pytest.mark.parametrize(
    "day",
    [date(2026, 4, 4), date(2026, 9, 6), date(2026, 7, 14), date(2026, 12, 24)],
    ids=["fall-back", "spring-forward", "winter", "summer"],
)
def test_array_fast_path_gives_the_reference_values(
    day: date, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slots summed as arrays (``_simple`` history) against the slot-by-slot reference, for
    a sample of the default fleet's meters (drifting clocks, PV, polyphase, anomalies) on
    both DST days and two ordinary ones."""
    now = local_day_bounds(day + timedelta(days=2), TZ)[0]
    plan = default_fleet().sized(4, 40, 10).build(now)
    sample = range(0, len(plan), 3)
    fast = [_everything(plan.meter_model(i), day) for i in sample]
    assert sum(plan.meter_model(i)._simple() for i in sample) > len(sample) // 2
    with monkeypatch.context() as patched:
        patched.setattr(MeterModel, "_simple", lambda self: False)
        reference = [_everything(plan.meter_model(i), day) for i in sample]
    assert fast == reference


@settings(max_examples=60, deadline=None)
@given(
    SEEDS,
    HOUSEHOLDS,
    st.booleans(),
    st.sampled_from([0.0, 2.5, 6.0]),
    st.integers(min_value=19_000 * 96, max_value=22_000 * 96),
    st.integers(min_value=1, max_value=500),
)
def test_slot_block_equals_slot_by_slot(
    seed: int, household: str, polyphase: bool, pv: float, first: int, count: int
) -> None:
    consumption = ConsumptionModel(seed, HOUSEHOLD_TYPES[household], polyphase, pv, TZ)
    block = consumption.slot_values_block(first, count).tolist()
    assert block == [list(consumption.slot_values(s)) for s in range(first, first + count)]


@settings(max_examples=200, deadline=None)
@given(
    st.floats(min_value=-3000.0, max_value=3000.0),
    st.sampled_from([1, 5, 15, 60]),
    st.floats(min_value=-86400.0, max_value=4 * 86400.0),
    st.floats(min_value=0.0, max_value=3 * 86400.0),
)
def test_steady_captures_are_the_stepped_ones(
    drift_ppm: float, minutes: int, offset: float, length: float
) -> None:
    """One clock segment and one capture period: the boundaries as one array give what
    the walk boundary by boundary gives, to the last bit of every instant."""
    meter = model(drift_ppm=drift_ppm, capture_minutes=minutes)
    low = INSTALLED.timestamp() + offset
    assert meter._steady_captures(low, low + length) == meter._stepped_captures(low, low + length)


@settings(max_examples=30, deadline=None)
@given(
    SEEDS,
    st.one_of(st.integers(0, 3 * 86400), st.integers(0, 3 * 96).map(lambda n: n * 900)),
    st.sampled_from([0.0, 3.5]),
)
def test_rogue_pv_in_arrays_gives_the_reference_values(
    seed: int, since: int, pv_kwp: float
) -> None:
    """Unauthorised PV from any instant (a slot's start or inside one): the arrays spliced
    at its first slot against the slot-by-slot reference, for the day's profile, the
    closure and registers before and after it."""
    anomaly = Anomaly(
        AnomalyKind.EXPORT_WITHOUT_NET_BILLING, INSTALLED + timedelta(seconds=since), None, 6
    )
    day = date(2026, 4, 1)

    def everything() -> tuple[object, ...]:
        return _everything(model(seed, pv_kwp=pv_kwp, anomalies=(anomaly,)), day)

    fast = everything()
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(MeterModel, "_simple", lambda self: False)
        assert fast == everything()


@settings(max_examples=100, deadline=None)
@given(
    st.floats(min_value=-3000.0, max_value=3000.0),
    st.floats(min_value=0.0, max_value=10 * 86400.0),
    st.floats(min_value=0.0, max_value=86400.0),
)
def test_row_statuses_in_arrays_are_the_row_by_row_ones(
    drift_ppm: float, offset: float, length: float
) -> None:
    """A clock never set: the invalid-clock bits of all rows at once (over the tolerance
    from a few hours to days, over the DST change of 2026-04-05) are each row's."""
    meter = model(drift_ppm=drift_ppm)
    low = INSTALLED.timestamp() + offset
    captures = meter._captures(_instant(low), _instant(low + length))
    clocks = [meter._meter_local(m) for m, _, _ in captures]
    expected = [
        meter._row_status(start, end, clock)
        for (_, end, start), clock in zip(captures, clocks, strict=True)
    ]
    assert meter._row_statuses(captures, clocks) == expected
