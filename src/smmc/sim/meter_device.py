"""A simulated meter served over DLMS: the NEXY-M profile bound live to a ``MeterModel``.

``build_meter_device(plan, index, clock)`` returns a ``MeterDevice``: the COSEM
``LogicalDevice`` of the profile ``nexy_m.json``, its ``ServerAssociation`` per client SAP
(16 public lowest, 1 management LLS, 48 head-end HLS-GMAC with the meter's own
``device_keys``) and the ``ServedDevice`` a ``DlmsServer`` or a concentrator gateway serves.
Every measured value is computed from the model at read time, on simulated time
(``SimClock.now()``):

- clock ``0.0.1.0.0.255``: the model's drifting clock; SET time, ``shift_time`` and the
  adjust methods set the model's clock (a MeterSync);
- energy registers ``1.0.{1,2,3,4}.8.{0..6}.255`` (total and T1..T6), the average power
  ``1.0.1.7.0.255`` over the current 15-minute slot, the averages of voltage and current per
  phase of the last capture period, the four status words, the alarm register and filter;
- load profile ``1.0.99.1.0.255`` (interval energies), measurand profile ``1.0.99.2.0.255``
  and daily billing ``1.0.98.1.0.255`` (registers at the meter's local midnight): rows come
  from the model by range on the clock column, never stored; the capture period (attribute
  4) reads and writes the model's;
- disconnect control: its state is the model's breaker, so opening it really stops
  consumption;
- image transfer: activating image ``NXM-x.y.z`` makes the firmware version read it;
- push setup: ``push`` hands the values to the ``on_push`` hook (the server's job).

``MeterDevices(plan, clock)`` builds devices lazily, on first use, and keeps at most
``capacity`` of them (least recently used first out); what must survive an eviction (the
model with its breaker, clock and firmware history, the invocation counters) lives in a
small ``MeterState`` per meter touched. Settings that only the COSEM objects hold (push
destination, limiter threshold, DST attributes) last as long as the device is cached.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Final

from smmc.dlms.apdu import AuthenticationMechanism
from smmc.dlms.apdu.selective_access import RangeDescriptor
from smmc.dlms.axdr import Data, DataTag
from smmc.dlms.connection import InvocationCounter, SecurityPolicy, ServerAssociation
from smmc.dlms.cosem.association_ln import CURRENT_ASSOCIATION_OBIS, AssociationLN
from smmc.dlms.cosem.base import (
    AccessResult,
    AccessRights,
    CosemAccessError,
    CosemObject,
    LogicalDevice,
    SelectiveAccessDescriptor,
    expect_int,
)
from smmc.dlms.cosem.clock import Clock
from smmc.dlms.cosem.data import DataObject
from smmc.dlms.cosem.disconnect_control import ControlState, DisconnectControl
from smmc.dlms.cosem.extended_register import date_time_value, decode_date_time
from smmc.dlms.cosem.image_transfer import ImageTransfer
from smmc.dlms.cosem.profile_generic import ProfileGeneric
from smmc.dlms.cosem.push_setup import PushSetup
from smmc.dlms.cosem.register import Register
from smmc.dlms.cosem_time import CosemDateTime
from smmc.dlms.errors import DecodeError
from smmc.dlms.obis import Obis
from smmc.dlms.profiles import build_device, load_builtin
from smmc.dlms.profiles.schema import (
    DeviceProfile,
    DisconnectSettings,
    ObjectSpec,
    ProfileSettings,
    RegisterSettings,
)
from smmc.dlms.security import InvocationCounterGuard
from smmc.dlms.server import ServedDevice
from smmc.domain.time import to_local, zone
from smmc.sim.clock import SimClock
from smmc.sim.fleet import FleetPlan, MeterSpec
from smmc.sim.meter_model import (
    BillingRow,
    LoadProfileRow,
    MeasurandRow,
    MeterModel,
    MeterModelError,
    Registers,
    RegisterSet,
    StatusWords,
)

__all__ = [
    "BILLING",
    "CLOCK",
    "DISCONNECT",
    "FIRMWARE_VERSION",
    "HEAD_END_SAP",
    "IMAGE_TRANSFER",
    "LOAD_PROFILE",
    "MANAGEMENT_SAP",
    "MEASURAND_PROFILE",
    "METER_LOGICAL_ADDRESS",
    "PUBLIC_SAP",
    "PUSH_SETUP",
    "MeterDevice",
    "MeterDevices",
    "MeterState",
    "PushHook",
    "alarm_bits",
    "build_meter_device",
    "measurand_values",
    "meter_lls_password",
    "meter_system_title",
    "register_values",
]

PUBLIC_SAP: Final = 16
MANAGEMENT_SAP: Final = 1
HEAD_END_SAP: Final = 48
METER_LOGICAL_ADDRESS: Final = 1
"""The wrapper wPort / HDLC upper address of the meter's management logical device."""

