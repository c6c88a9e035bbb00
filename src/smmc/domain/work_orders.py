"""Work orders: activity types, states and their transitions, per-activity policy, retry
backoff with priority decay, the working-day rule for connect/disconnect and the seed's
monitoring views.

Everything here is pure: the store persists it, the engine drives it. Policies are data
(``work_order_policies.yaml`` shipped with the package, overridable by a file) so retries,
priorities and durations change without a release.
"""

from __future__ import annotations

import csv
import functools
import importlib.resources
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from smmc.domain.calendar import WorkingDayCalendar
from smmc.domain.time import to_local, to_utc

__all__ = [
    "FINAL_STATES",
    "LEASABLE_STATES",
    "MAX_PRIORITY",
    "MIN_PRIORITY",
    "OPEN_STATES",
    "TRANSITIONS",
    "VIEWS",
    "ActivityType",
    "Category",
    "ConnectReason",
    "CsvRowError",
    "CsvTarget",
    "Decision",
    "DisconnectReason",
    "InvalidTransition",
    "InvalidWorkOrder",
    "Origin",
    "Outcome",
    "Policy",
    "PolicyBook",
    "PolicyError",
    "State",
    "Target",
    "View",
    "ViewSpec",
    "backoff_bounds",
    "backoff_delay",
    "check_transition",
    "decayed_priority",
    "decide",
    "earliest_start",
    "load_policies",
    "parse_activity_type",
    "parse_target_csv",
    "validate_reason",
]

MIN_PRIORITY = 0
MAX_PRIORITY = 9
WORKING_DAY_START = time(8, 0)


class InvalidWorkOrder(ValueError):
    """A work-order request that cannot be accepted; the message names the field and why."""


class InvalidTransition(ValueError):
    """A state change the work-order state machine does not allow."""

    def __init__(self, current: State, wanted: State) -> None:
        super().__init__(f"work order cannot go from {current.value} to {wanted.value}")
        self.current = current
        self.wanted = wanted


class PolicyError(ValueError):
    """A policy file or mapping with a missing, unknown or out-of-range field."""


class ActivityType(StrEnum):
    """Activity types as the seed reports spell them (plus the seed's Spanish aliases)."""

    READING = "Reading"
    METER_SYNC = "MeterSync"
    MASTER_SYNC = "MasterSync"
    METER_TECH_CONFIG = "MeterTechConfig"
    COMMISSIONING = "Commissioning"
    DECOMMISSIONING = "Decommissioning"
    DISCONNECT = "Disconnect"
    CONNECT = "Connect"
    STATUS_WORD_READ = "StatusWordRead"
    OUTAGE_CHECK = "OutageCheck"
    FIRMWARE_UPDATE = "FirmwareUpdate"
    CONCENTRATOR_MODIFICATION = "ConcentratorModification"
    COLLECTION = "Collection"  # scheduled: a concentrator's collected-data profiles, bulk
    METER_COLLECTION = "MeterCollection"  # scheduled: one point-to-point meter's profiles


_ACTIVITY_ALIASES: Mapping[str, ActivityType] = MappingProxyType(
    {
        "corte": ActivityType.DISCONNECT,
        "reposicion": ActivityType.CONNECT,
        "reposición": ActivityType.CONNECT,
        "concentratorsync": ActivityType.MASTER_SYNC,
        "selfdiagnostic": ActivityType.STATUS_WORD_READ,
        **{item.value.lower(): item for item in ActivityType},
    }
)


def parse_activity_type(text: str) -> ActivityType:
    """The activity named by ``text``: the seed's English names, any case, or CORTE/REPOSICION."""
    found = _ACTIVITY_ALIASES.get(text.strip().lower())
    if found is None:
        known = ", ".join(item.value for item in ActivityType)
        raise InvalidWorkOrder(f"activity type {text!r} is unknown; expected one of {known}")
    return found


class DisconnectReason(StrEnum):
    NON_PAYMENT = "non_payment"
    LOSSES = "losses"
    CUSTOMER_REQUEST = "customer_request"


class ConnectReason(StrEnum):
    AFTER_PAYMENT = "after_payment"


