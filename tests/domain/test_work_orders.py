from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smmc.domain.calendar import WorkingDayCalendar
from smmc.domain.time import to_local
from smmc.domain.work_orders import (
    FINAL_STATES,
    TRANSITIONS,
    VIEWS,
    ActivityType,
    Category,
    InvalidTransition,
    InvalidWorkOrder,
    Origin,
    Outcome,
    PolicyError,
    State,
    Target,
    View,
    backoff_bounds,
    backoff_delay,
    check_transition,
    decayed_priority,
    decide,
    earliest_start,
    load_policies,
    parse_activity_type,
    parse_target_csv,
    validate_reason,
)

POLICIES = load_policies()
SANTIAGO = "America/Santiago"


def test_every_activity_has_a_shipped_policy() -> None:
    for activity in ActivityType:
        policy = POLICIES[activity]
        assert 0 <= policy.priority <= 9
        assert policy.max_attempts >= 1
    assert POLICIES[ActivityType.DISCONNECT].working_days_only
    assert not POLICIES[ActivityType.DISCONNECT].idempotent
    assert POLICIES[ActivityType.MASTER_SYNC].target is Target.CONCENTRATOR
    assert POLICIES[ActivityType.READING].category is Category.COMMERCIAL


def test_override_file_changes_only_the_given_fields(tmp_path: Path) -> None:
    override = tmp_path / "policies.yaml"
    override.write_text("Disconnect:\n  max_attempts: 7\n  duration: 60\n")
    book = load_policies(override)
    assert book[ActivityType.DISCONNECT].max_attempts == 7
    assert book[ActivityType.DISCONNECT].duration == timedelta(seconds=60)
    assert book[ActivityType.DISCONNECT].priority == POLICIES[ActivityType.DISCONNECT].priority
    assert book[ActivityType.READING] == POLICIES[ActivityType.READING]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Nope:\n  priority: 1\n", "unknown activity type 'Nope'"),
        ("Reading:\n  priority: 10\n", "Reading: priority 10 is outside 0..9"),
        ("Reading:\n  colour: red\n", "Reading: unknown policy field"),
        ("Reading:\n  max_attempts: 0\n", "max_attempts 0 is below 1"),
        ("Reading:\n  idempotent: 1\n", "idempotent must be true or false"),
        ("Reading:\n  backoff_cap: 1\n", "backoff_base <= backoff_cap"),
        ("Reading: [1, 2\n", "not valid YAML"),
        ("- 1\n", "must map activity types"),
    ],
)
def test_bad_override_names_activity_and_field(tmp_path: Path, text: str, message: str) -> None:
    override = tmp_path / "bad.yaml"
    override.write_text(text)
    with pytest.raises(PolicyError, match=message.replace("(", r"\(").replace(".", r"\.")):
        load_policies(override)


def test_transitions_as_data() -> None:
    check_transition(State.PENDING, State.RUNNING)
    check_transition(State.RUNNING, State.RETRY)
    check_transition(State.RETRY, State.RUNNING)
    assert {State.COMPLETED, State.FAILED, State.EXPIRED, State.CANCELLED} == FINAL_STATES
    for final in FINAL_STATES:
        for wanted in State:
            with pytest.raises(InvalidTransition):
                check_transition(final, wanted)
    with pytest.raises(InvalidTransition, match="RUNNING to CANCELLED"):
        check_transition(State.RUNNING, State.CANCELLED)
    with pytest.raises(InvalidTransition):
        check_transition(State.PENDING, State.COMPLETED)
    assert set(TRANSITIONS) == set(State)


def test_activity_aliases() -> None:
    assert parse_activity_type("CORTE") is ActivityType.DISCONNECT
    assert parse_activity_type("Reposicion") is ActivityType.CONNECT
    assert parse_activity_type("metersync") is ActivityType.METER_SYNC
    with pytest.raises(InvalidWorkOrder, match="'Dance' is unknown"):
        parse_activity_type("Dance")


def test_reasons() -> None:
    assert validate_reason(ActivityType.DISCONNECT, "losses") == "losses"
    assert validate_reason(ActivityType.CONNECT, None) == "after_payment"
    assert validate_reason(ActivityType.READING, None) is None
    with pytest.raises(InvalidWorkOrder, match="needs one of"):
        validate_reason(ActivityType.DISCONNECT, None)
    with pytest.raises(InvalidWorkOrder, match="not a disconnect reason"):
        validate_reason(ActivityType.DISCONNECT, "after_payment")
    with pytest.raises(InvalidWorkOrder, match="take no reason"):
        validate_reason(ActivityType.READING, "losses")