CLOCK: Final = Obis(0, 0, 1, 0, 0, 255)
FIRMWARE_VERSION: Final = Obis(1, 0, 0, 2, 0, 255)
DISCONNECT: Final = Obis(0, 0, 96, 3, 10, 255)
LOAD_PROFILE: Final = Obis(1, 0, 99, 1, 0, 255)
MEASURAND_PROFILE: Final = Obis(1, 0, 99, 2, 0, 255)
BILLING: Final = Obis(1, 0, 98, 1, 0, 255)
IMAGE_TRANSFER: Final = Obis(0, 0, 44, 0, 0, 255)
PUSH_SETUP: Final = Obis(0, 0, 25, 9, 0, 255)
_LOGICAL_DEVICE_NAME = Obis(0, 0, 42, 0, 0, 255)
_SERIAL = Obis(0, 0, 96, 1, 0, 255)
_SECURITY_SETUP = Obis(0, 0, 43, 0, 3, 255)
_INVOCATION_COUNTER = Obis(0, 0, 43, 1, 3, 255)
_ACTIVE_POWER = Obis(1, 0, 1, 7, 0, 255)
_ALARM_REGISTER = Obis(0, 0, 97, 98, 0, 255)
_ALARM_FILTER = Obis(0, 0, 97, 98, 10, 255)
_STATUS_WORDS = tuple(Obis(0, 0, 96, 5, n, 255) for n in (1, 2, 3, 4))
# Average voltage and current per phase (C = 32/52/72 voltage, 31/51/71 current).
_VOLTAGES = {32: 0, 52: 1, 72: 2}
_CURRENTS = {31: 0, 51: 1, 71: 2}
_FIRMWARE_PREFIX = "NXM-"

PushHook = Callable[[int, PushSetup, tuple[Data, ...]], None]
"""(meter index, push setup, values) when the meter pushes."""

Row = tuple[Data, ...]


@functools.cache
def _profile() -> DeviceProfile:
    return load_builtin("nexy_m")


def meter_system_title(index: int) -> bytes:
    """The meter's suite 0 system title: ``NXM`` and the 1-based meter number (5 bytes)."""
    return b"NXM" + (index + 1).to_bytes(5, "big")


def meter_lls_password(plan: FleetPlan, index: int) -> bytes:
    """LLS password of the management association (8 hex digits from the key seed)."""
    digest = hashlib.blake2b(f"{plan.fleet.seeds.keys}:lls:{index}".encode(), digest_size=4)
    return digest.hexdigest().upper().encode("ascii")


def alarm_bits(words: StatusWords) -> int:
    """The 32-bit alarm register (or filter) of four status words.

    Layout: bits 0–7 normal word 1, 8–15 extended word 1, 16–23 extended word 2, 24–31
    normal word 2 — the low byte of each word, which holds every alarm the simulator raises
    (PUP, ORD, ONSI, INTA, CAPE, DRAM, TC_REM).
    """
    return (
        (words.normal1 & 0xFF)
        | (words.extended1 & 0xFF) << 8
        | (words.extended2 & 0xFF) << 16
        | (words.normal2 & 0xFF) << 24
    )


def _masks_from_filter(bits: int) -> tuple[int, int, int, int]:
    """Model alarm masks (normal 1, normal 2, extended 1, extended 2) of a filter value."""
    return (
        0xFF00 | (bits & 0xFF),
        0xFF00 | (bits >> 24 & 0xFF),
        0xFF00 | (bits >> 8 & 0xFF),
        0xFF00 | (bits >> 16 & 0xFF),
    )


@dataclass(slots=True)
class MeterState:
    """What a meter keeps across device evictions: its model and invocation counters."""

    model: MeterModel
    invocation_counter: InvocationCounter = field(default_factory=InvocationCounter)
    guard: InvocationCounterGuard = field(default_factory=InvocationCounterGuard)