def validate_reason(activity: ActivityType, reason: str | None) -> str | None:
    """The reason a breaker order must carry (use case #6); other activities take none."""
    if activity is ActivityType.DISCONNECT:
        if reason is None:
            raise InvalidWorkOrder("reason: a Disconnect needs one of " + _names(DisconnectReason))
        try:
            return DisconnectReason(reason).value
        except ValueError:
            raise InvalidWorkOrder(
                f"reason: {reason!r} is not a disconnect reason ({_names(DisconnectReason)})"
            ) from None
    if activity is ActivityType.CONNECT:
        try:
            return ConnectReason(reason or ConnectReason.AFTER_PAYMENT).value
        except ValueError:
            raise InvalidWorkOrder(
                f"reason: {reason!r} is not a connect reason ({_names(ConnectReason)})"
            ) from None
    if reason is not None:
        raise InvalidWorkOrder(f"reason: {activity.value} orders take no reason, got {reason!r}")
    return None


def _names(kind: type[StrEnum]) -> str:
    return ", ".join(item.value for item in kind)


class Origin(StrEnum):
    """Who asked: an operator (web/CLI), Legacy through the integration layer, the scheduler."""

    OPERATOR = "operator"
    LEGACY = "legacy"
    SCHEDULER = "scheduler"


class State(StrEnum):
    NEW = "NEW"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    RETRY = "RETRY"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"


# RUNNING → RETRY also covers a lease that expired (the worker died): the attempt counts.
TRANSITIONS: Mapping[State, frozenset[State]] = MappingProxyType(
    {
        State.NEW: frozenset({State.PENDING, State.CANCELLED}),
        State.PENDING: frozenset({State.RUNNING, State.CANCELLED, State.EXPIRED}),
        State.RUNNING: frozenset({State.COMPLETED, State.FAILED, State.RETRY, State.EXPIRED}),
        State.RETRY: frozenset({State.RUNNING, State.CANCELLED, State.EXPIRED}),
        State.COMPLETED: frozenset(),
        State.FAILED: frozenset(),
        State.EXPIRED: frozenset(),
        State.CANCELLED: frozenset(),
    }
)

FINAL_STATES = frozenset(state for state, targets in TRANSITIONS.items() if not targets)
OPEN_STATES = frozenset(State) - FINAL_STATES
LEASABLE_STATES = frozenset({State.PENDING, State.RETRY})


def check_transition(current: State, wanted: State) -> None:
    """Raise ``InvalidTransition`` unless ``current → wanted`` is in ``TRANSITIONS``."""
    if wanted not in TRANSITIONS[current]:
        raise InvalidTransition(current, wanted)


class Category(StrEnum):
    COMMERCIAL = "commercial"
    TECHNICAL = "technical"


class Target(StrEnum):
    METER = "meter"
    CONCENTRATOR = "concentrator"


@dataclass(frozen=True, slots=True)
class Policy:
    """How one activity type is queued and retried."""

    priority: int
    max_attempts: int
    duration: timedelta
    backoff_base: timedelta
    backoff_cap: timedelta
    backoff_jitter: float
    priority_decay: int
    category: Category
    target: Target
    working_days_only: bool
    idempotent: bool


_POLICY_FIELDS = frozenset(Policy.__dataclass_fields__)
_SECONDS_FIELDS = ("duration", "backoff_base", "backoff_cap")