def test_backoff_doubles_up_to_the_cap() -> None:
    policy = replace(
        POLICIES[ActivityType.READING],
        backoff_base=timedelta(seconds=10),
        backoff_cap=timedelta(seconds=70),
        backoff_jitter=0.0,
    )
    delays = [backoff_delay(n, policy, 0.5).total_seconds() for n in range(1, 6)]
    assert delays == [10, 20, 40, 70, 70]


@given(
    attempt=st.integers(1, 200),
    fraction=st.floats(0, 1),
    base=st.integers(0, 3600),
    extra=st.integers(0, 86400),
    jitter=st.floats(0, 1),
)
def test_backoff_stays_within_bounds(
    attempt: int, fraction: float, base: int, extra: int, jitter: float
) -> None:
    policy = replace(
        POLICIES[ActivityType.READING],
        backoff_base=timedelta(seconds=base),
        backoff_cap=timedelta(seconds=base + extra),
        backoff_jitter=jitter,
    )
    low, high = backoff_bounds(attempt, policy)
    delay = backoff_delay(attempt, policy, fraction)
    assert timedelta(0) <= low <= delay <= high <= policy.backoff_cap
    expected = min(base + extra, base * 2.0 ** (attempt - 1))
    assert abs(high.total_seconds() - expected) < 1e-3


def test_backoff_rejects_bad_arguments() -> None:
    policy = POLICIES[ActivityType.READING]
    with pytest.raises(ValueError, match="start at 1"):
        backoff_bounds(0, policy)
    with pytest.raises(ValueError, match="fraction"):
        backoff_delay(1, policy, 1.5)


@given(priority=st.integers(0, 9), attempt=st.integers(1, 50), decay=st.integers(0, 5))
def test_priority_decays_and_never_goes_below_zero(priority: int, attempt: int, decay: int) -> None:
    policy = replace(POLICIES[ActivityType.READING], priority_decay=decay)
    decayed = decayed_priority(priority, attempt, policy)
    assert 0 <= decayed <= priority
    assert decayed == max(0, priority - decay * attempt)


NOW = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)


def _decide(outcome: Outcome, attempt: int, deadline: datetime = NOW + timedelta(days=1)) -> State:
    return decide(
        outcome,
        attempt=attempt,
        max_attempts=3,
        base_priority=6,
        policy=POLICIES[ActivityType.READING],
        now=NOW,
        deadline=deadline,
        fraction=0.5,
    ).state


def test_decide() -> None:
    assert _decide(Outcome.success({"v": 1}), 1) is State.COMPLETED
    assert _decide(Outcome.failure("x", retryable=False), 1) is State.FAILED
    assert _decide(Outcome.failure("x", retryable=True), 1) is State.RETRY
    assert _decide(Outcome.failure("x", retryable=True), 3) is State.FAILED
    assert _decide(Outcome.failure("x", retryable=True), 1, NOW + timedelta(seconds=1)) is (
        State.EXPIRED
    )
    retry = decide(
        Outcome.failure("x", retryable=True),
        attempt=2,
        max_attempts=3,
        base_priority=6,
        policy=POLICIES[ActivityType.READING],
        now=NOW,
        deadline=NOW + timedelta(days=1),
        fraction=1.0,
    )
    assert retry.retry_at == NOW + timedelta(seconds=60)
    assert retry.priority == 4


CALENDAR = WorkingDayCalendar()


def test_disconnect_on_a_working_day_runs_at_once() -> None:
    monday_noon = datetime(2025, 3, 3, 15, 0, tzinfo=UTC)
    policy = POLICIES[ActivityType.DISCONNECT]
    assert earliest_start(monday_noon, policy, CALENDAR, SANTIAGO) == monday_noon


def test_disconnect_on_a_holiday_waits_for_the_next_working_day() -> None:
    # Friday 18 April 2025 is Good Friday; the next working day is Monday 21 April.
    good_friday = datetime(2025, 4, 18, 15, 0, tzinfo=UTC)
    start = earliest_start(good_friday, POLICIES[ActivityType.DISCONNECT], CALENDAR, SANTIAGO)
    assert start == datetime(2025, 4, 21, 12, 0, tzinfo=UTC)  # 08:00 local, UTC-4
    special = earliest_start(
        good_friday, POLICIES[ActivityType.DISCONNECT], CALENDAR, SANTIAGO, special=True
    )
    assert special == good_friday
    reading = earliest_start(good_friday, POLICIES[ActivityType.READING], CALENDAR, SANTIAGO)
    assert reading == good_friday