@dataclass(slots=True)
class MeterDevice:
    """One simulated meter ready to serve: ``served`` goes to a server or gateway."""

    index: int
    spec: MeterSpec
    model: MeterModel
    device: LogicalDevice
    associations: dict[int, ServerAssociation]
    served: ServedDevice
    push_setup: PushSetup
    image_transfer: ImageTransfer
    breaker: DisconnectControl


# --- live objects ---------------------------------------------------------------------------

Now = Callable[[], dt.datetime]


class _LiveRegister(Register):
    """A register whose value is computed when read."""

    def __init__(
        self, ln: Obis, tag: DataTag, scaler: int, unit: int, read: Callable[[], int]
    ) -> None:
        super().__init__(ln, Data(tag, 0), scaler, unit)
        self._tag = tag
        self._read = read

    def _get(self, attribute: int, selective_access: SelectiveAccessDescriptor | None) -> Data:
        if attribute == self.VALUE_ATTRIBUTE:
            return Data(self._tag, _clamp(self._read(), self._tag))
        return super()._get(attribute, selective_access)

    def _set(self, attribute: int, value: Data) -> None:
        if attribute == self.VALUE_ATTRIBUTE:
            raise CosemAccessError(AccessResult.READ_WRITE_DENIED, f"{self!r} value is measured")
        super()._set(attribute, value)

    def _action(self, method: int, parameters: Data | None) -> Data | None:
        raise CosemAccessError(AccessResult.READ_WRITE_DENIED, f"{self!r} cannot be reset")


class _LiveData(CosemObject):
    """An interface class 1 (Data) object computed when read; ``write`` receives SETs."""

    CLASS_ID: ClassVar[int] = DataObject.CLASS_ID
    VERSION: ClassVar[int] = DataObject.VERSION
    ATTRIBUTE_COUNT: ClassVar[int] = DataObject.ATTRIBUTE_COUNT

    def __init__(
        self,
        ln: Obis,
        read: Callable[[], Data],
        write: Callable[[Data], None] | None = None,
    ) -> None:
        super().__init__(ln)
        self._read = read
        self._write = write

    def _get(self, attribute: int, selective_access: SelectiveAccessDescriptor | None) -> Data:
        return self._read()

    def _set(self, attribute: int, value: Data) -> None:
        if self._write is None:
            raise CosemAccessError(AccessResult.READ_WRITE_DENIED, f"{self!r} is read-only")
        self._write(value)


_LIMITS: Final = {
    DataTag.UNSIGNED: 0xFF,
    DataTag.LONG_UNSIGNED: 0xFFFF,
    DataTag.DOUBLE_LONG_UNSIGNED: 0xFFFF_FFFF,
}


def _clamp(value: int, tag: DataTag) -> int:
    return max(0, min(value, _LIMITS.get(tag, 0xFFFF_FFFF)))


def register_values(registers: Registers) -> list[int]:
    """The billing profile's register columns: per energy (A+, A−, R+, R−) the total and
    T1..T6, as double-long-unsigned values; one function, so a DC's collected daily
    closure carries exactly the meter's own."""
    sets = (
        registers.active_import,
        registers.active_export,
        registers.reactive_import,
        registers.reactive_export,
    )
    return [_clamp(v, DataTag.DOUBLE_LONG_UNSIGNED) for r in sets for v in (r.total, *r.tiers)]