def _policy_from_mapping(activity: str, raw: Mapping[str, Any]) -> Policy:
    unknown = sorted(set(raw) - _POLICY_FIELDS)
    if unknown:
        raise PolicyError(f"{activity}: unknown policy field(s) {', '.join(unknown)}")
    missing = sorted(_POLICY_FIELDS - set(raw))
    if missing:
        raise PolicyError(f"{activity}: missing policy field(s) {', '.join(missing)}")
    try:
        values: dict[str, Any] = dict(raw)
        for name in _SECONDS_FIELDS:
            values[name] = timedelta(seconds=_number(raw[name]))
        values["category"] = Category(raw["category"])
        values["target"] = Target(raw["target"])
        values["backoff_jitter"] = float(_number(raw["backoff_jitter"]))
        for name in ("priority", "max_attempts", "priority_decay"):
            values[name] = _integer(raw[name])
        for name in ("working_days_only", "idempotent"):
            if not isinstance(raw[name], bool):
                raise ValueError(f"{name} must be true or false, got {raw[name]!r}")
    except ValueError as exc:
        raise PolicyError(f"{activity}: {exc}") from None
    policy = Policy(**values)
    _check_policy(activity, policy)
    return policy


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def _integer(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    return value


def _check_policy(activity: str, policy: Policy) -> None:
    problems = []
    if not MIN_PRIORITY <= policy.priority <= MAX_PRIORITY:
        problems.append(f"priority {policy.priority} is outside {MIN_PRIORITY}..{MAX_PRIORITY}")
    if policy.max_attempts < 1:
        problems.append(f"max_attempts {policy.max_attempts} is below 1")
    if policy.duration <= timedelta(0):
        problems.append("duration must be positive")
    if policy.backoff_base < timedelta(0) or policy.backoff_cap < policy.backoff_base:
        problems.append("backoff needs 0 <= backoff_base <= backoff_cap")
    if not 0.0 <= policy.backoff_jitter <= 1.0:
        problems.append(f"backoff_jitter {policy.backoff_jitter} is outside 0..1")
    if policy.priority_decay < 0:
        problems.append(f"priority_decay {policy.priority_decay} is negative")
    if problems:
        raise PolicyError(f"{activity}: " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class PolicyBook:
    """One policy per activity type; every activity has one."""

    policies: Mapping[ActivityType, Policy]

    def __post_init__(self) -> None:
        missing = sorted(item.value for item in ActivityType if item not in self.policies)
        if missing:
            raise PolicyError(f"no policy for activity type(s) {', '.join(missing)}")

    def __getitem__(self, activity: ActivityType) -> Policy:
        return self.policies[activity]

    def activities_in(self, category: Category) -> frozenset[ActivityType]:
        return frozenset(a for a, policy in self.policies.items() if policy.category is category)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], base: PolicyBook | None = None) -> PolicyBook:
        """Policies from a YAML-shaped mapping; with ``base``, fields left out keep its values."""
        if not isinstance(raw, Mapping):
            raise PolicyError(f"a policy file must map activity types to policies, got {raw!r}")
        policies: dict[ActivityType, Policy] = dict(base.policies) if base else {}
        for name, fields in raw.items():
            try:
                activity = ActivityType(name)
            except ValueError:
                raise PolicyError(f"unknown activity type {name!r} in the policy file") from None
            if not isinstance(fields, Mapping):
                raise PolicyError(f"{name}: expected a mapping of fields, got {fields!r}")
            merged = dict(fields)
            if base is not None:
                merged = {**_as_raw(base[activity]), **fields}
            policies[activity] = _policy_from_mapping(name, merged)
        return cls(MappingProxyType(policies))


def _as_raw(policy: Policy) -> dict[str, Any]:
    raw: dict[str, Any] = {name: getattr(policy, name) for name in _POLICY_FIELDS}
    for name in _SECONDS_FIELDS:
        raw[name] = raw[name].total_seconds()
    raw["category"] = policy.category.value
    raw["target"] = policy.target.value
    return raw