def test_working_day_uses_local_date() -> None:
    # Saturday 01:30 UTC is still Friday 22:30 in Santiago (UTC-3 in March): a working day.
    early = datetime(2025, 3, 8, 1, 30, tzinfo=UTC)
    assert earliest_start(early, POLICIES[ActivityType.CONNECT], CALENDAR, SANTIAGO) == early
    sunday = datetime(2025, 3, 9, 15, 0, tzinfo=UTC)
    start = earliest_start(
        sunday, POLICIES[ActivityType.CONNECT], CALENDAR, SANTIAGO, day_start=time(9, 30)
    )
    assert start == datetime(2025, 3, 10, 12, 30, tzinfo=UTC)


@given(st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2026, 12, 31)))
def test_breaker_orders_always_start_on_a_working_day(naive: datetime) -> None:
    requested = naive.replace(tzinfo=UTC)
    start = earliest_start(requested, POLICIES[ActivityType.DISCONNECT], CALENDAR, SANTIAGO)
    assert start >= requested
    local = to_local(start, SANTIAGO)
    assert CALENDAR.is_working_day(local.date())
    assert start - requested < timedelta(days=10)


def test_views_as_predicates() -> None:
    pending = VIEWS[View.COMMERCIAL_PENDING]
    assert pending.matches(State.RETRY, ActivityType.DISCONNECT, Origin.LEGACY, POLICIES)
    assert not pending.matches(State.COMPLETED, ActivityType.DISCONNECT, Origin.LEGACY, POLICIES)
    assert not pending.matches(State.PENDING, ActivityType.METER_SYNC, Origin.LEGACY, POLICIES)
    technical = VIEWS[View.TECHNICAL_COMPLETED]
    assert technical.matches(State.FAILED, ActivityType.METER_SYNC, Origin.OPERATOR, POLICIES)
    scheduled = VIEWS[View.SCHEDULED_PENDING]
    assert scheduled.matches(State.PENDING, ActivityType.READING, Origin.SCHEDULER, POLICIES)
    assert not scheduled.matches(State.PENDING, ActivityType.READING, Origin.OPERATOR, POLICIES)
    provisioning = VIEWS[View.PROVISIONING]
    assert provisioning.matches(State.NEW, ActivityType.COMMISSIONING, Origin.OPERATOR, POLICIES)
    assert not provisioning.matches(State.NEW, ActivityType.READING, Origin.OPERATOR, POLICIES)
    assert set(VIEWS) == set(View)


def test_view_activity_sets() -> None:
    commercial = VIEWS[View.COMMERCIAL_PENDING].activity_set(POLICIES)
    assert commercial == frozenset(
        {ActivityType.READING, ActivityType.DISCONNECT, ActivityType.CONNECT}
    )
    assert VIEWS[View.PENDING].activity_set(POLICIES) is None
    assert VIEWS[View.PROVISIONING].activity_set(POLICIES) == frozenset(
        {ActivityType.COMMISSIONING, ActivityType.DECOMMISSIONING}
    )


def test_target_csv_rows_and_errors() -> None:
    text = (
        "podname;serialnumber\n388377;UAAEEDN17305249807\n\n;UAAEEDN1\n388374;\n;\na;b;c\n"
        "P9,S9\nP\x00;S\n"
    )
    targets, errors = parse_target_csv(text)
    assert [(t.line, t.pod, t.serial) for t in targets] == [
        (2, "388377", "UAAEEDN17305249807"),
        (4, None, "UAAEEDN1"),
        (5, "388374", None),
        (8, "P9", "S9"),
    ]
    assert [(e.line, e.reason.split(" ")[0]) for e in errors] == [
        (6, "both"),
        (7, "expected"),
        (9, "NUL"),
    ]


_CELL = st.text(alphabet=st.characters(categories=["L", "N"]), min_size=1, max_size=20)


@given(st.lists(st.tuples(_CELL, _CELL), max_size=30))
def test_target_csv_round_trips_generated_rows(rows: list[tuple[str, str]]) -> None:
    text = "".join(f"{pod};{serial}\n" for pod, serial in rows)
    targets, errors = parse_target_csv(text)
    if rows and rows[0][0].lower() in ("podname", "pod"):
        rows = rows[1:]
    assert errors == []
    assert [(t.pod, t.serial) for t in targets] == rows


@given(st.text(max_size=200))
def test_target_csv_never_raises_and_accounts_for_every_line(text: str) -> None:
    targets, errors = parse_target_csv(text)
    lines = {t.line for t in targets} | {e.line for e in errors}
    assert len(lines) == len(targets) + len(errors)