def measurand_values(row: MeasurandRow) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The raw long-unsigned values of the measurand profile's columns, voltages L1..L3
    (scaler −1) and currents L1..L3 (scaler −2), 0 for a phase the meter lacks: one
    function, so a DC's collected measurands carry exactly the meter's own."""
    volts = (*row.voltages, 0.0, 0.0, 0.0)[:3]
    amps = (*row.currents, 0.0, 0.0, 0.0)[:3]
    return (
        tuple(_clamp(round(v * 10), DataTag.LONG_UNSIGNED) for v in volts),
        tuple(_clamp(round(a * 100), DataTag.LONG_UNSIGNED) for a in amps),
    )


class _MeterClock(Clock):
    """The COSEM clock showing the model's drifting clock.

    The base class keeps the meter time as ``offset`` from the time source; here that
    offset is the model's clock error, and every change to it is a clock set in the model.
    """

    def __init__(self, ln: Obis, tz: dt.tzinfo, model: MeterModel, now: Now) -> None:
        self._model = model
        self._live = False  # the base constructor zeroes the offset: not a clock set
        super().__init__(ln, tz, now)
        self._live = True

    @property
    def offset(self) -> dt.timedelta:
        return self._model.clock_error(self.time_source())

    @offset.setter
    def offset(self, value: dt.timedelta) -> None:
        if self._live:
            now = self.time_source()
            self._model.set_clock(now, now + value)


class _MeterBreaker(DisconnectControl):
    """Disconnect control whose state is the model's breaker at the current instant."""

    def __init__(self, ln: Obis, control_mode: int, model: MeterModel, now: Now) -> None:
        self._model = model
        self._now = now
        self._ready = False
        self._live = False  # the base constructor sets "connected": not an operation
        super().__init__(ln, control_mode)
        self._live = True

    @property
    def control_state(self) -> ControlState:
        if self._model.breaker_closed(self._now()):
            return ControlState.CONNECTED
        return ControlState.READY_FOR_RECONNECTION if self._ready else ControlState.DISCONNECTED

    @control_state.setter
    def control_state(self, state: ControlState) -> None:
        if not self._live:
            return
        now = self._now()
        self._ready = state is ControlState.READY_FOR_RECONNECTION
        closed = state is ControlState.CONNECTED
        if closed != self._model.breaker_closed(now):
            if closed:
                self._model.reconnect(now)
            else:
                self._model.disconnect(now)


RangeRows = Callable[[dt.datetime, dt.datetime], list[Row]]
"""Full rows whose capture time on the meter clock lies in [start, end] (aware)."""


class _ModelProfile(ProfileGeneric):
    """A profile generic whose rows the model computes for the range asked for.

    A range on the clock column asks the model for exactly that range; a GET without
    selective access or by entry sees the last ``profile_entries`` capture periods.
    """

    def __init__(
        self,
        spec: ObjectSpec,
        settings: ProfileSettings,
        tz: dt.tzinfo,
        rows: RangeRows,
        meter_now: Now,
        first: Callable[[], dt.datetime],
        period: Callable[[], int] | None = None,
        set_period: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(
            spec.obis, settings.capture_objects, settings.capture_period, settings.profile_entries
        )
        self._tz = tz
        self._range_rows = rows
        self._meter_now = meter_now
        self._first = first
        self._period = period
        self._set_period = set_period

    def rows(self) -> list[Row]:
        end = self._meter_now()
        span = dt.timedelta(seconds=self.profile_entries * self._capture_seconds())
        start = max(end - span, self._first())
        return self._range_rows(start, end)[-self.profile_entries :]

    def _capture_seconds(self) -> int:
        return self._period() if self._period is not None else self.capture_period

    def _by_range(self, descriptor: RangeDescriptor) -> list[Row]:
        restricting = descriptor.restricting_object
        if restricting.class_id != 8 or restricting.logical_name != CLOCK:
            return super()._by_range(descriptor)
        columns = self._columns(descriptor.selected_values)
        start = self._bound(descriptor.from_value)
        end = min(self._bound(descriptor.to_value), self._meter_now())
        if end < start:
            return []
        return [tuple(row[c] for c in columns) for row in self._range_rows(start, end)]

    def _bound(self, value: Data) -> dt.datetime:
        try:
            moment = decode_date_time(value, "range bound").to_datetime()
        except DecodeError as exc:
            raise CosemAccessError(AccessResult.OTHER_REASON, f"range bound: {exc}") from None
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=self._tz)

    def _get(self, attribute: int, selective_access: SelectiveAccessDescriptor | None) -> Data:
        if attribute == 4:
            return Data.double_long_unsigned(self._capture_seconds())
        return super()._get(attribute, selective_access)

    def _set(self, attribute: int, value: Data) -> None:
        if attribute == 4 and self._set_period is not None:
            self._set_period(expect_int(value, DataTag.DOUBLE_LONG_UNSIGNED, what="capture_period"))
        elif attribute in (2, 3):
            raise CosemAccessError(AccessResult.READ_WRITE_DENIED, f"{self!r} is computed")
        else:
            super()._set(attribute, value)

    def _action(self, method: int, parameters: Data | None) -> Data | None:
        raise CosemAccessError(AccessResult.READ_WRITE_DENIED, f"{self!r} is computed")


# --- the binding ----------------------------------------------------------------------------


def _stamp(local: dt.datetime) -> Data:
    return date_time_value(CosemDateTime.from_datetime(local))