def _read_yaml(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{source}: not valid YAML ({exc})") from None


@functools.cache
def _shipped_policies() -> PolicyBook:
    """Read once per process: every queue (one per API request, per executor) starts here."""
    resource = importlib.resources.files("smmc.domain").joinpath("work_order_policies.yaml")
    return PolicyBook.from_mapping(
        _read_yaml(resource.read_text(encoding="utf-8"), "work_order_policies.yaml")
    )


def load_policies(override: Path | None = None) -> PolicyBook:
    """The shipped defaults, with the fields of ``override`` (a YAML file) laid over them."""
    defaults = _shipped_policies()
    if override is None:
        return defaults
    raw = _read_yaml(override.read_text(encoding="utf-8"), str(override))
    return PolicyBook.from_mapping(raw or {}, base=defaults)


def backoff_bounds(attempt: int, policy: Policy) -> tuple[timedelta, timedelta]:
    """Shortest and longest wait after failed attempt number ``attempt`` (1-based).

    The nominal delay doubles per attempt from ``backoff_base`` up to ``backoff_cap``; jitter
    draws the actual delay from the top ``backoff_jitter`` fraction below it, so workers
    retrying a burst of failures spread out instead of hitting a concentrator together.
    """
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {attempt}")
    cap = policy.backoff_cap.total_seconds()
    nominal_seconds = min(cap, policy.backoff_base.total_seconds() * 2.0 ** min(attempt - 1, 62))
    nominal = policy.backoff_cap if nominal_seconds >= cap else timedelta(seconds=nominal_seconds)
    return nominal * (1.0 - policy.backoff_jitter), nominal


def backoff_delay(attempt: int, policy: Policy, fraction: float) -> timedelta:
    """The delay for ``fraction`` in [0, 1] (a random draw) between the backoff bounds."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    low, high = backoff_bounds(attempt, policy)
    return low + (high - low) * fraction


def decayed_priority(priority: int, attempt: int, policy: Policy) -> int:
    """Priority for the retry after failed attempt ``attempt``: a failing order yields the
    queue to fresh work by ``priority_decay`` points per failure, never below the minimum."""
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {attempt}")
    return max(MIN_PRIORITY, priority - policy.priority_decay * attempt)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an executor reports for one attempt."""

    ok: bool
    result: Mapping[str, Any] = field(default_factory=dict)
    error_text: str | None = None
    retryable: bool = False

    @classmethod
    def success(cls, result: Mapping[str, Any] | None = None) -> Outcome:
        return cls(ok=True, result=dict(result or {}))

    @classmethod
    def failure(
        cls, error_text: str, *, retryable: bool, result: Mapping[str, Any] | None = None
    ) -> Outcome:
        return cls(ok=False, result=dict(result or {}), error_text=error_text, retryable=retryable)


@dataclass(frozen=True, slots=True)
class Decision:
    """The next state after an attempt, and when/at which priority a retry runs."""

    state: State
    retry_at: datetime | None = None
    priority: int | None = None


def decide(
    outcome: Outcome,
    *,
    attempt: int,
    max_attempts: int,
    base_priority: int,
    policy: Policy,
    now: datetime,
    deadline: datetime,
    fraction: float,
) -> Decision:
    """Pure retry policy: success completes; a non-retryable failure or the last attempt
    fails; a retry that could not start before the deadline expires the order."""
    if outcome.ok:
        return Decision(State.COMPLETED)
    if not outcome.retryable or attempt >= max_attempts:
        return Decision(State.FAILED)
    retry_at = now + backoff_delay(attempt, policy, fraction)
    if retry_at >= deadline:
        return Decision(State.EXPIRED)
    return Decision(State.RETRY, retry_at, decayed_priority(base_priority, attempt, policy))


def earliest_start(
    requested_at: datetime,
    policy: Policy,
    calendar: WorkingDayCalendar,
    tz: str,
    *,
    special: bool = False,
    day_start: time = WORKING_DAY_START,
) -> datetime:
    """When an order may first run: connect/disconnect orders requested on a non-working day
    (weekend or Chilean holiday, in the concentrator's local time) wait for ``day_start`` of
    the next working day, unless flagged special. Other activities run when requested."""
    if requested_at.tzinfo is None:
        raise ValueError("requested_at must be timezone-aware")
    if special or not policy.working_days_only:
        return requested_at
    local_day: date = to_local(requested_at, tz).date()
    if calendar.is_working_day(local_day):
        return requested_at
    next_day = calendar.next_working_day(local_day)
    return to_utc(datetime.combine(next_day, day_start), tz, strict=False).astimezone(UTC)


class View(StrEnum):
    """The seed's "Works" monitoring views."""

    PENDING = "pending"
    COMPLETED = "completed"
    COMMERCIAL_PENDING = "commercial_pending"
    COMMERCIAL_COMPLETED = "commercial_completed"
    TECHNICAL_PENDING = "technical_pending"
    TECHNICAL_COMPLETED = "technical_completed"
    SCHEDULED_PENDING = "scheduled_pending"
    SCHEDULED_COMPLETED = "scheduled_completed"
    PROVISIONING = "provisioning"


@dataclass(frozen=True, slots=True)
class ViewSpec:
    """A view as a predicate over (state, activity category, origin, activity); ``None``
    means any. The store turns the same spec into SQL."""

    states: frozenset[State] | None = None
    category: Category | None = None
    origin: Origin | None = None
    activities: frozenset[ActivityType] | None = None

    def matches(
        self, state: State, activity: ActivityType, origin: Origin, policies: PolicyBook
    ) -> bool:
        return (
            (self.states is None or state in self.states)
            and (self.category is None or policies[activity].category is self.category)
            and (self.origin is None or origin is self.origin)
            and (self.activities is None or activity in self.activities)
        )

    def activity_set(self, policies: PolicyBook) -> frozenset[ActivityType] | None:
        """Activities the view admits, folding the category in (None: any activity)."""
        allowed = self.activities
        if self.category is not None:
            in_category = policies.activities_in(self.category)
            allowed = in_category if allowed is None else allowed & in_category
        return allowed


_PENDING = ViewSpec(states=frozenset(OPEN_STATES))
_COMPLETED = ViewSpec(states=frozenset(FINAL_STATES))

VIEWS: Mapping[View, ViewSpec] = MappingProxyType(
    {
        View.PENDING: _PENDING,
        View.COMPLETED: _COMPLETED,
        View.COMMERCIAL_PENDING: replace(_PENDING, category=Category.COMMERCIAL),
        View.COMMERCIAL_COMPLETED: replace(_COMPLETED, category=Category.COMMERCIAL),
        View.TECHNICAL_PENDING: replace(_PENDING, category=Category.TECHNICAL),
        View.TECHNICAL_COMPLETED: replace(_COMPLETED, category=Category.TECHNICAL),
        View.SCHEDULED_PENDING: replace(_PENDING, origin=Origin.SCHEDULER),
        View.SCHEDULED_COMPLETED: replace(_COMPLETED, origin=Origin.SCHEDULER),
        View.PROVISIONING: ViewSpec(
            activities=frozenset({ActivityType.COMMISSIONING, ActivityType.DECOMMISSIONING})
        ),
    }
)


@dataclass(frozen=True, slots=True)
class CsvTarget:
    """One good row of the operators' bulk file: ``podname;serialnumber``."""

    line: int
    pod: str | None
    serial: str | None


@dataclass(frozen=True, slots=True)
class CsvRowError:
    line: int
    reason: str


def parse_target_csv(text: str) -> tuple[list[CsvTarget], list[CsvRowError]]:
    """The rows of a ``podname;serialnumber`` file (the seed's downloadable model).

    ``;`` is the separator (``,`` is accepted when a line has no ``;``); a first line naming
    the columns is skipped; either column may be empty but not both. Bad rows are returned
    with their line number, never dropped silently, and do not stop the good ones.
    """
    targets: list[CsvTarget] = []
    errors: list[CsvRowError] = []
    for number, raw in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        delimiter = ";" if ";" in line or "," not in line else ","
        try:
            cells = [cell.strip() for cell in next(csv.reader([line], delimiter=delimiter))]
        except csv.Error as exc:
            errors.append(CsvRowError(number, f"unreadable line ({exc})"))
            continue
        if number == 1 and cells and cells[0].lower() in ("podname", "pod"):
            continue
        if len(cells) != 2:
            errors.append(
                CsvRowError(number, f"expected 2 columns podname;serialnumber, got {len(cells)}")
            )
            continue
        pod, serial = cells
        if "\x00" in pod or "\x00" in serial:
            errors.append(CsvRowError(number, "NUL character in a cell"))
            continue
        if not pod and not serial:
            errors.append(CsvRowError(number, "both podname and serialnumber are empty"))
            continue
        targets.append(CsvTarget(number, pod or None, serial or None))
    return targets, errors
