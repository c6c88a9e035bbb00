"""CIM codes the integration speaks: control types in, reasons, event codes out, reply codes.

The Legacy codes are an interface contract, so the defaults are the seeds' literal codes where
the seeds show one (e.g. ``3.31.17.68`` for a disconnect, ``3.21.87.30``/``3.21.87.85`` for a
work-order result) and the table is data: an operator can override any entry with a YAML
file (``CodeBook.load``) without a release.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import yaml

from smmc.domain.work_orders import ActivityType, ConnectReason, DisconnectReason

__all__ = [
    "CONTROL_CONNECT",
    "CONTROL_DISCONNECT",
    "CONTROL_METER_SYNC",
    "DEFAULT_CONTROLS",
    "DEFAULT_EVENT_CODES",
    "DEFAULT_REASON_ALIASES",
    "REPLY_CODES",
    "CodeBook",
    "CodeError",
    "is_event_code",
]

CONTROL_DISCONNECT = "3.31.0.23"  # ElectricMeter.RCDSwitch.NA.Disconnect
CONTROL_CONNECT = "3.31.0.18"  # ElectricMeter.RCDSwitch.NA.Connect
CONTROL_METER_SYNC = "3.36.116.13"  # ElectricMeter.Clock.TimeSync.Change

_EVENT_CODE = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")


class CodeError(ValueError):
    """A code table entry that is not a valid 4-field code or names an unknown activity."""


def is_event_code(text: str) -> bool:
    """An EndDeviceEventType/ControlType code: type.domain.subDomain.eventOrAction."""
    return bool(_EVENT_CODE.match(text))


DEFAULT_CONTROLS: Mapping[str, ActivityType] = MappingProxyType(
    {
        CONTROL_DISCONNECT: ActivityType.DISCONNECT,
        CONTROL_CONNECT: ActivityType.CONNECT,
        CONTROL_METER_SYNC: ActivityType.METER_SYNC,
    }
)

# HES outcome/event name → CIM EndDeviceEventType. Seed literals first (DOMAIN.md §4, the
# research report §2.2), then the IEC outcome codes for the breaker where the seeds are silent.
DEFAULT_EVENT_CODES: Mapping[str, str] = MappingProxyType(
    {
        "disconnected": "3.31.17.68",
        "connected": "3.31.0.42",
        "disconnect_failed": "3.31.0.84",
        "connect_failed": "3.31.0.67",
        "expired": "3.31.0.64",
        "cancelled": "3.31.0.10",
        "work_order_ok": "3.21.87.30",
        "work_order_failed": "3.21.87.85",
        "power_failure": "3.26.0.85",
        "power_restored": "3.26.0.216",
        "terminal_cover_removed": "3.12.29.79",
        "meter_case_opened": "3.12.29.212",
        "clock_not_aligned": "3.36.17.85",
        "watchdog": "3.37.0.85",
        "communication_alarm": "3.23.1.79",
        "meter_commissioned": "3.39.74.42",
        "meter_decommissioned": "3.39.74.68",
    }
)

# Free-text CIM reasons (``EndDeviceControl.reason``) → the seed's reasons. Matched as
# case-insensitive words; the domain values themselves always match.
DEFAULT_REASON_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "deuda": DisconnectReason.NON_PAYMENT.value,
        "impago": DisconnectReason.NON_PAYMENT.value,
        "non-payment": DisconnectReason.NON_PAYMENT.value,
        "nonpayment": DisconnectReason.NON_PAYMENT.value,
        "debt": DisconnectReason.NON_PAYMENT.value,
        "perdidas": DisconnectReason.LOSSES.value,
        "pérdidas": DisconnectReason.LOSSES.value,
        "hurto": DisconnectReason.LOSSES.value,
        "losses": DisconnectReason.LOSSES.value,
        "cliente": DisconnectReason.CUSTOMER_REQUEST.value,
        "customer": DisconnectReason.CUSTOMER_REQUEST.value,
        "pago": ConnectReason.AFTER_PAYMENT.value,
        "payment": ConnectReason.AFTER_PAYMENT.value,
    }
)


# The reply codes we answer with (IEC 61968-9 reply code table, category.number).
REPLY_CODES: Mapping[str, str] = MappingProxyType(
    {
        "0.0": "No errors",
        "0.2": "Partial result (no further results to follow)",
        "0.3": "Simple acknowledgment",
        "1.5": "Mandatory Header elements missing",
        "1.6": "Mandatory Request elements missing",
        "1.7": "Mandatory Payload elements missing",
        "1.8": "Format of request does not validate against schema",
        "2.4": "Invalid Meter(s)",
        "2.5": "Invalid Noun",
        "2.6": "Invalid ReadingType(s)",
        "2.9": "Invalid Verb",
        "2.10": "Unsupported ReadingType(s)",
        "2.12": "Invalid UsagePoint(s)",
        "2.13": "Meter / UsagePoint mismatch",
        "3.1": "Too many items in request",
        "5.2": "Unable to process request - transaction not attempted",
        "5.3": "Unable to process the request - transaction attempted and failed",
        "5.8": "Unable to process the request - mandatory field(s) missing",
        "6.1": "Request canceled per business rule",
    }
)

_DOMAIN_REASONS: Mapping[ActivityType, frozenset[str]] = MappingProxyType(
    {
        ActivityType.DISCONNECT: frozenset(r.value for r in DisconnectReason),
        ActivityType.CONNECT: frozenset(r.value for r in ConnectReason),
    }
)


@dataclass(frozen=True, slots=True)
class CodeBook:
    """The code tables in force: controls accepted, reason aliases and event codes."""

    controls: Mapping[str, ActivityType] = field(default_factory=lambda: DEFAULT_CONTROLS)
    event_codes: Mapping[str, str] = field(default_factory=lambda: DEFAULT_EVENT_CODES)
    reason_aliases: Mapping[str, str] = field(default_factory=lambda: DEFAULT_REASON_ALIASES)

    def activity(self, control_type: str) -> ActivityType | None:
        return self.controls.get(control_type.strip())

    def event_code(self, name: str) -> str:
        try:
            return self.event_codes[name]
        except KeyError:
            raise CodeError(f"no event code configured for {name!r}") from None

    def reason(self, activity: ActivityType, text: str | None) -> str | None:
        """The domain reason of a breaker order from CIM free text; ``None`` when the text
        names none, or more than one, of the seed's reasons (a Connect then defaults to
        after-payment, a Disconnect is refused)."""
        allowed = _DOMAIN_REASONS.get(activity)
        if allowed is None or text is None:
            return None
        lowered = text.strip().lower()
        if lowered in allowed:
            return lowered
        found = {self.reason_aliases.get(word) for word in re.findall(r"[\w-]+", lowered)}
        matches = found & allowed
        # Two reasons in one text ("cliente moroso") is ambiguous: refuse rather than guess.
        return next(iter(matches)) if len(matches) == 1 else None

    @classmethod
    def configured(cls, path: Path | None) -> CodeBook:
        """The code book in force: the defaults, overridden by ``path`` (``SMMC_CIM_CODES``)
        when one is configured."""
        return cls.load(path) if path is not None else cls()

    @classmethod
    def load(cls, path: Path) -> CodeBook:
        """Defaults overridden by a YAML file with optional ``controls`` (code → activity),
        ``event_codes`` (name → code) and ``reason_aliases`` (word → seed reason) maps."""
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(raw, dict):
            raise CodeError(f"{path}: expected a mapping at the top level")
        unknown = sorted(set(raw) - {"controls", "event_codes", "reason_aliases"})
        if unknown:
            raise CodeError(f"{path}: unknown section(s) {', '.join(unknown)}")
        controls = dict(DEFAULT_CONTROLS)
        for code, activity in (raw.get("controls") or {}).items():
            if not is_event_code(str(code)):
                raise CodeError(f"controls: {code!r} is not a 4-field control type")
            try:
                controls[str(code)] = ActivityType(str(activity))
            except ValueError:
                raise CodeError(f"controls: {activity!r} is not an activity type") from None
        events = dict(DEFAULT_EVENT_CODES)
        for name, code in (raw.get("event_codes") or {}).items():
            if not is_event_code(str(code)):
                raise CodeError(f"event_codes: {name}: {code!r} is not a 4-field event code")
            events[str(name)] = str(code)
        aliases = dict(DEFAULT_REASON_ALIASES)
        every_reason = frozenset().union(*_DOMAIN_REASONS.values())
        for word, reason in (raw.get("reason_aliases") or {}).items():
            if str(reason) not in every_reason:
                raise CodeError(f"reason_aliases: {reason!r} is not a seed reason")
            aliases[str(word).lower()] = str(reason)
        return cls(MappingProxyType(controls), MappingProxyType(events), MappingProxyType(aliases))