def _register_set(registers: Registers, kind: int) -> RegisterSet:
    return (
        registers.active_import,
        registers.active_export,
        registers.reactive_import,
        registers.reactive_export,
    )[kind - 1]


def _register_value(registers: Registers, kind: int, tier: int) -> int:
    values = _register_set(registers, kind)
    return values.total if tier == 0 else values.tiers[tier - 1]


class _Binding:
    """The model-side callbacks of one meter's live objects."""

    def __init__(
        self, plan: FleetPlan, index: int, state: MeterState, clock: SimClock, tz: dt.tzinfo
    ) -> None:
        self.plan = plan
        self.index = index
        self.state = state
        self.model = state.model
        self.clock = clock
        self.tz = tz

    def now(self) -> dt.datetime:
        return self.clock.now()

    def meter_now(self) -> dt.datetime:
        return self.model.meter_time(self.now())

    def first(self) -> dt.datetime:
        return self.plan.history_start

    def register(self, kind: int, tier: int) -> int:
        return _register_value(self.model.registers(self.now()), kind, tier)

    def active_power(self) -> int:
        """Average import power (W) over the current 15-minute slot so far."""
        now = self.now()
        start = dt.datetime.fromtimestamp(math.floor(now.timestamp() / 900) * 900, dt.UTC)
        start = max(start, self.plan.history_start)
        elapsed = (now - start).total_seconds()
        if elapsed < 1.0:
            return 0
        energy = (
            self.model.registers(now).active_import.total
            - self.model.registers(start).active_import.total
        )
        return round(max(energy, 0) * 3600.0 / elapsed)

    def measurand(self, voltage: bool, phase: int, factor: float) -> int:
        """Average voltage or current of the last capture period (raw, scaled by ``factor``)."""
        end = self.meter_now()
        start = end - dt.timedelta(minutes=self.model.capture_minutes(self.now()))
        rows = self.model.measurands(max(start, self.plan.history_start), end)
        if not rows:
            return 0
        values = rows[-1].voltages if voltage else rows[-1].currents
        return round(values[phase] * factor) if phase < len(values) else 0

    def status_word(self, word: int) -> Data:
        words = self.model.status_words(self.now())
        value = (words.normal1, words.normal2, words.extended1, words.extended2)[word]
        return Data.long_unsigned(value)

    def alarm_register(self) -> Data:
        return Data.double_long_unsigned(alarm_bits(self.model.alarm_register(self.now())))

    def clear_alarms(self, _: Data) -> None:
        self.model.clear_alarms(self.now())

    def alarm_filter(self) -> Data:
        return Data.double_long_unsigned(alarm_bits(StatusWords(*self.model.alarm_masks)))

    def set_alarm_filter(self, value: Data) -> None:
        bits = expect_int(value, DataTag.DOUBLE_LONG_UNSIGNED, what="alarm_filter")
        self.model.alarm_masks = _masks_from_filter(bits)

    def firmware(self) -> Data:
        version = self.model.firmware_version(self.now())
        return Data.octet_string(f"{_FIRMWARE_PREFIX}{version}".encode("ascii"))

    def activate(self, identifier: bytes, _: bytes) -> None:
        """Image activation: the identifier (``NXM-1.2.0`` or ``1.2.0``) is the new version."""
        try:
            text = identifier.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError("the image identifier is not ASCII") from None
        version = text.removeprefix(_FIRMWARE_PREFIX)
        if not version:
            raise ValueError("empty image identifier")
        self.model.activate_firmware(version, self.now())

    def invocation_counter(self) -> Data:
        return Data.double_long_unsigned(self.state.invocation_counter.value)

    def capture_seconds(self) -> int:
        return self.model.capture_minutes(self.now()) * 60

    def set_capture_seconds(self, seconds: int) -> None:
        if seconds % 60:
            raise CosemAccessError(AccessResult.OTHER_REASON, "capture period in whole minutes")
        try:
            self.model.set_capture_period(seconds // 60, self.now())
        except MeterModelError as exc:
            raise CosemAccessError(AccessResult.OTHER_REASON, str(exc)) from None

    # -- profile rows ----------------------------------------------------------------------

    def _lp(self, start: dt.datetime, end: dt.datetime) -> list[LoadProfileRow]:
        # The model's range is (start, end]; DLMS ranges include their start.
        return self.model.load_profile(start - dt.timedelta(seconds=1), end)

    def load_profile_rows(self, start: dt.datetime, end: dt.datetime) -> list[Row]:
        return [
            (
                _stamp(row.clock),
                Data.unsigned(int(row.status)),
                Data.double_long_unsigned(
                    _clamp(row.active_import_wh, DataTag.DOUBLE_LONG_UNSIGNED)
                ),
                Data.double_long_unsigned(
                    _clamp(row.active_export_wh, DataTag.DOUBLE_LONG_UNSIGNED)
                ),
                Data.double_long_unsigned(
                    _clamp(row.reactive_import_varh, DataTag.DOUBLE_LONG_UNSIGNED)
                ),
                Data.double_long_unsigned(
                    _clamp(row.reactive_export_varh, DataTag.DOUBLE_LONG_UNSIGNED)
                ),
            )
            for row in self._lp(start, end)
        ]

    def measurand_rows(self, start: dt.datetime, end: dt.datetime) -> list[Row]:
        # The model's range is (start, end]; DLMS ranges include their start.
        rows: list[Row] = []
        for m in self.model.measurands(start - dt.timedelta(seconds=1), end):
            volts, amps = measurand_values(m)
            cells = (Data.long_unsigned(v) for v in (*volts, *amps))
            rows.append((_stamp(m.clock), Data.unsigned(int(m.status)), *cells))
        return rows

    def billing_rows(self, start: dt.datetime, end: dt.datetime) -> list[Row]:
        now = self.now()
        first = to_local(start, self.model.time_zone).date() - dt.timedelta(days=1)
        last = to_local(end, self.model.time_zone).date()
        rows: list[Row] = []
        day = first
        while day <= last:
            found = self._billing(day, now)
            if found is not None and start <= found.clock <= end:
                rows.append(self._billing_row(found))
            day += dt.timedelta(days=1)
        return rows

    def _billing(self, day: dt.date, now: dt.datetime) -> BillingRow | None:
        try:
            row = self.model.billing_row(day)
        except MeterModelError:
            return None  # that midnight is before installation
        return row if row is not None and row.captured_utc <= now else None

    @staticmethod
    def _billing_row(row: BillingRow) -> Row:
        values = map(Data.double_long_unsigned, register_values(row.registers))
        return (_stamp(row.clock), Data.unsigned(0), *values)


@functools.cache
def _object_rights() -> tuple[dict[int, AccessRights], ...]:
    """Each profile object's rights by client SAP, in the profile's order (built once)."""
    profile = _profile()
    return tuple(
        {profile.association(name).client_sap: r for name, r in spec.access.items()}
        for spec in profile.objects
    )


Make = Callable[[_Binding, ObjectSpec], CosemObject]
"""Builds one live object of a meter from its profile spec and the meter's binding."""


@functools.cache
def _live_objects() -> dict[tuple[int, Obis], Make]:
    """Factories of the objects the model drives, by (class id, OBIS): made once per
    process, bound to each meter's ``_Binding`` when its device is built."""
    factories: dict[tuple[int, Obis], Make] = {}

    def register(obis: Obis, read: Callable[..., int], *args: object) -> None:
        def make(b: _Binding, spec: ObjectSpec) -> CosemObject:
            settings = spec.settings
            if not isinstance(settings, RegisterSettings):
                raise TypeError(f"{spec.name} is not a register")
            tag = spec.attributes[2].type
            bound = functools.partial(read, b, *args)
            return _LiveRegister(spec.obis, tag, settings.scaler, settings.unit, bound)

        factories[(3, obis)] = make

    def data(
        obis: Obis,
        read: Callable[..., Data],
        write: Callable[[_Binding, Data], None] | None,
        *args: object,
    ) -> None:
        def make(b: _Binding, spec: ObjectSpec) -> CosemObject:
            writes = None if write is None else functools.partial(write, b)
            return _LiveData(spec.obis, functools.partial(read, b, *args), writes)

        factories[(1, obis)] = make

    for kind in (1, 2, 3, 4):
        for tier in range(7):
            register(Obis(1, 0, kind, 8, tier, 255), _Binding.register, kind, tier)
    register(_ACTIVE_POWER, _Binding.active_power)
    for c, phase in _VOLTAGES.items():
        register(Obis(1, 0, c, 25, 0, 255), _Binding.measurand, True, phase, 10.0)
    for c, phase in _CURRENTS.items():
        register(Obis(1, 0, c, 25, 0, 255), _Binding.measurand, False, phase, 100.0)
    for word, obis in enumerate(_STATUS_WORDS):
        data(obis, _Binding.status_word, None, word)
    data(_ALARM_REGISTER, _Binding.alarm_register, _Binding.clear_alarms)
    data(_ALARM_FILTER, _Binding.alarm_filter, _Binding.set_alarm_filter)
    data(FIRMWARE_VERSION, _Binding.firmware, None)
    data(_INVOCATION_COUNTER, _Binding.invocation_counter, None)

    def clock(b: _Binding, spec: ObjectSpec) -> CosemObject:
        return _MeterClock(spec.obis, b.tz, b.model, b.now)

    factories[(8, CLOCK)] = clock

    def breaker(b: _Binding, spec: ObjectSpec) -> CosemObject:
        settings = spec.settings
        mode = settings.control_mode if isinstance(settings, DisconnectSettings) else 1
        return _MeterBreaker(spec.obis, mode, b.model, b.now)

    factories[(70, DISCONNECT)] = breaker

    def profile_of(
        rows: Callable[[_Binding, dt.datetime, dt.datetime], list[Row]], period: bool
    ) -> Make:
        def make(b: _Binding, spec: ObjectSpec) -> CosemObject:
            settings = spec.settings
            if not isinstance(settings, ProfileSettings):
                raise TypeError(f"{spec.name} is not a profile")
            return _ModelProfile(
                spec,
                settings,
                b.tz,
                functools.partial(rows, b),
                b.meter_now,
                b.first,
                b.capture_seconds if period else None,
                b.set_capture_seconds if period else None,
            )

        return make

    factories[(7, LOAD_PROFILE)] = profile_of(_Binding.load_profile_rows, True)
    factories[(7, MEASURAND_PROFILE)] = profile_of(_Binding.measurand_rows, True)
    factories[(7, BILLING)] = profile_of(_Binding.billing_rows, False)
    return factories


@dataclass(frozen=True, slots=True)
class _LiveSpec:
    """One live object of the profile: how to make it, its rights and the profile values
    it starts with (a register's or data object's value is computed, never set)."""

    spec: ObjectSpec
    rights: dict[int, AccessRights]
    make: Make
    values: tuple[tuple[int, Data], ...]


@functools.cache
def _device_plan() -> tuple[DeviceProfile, tuple[_LiveSpec, ...]]:
    """The profile without the live objects (``build_device`` builds those) and the live
    objects in profile order: the same for every meter, so worked out once."""
    profile = _profile()
    factories = _live_objects()
    live = []
    for spec, rights in zip(profile.objects, _object_rights(), strict=True):
        make = factories.get((spec.class_id, spec.obis))
        if make is None:
            continue
        skip = (2,) if spec.class_id in (1, 3) else ()
        values = tuple(
            (attribute, attr.value)
            for attribute, attr in spec.attributes.items()
            if attr.value is not None and attribute not in skip
        )
        live.append(_LiveSpec(spec, rights, make, values))
    static = dataclasses.replace(
        profile,
        objects=tuple(o for o in profile.objects if (o.class_id, o.obis) not in factories),
    )
    return static, tuple(live)


def build_meter_device(
    plan: FleetPlan,
    index: int,
    clock: SimClock,
    *,
    state: MeterState | None = None,
    on_push: PushHook | None = None,
) -> MeterDevice:
    """The served device of meter ``index`` of ``plan`` on simulated time ``clock``.

    ``state`` carries the model and invocation counters of a meter already built once
    (``MeterDevices`` does this); without it the model starts from the plan.
    """
    spec = plan.meter(index)
    state = state or MeterState(plan.meter_model(index))
    static, live = _device_plan()
    tz = zone(spec.time_zone)
    binding = _Binding(plan, index, state, clock, tz)
    title = meter_system_title(index)
    device = build_device(
        static,
        tz=tz,
        time_source=clock.now,
        values={
            (_LOGICAL_DEVICE_NAME, 2): Data.octet_string(f"NXM{index:013d}".encode("ascii")),
            (_SERIAL, 2): Data.octet_string(spec.serial.encode("ascii")),
            (_SECURITY_SETUP, 5): Data.octet_string(title),
        },
        secrets={"management": meter_lls_password(plan, index)},
    )
    for item in live:
        obj = item.make(binding, item.spec)
        for attribute, value in item.values:
            obj.set(attribute, value)
        device.add(obj, item.rights)
    associations = _associations(device, spec)
    served = ServedDevice(
        device,
        associations,
        system_title=title,
        invocation_counter=state.invocation_counter,
        guard=state.guard,
    )
    push = device.find(40, PUSH_SETUP)
    image = device.find(18, IMAGE_TRANSFER)
    breaker = device.find(70, DISCONNECT)
    if not isinstance(push, PushSetup) or not isinstance(image, ImageTransfer):
        raise TypeError("the NEXY-M profile lost its push setup or image transfer")
    if not isinstance(breaker, DisconnectControl):
        raise TypeError("the NEXY-M profile lost its disconnect control")
    image.on_activate = binding.activate
    if on_push is not None:
        push.on_push = functools.partial(on_push, index)
    return MeterDevice(index, spec, state.model, device, associations, served, push, image, breaker)


def _association_object(device: LogicalDevice, sap: int) -> AssociationLN:
    """The current association object (0.0.40.0.0.255) as client ``sap`` sees it."""
    try:
        obj = device.visible_object(sap, AssociationLN.CLASS_ID, CURRENT_ASSOCIATION_OBIS)
    except CosemAccessError:
        obj = None
    if not isinstance(obj, AssociationLN):
        raise TypeError(f"the NEXY-M profile has no association object for client {sap}")
    return obj


def _associations(device: LogicalDevice, spec: MeterSpec) -> dict[int, ServerAssociation]:
    encryption_key, authentication_key = spec.device_keys
    return {
        PUBLIC_SAP: ServerAssociation(association=_association_object(device, PUBLIC_SAP)),
        MANAGEMENT_SAP: ServerAssociation(
            AuthenticationMechanism.LOW,
            association=_association_object(device, MANAGEMENT_SAP),
        ),
        HEAD_END_SAP: ServerAssociation(
            AuthenticationMechanism.HIGH_GMAC,
            encryption_key=encryption_key,
            authentication_key=authentication_key,
            security=SecurityPolicy(authenticated=True, encrypted=True),
            association=_association_object(device, HEAD_END_SAP),
        ),
    }


class MeterDevices:
    """Meter devices of a plan, built on first use and kept in a bounded LRU cache.

    ``get(index)`` returns the device (building it if needed); ``pin(index)`` builds one
    that is never evicted (point-to-point meters held by their own server). Models and
    invocation counters outlive evictions (``state``).
    """

    def __init__(
        self,
        plan: FleetPlan,
        clock: SimClock,
        *,
        capacity: int = 2048,
        on_push: PushHook | None = None,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"cache capacity must be positive, got {capacity}")
        self.plan = plan
        self.clock = clock
        self.capacity = capacity
        self.on_push = on_push
        self._states: dict[int, MeterState] = {}
        self._cache: OrderedDict[int, MeterDevice] = OrderedDict()
        self._pinned: dict[int, MeterDevice] = {}
        self.builds = 0

    def state(self, index: int) -> MeterState:
        """The persistent state of meter ``index`` (its model is created on first use)."""
        found = self._states.get(index)
        if found is None:
            found = MeterState(self.plan.meter_model(index))
            self._states[index] = found
        return found

    def model(self, index: int) -> MeterModel:
        return self.state(index).model

    def _build(self, index: int) -> MeterDevice:
        self.builds += 1
        return build_meter_device(
            self.plan, index, self.clock, state=self.state(index), on_push=self.on_push
        )

    def get(self, index: int) -> MeterDevice:
        """The device of meter ``index``."""
        pinned = self._pinned.get(index)
        if pinned is not None:
            return pinned
        found = self._cache.get(index)
        if found is not None:
            self._cache.move_to_end(index)
            return found
        built = self._build(index)
        self._cache[index] = built
        if len(self._cache) > self.capacity:
            self._cache.popitem(last=False)
        return built

    def served(self, index: int) -> ServedDevice:
        """What a server or gateway hands to a connection for meter ``index``."""
        return self.get(index).served

    def pin(self, index: int) -> MeterDevice:
        """The device of meter ``index``, kept for good."""
        found = self._cache.pop(index, None) or self._pinned.get(index) or self._build(index)
        self._pinned[index] = found
        return found

    @property
    def cached(self) -> int:
        """Devices currently built (cached and pinned)."""
        return len(self._cache) + len(self._pinned)

    @property
    def touched(self) -> int:
        """Meters with a model in memory."""
        return len(self._states)

    def indices(self) -> Sequence[int]:
        """Meters with a model in memory, in first-use order."""
        return tuple(self._states)
