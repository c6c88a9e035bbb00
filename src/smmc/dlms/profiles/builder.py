"""Build a ``LogicalDevice`` from a profile, and the client's decode map of that profile.

The simulator serves exactly what the profile lists (objects, types, access rights per
association); the head-end uses the same profile to know the type, scaler and unit of what
it reads, including each column of a profile generic buffer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from smmc.dlms.axdr import BitString, Data, DataTag
from smmc.dlms.cosem.activity_calendar import ActivityCalendar
from smmc.dlms.cosem.association_ln import AssociationLN
from smmc.dlms.cosem.base import CosemAccessError, CosemObject, LogicalDevice
from smmc.dlms.cosem.clock import Clock, TimeSource, system_time
from smmc.dlms.cosem.data import DataObject
from smmc.dlms.cosem.demand_register import DemandRegister
from smmc.dlms.cosem.disconnect_control import DisconnectControl
from smmc.dlms.cosem.extended_register import ExtendedRegister
from smmc.dlms.cosem.image_transfer import ImageTransfer
from smmc.dlms.cosem.limiter import Limiter
from smmc.dlms.cosem.profile_generic import ProfileGeneric
from smmc.dlms.cosem.push_setup import PushSetup
from smmc.dlms.cosem.register import Register
from smmc.dlms.cosem.script_table import ScriptTable
from smmc.dlms.cosem.security_setup import SecuritySetup
from smmc.dlms.obis import Obis
from smmc.dlms.profiles.schema import (
    AssociationSettings,
    CalendarSettings,
    DeviceProfile,
    DisconnectSettings,
    ImageSettings,
    LimiterSettings,
    ObjectSpec,
    ProfileError,
    ProfileSettings,
    PushSettings,
    RegisterSettings,
    ScriptSettings,
    SecuritySettings,
    tag_name,
)

__all__ = ["AttributeInfo", "DecodeMap", "build_device", "check_device", "default_value"]


def default_value(tag: DataTag) -> Data:
    """The zero/empty value of a type, used when a profile declares a type but no value."""
    if tag in (DataTag.FLOAT32, DataTag.FLOAT64):
        return Data(tag, 0.0)
    defaults: dict[DataTag, Data] = {
        DataTag.BOOLEAN: Data.boolean(False),
        DataTag.OCTET_STRING: Data.octet_string(b""),
        DataTag.VISIBLE_STRING: Data.visible_string(""),
        DataTag.UTF8_STRING: Data.utf8_string(""),
        DataTag.BIT_STRING: Data.bit_string(BitString(b"", 0)),
        DataTag.ARRAY: Data.array(()),
        DataTag.STRUCTURE: Data.structure(()),
    }
    if tag in defaults:
        return defaults[tag]
    if tag in (DataTag.NULL_DATA, DataTag.DONT_CARE, DataTag.COMPACT_ARRAY) or tag >= 25:
        return Data.null()
    return Data(tag, 0)


def _create(
    spec: ObjectSpec,
    values: Mapping[int, Data],
    profile: DeviceProfile,
    tz: dt.tzinfo,
    time_source: TimeSource,
    secrets: Mapping[str, bytes],
) -> CosemObject:
    s, ln = spec.settings, spec.obis

    def _initial(attribute: int) -> Data | None:
        if attribute in values:
            return values[attribute]
        attr = spec.attributes.get(attribute)
        return None if attr is None else default_value(attr.type)

    def _octets(attribute: int) -> bytes:
        value = _initial(attribute)
        raw = None if value is None else value.value
        return raw if isinstance(raw, bytes) else b""

    if spec.class_id == 1:
        return DataObject(ln, _initial(2))
    if isinstance(s, RegisterSettings):
        if spec.class_id == 3:
            return Register(ln, _initial(2), s.scaler, s.unit)
        if spec.class_id == 4:
            return ExtendedRegister(ln, _initial(2), s.scaler, s.unit, _initial(4))
        return DemandRegister(ln, _initial(2), s.scaler, s.unit)
    if isinstance(s, ProfileSettings):
        return ProfileGeneric(ln, s.capture_objects, s.capture_period, s.profile_entries)
    if spec.class_id == 8:
        return Clock(ln, tz, time_source)
    if isinstance(s, ScriptSettings):
        return ScriptTable(ln, s.scripts)
    if isinstance(s, AssociationSettings):
        assoc = profile.association(s.association)
        security = _security_setup_for(profile, s.association)
        return AssociationLN(
            ln,
            client_sap=assoc.client_sap,
            context=assoc.context,
            mechanism=assoc.authentication,
            secret=secrets.get(s.association, b""),
            security_setup=security,
        )
    if isinstance(s, ImageSettings):
        return ImageTransfer(ln, s.block_size)
    if isinstance(s, CalendarSettings):
        return ActivityCalendar(ln, active=s.calendar)
    if isinstance(s, PushSettings):
        return PushSetup(ln, s.objects, s.transport, s.destination)
    if isinstance(s, SecuritySettings):
        return SecuritySetup(ln, s.policy, s.suite, _octets(4), _octets(5))
    if isinstance(s, DisconnectSettings):
        return DisconnectControl(ln, s.control_mode)
    if isinstance(s, LimiterSettings):
        return Limiter(ln, s.monitored, s.threshold, s.min_over, s.min_under, s.over, s.under)
    raise ProfileError(f'object "{spec.name}" ({ln}): class {spec.class_id} cannot be built')


def _security_setup_for(profile: DeviceProfile, association: str) -> Obis | None:
    """The first security setup the association can see (its attribute 9 reference)."""
    for spec in profile.objects:
        if spec.class_id == 64 and association in spec.access:
            return spec.obis
    return None


# Attributes a constructor already took from the profile, so they are not SET again.
_CONSUMED: dict[int, frozenset[int]] = {
    1: frozenset({2}),
    3: frozenset({2}),
    4: frozenset({2, 4}),
    5: frozenset({2}),
    64: frozenset({4, 5}),
}


def build_device(
    profile: DeviceProfile,
    *,
    tz: dt.tzinfo = dt.UTC,
    time_source: TimeSource = system_time,
    values: Mapping[tuple[Obis, int], Data] | None = None,
    secrets: Mapping[str, bytes] | None = None,
) -> LogicalDevice:
    """A logical device exposing exactly the profile.

    ``values`` overrides static values per (OBIS, attribute) for one meter (serial number,
    logical device name, system titles…); ``secrets`` gives each association's LLS
    password or HLS secret by association name.
    """
    device = LogicalDevice()
    overrides = dict(values or {})
    for spec in profile.objects:
        initial = {a: v.value for a, v in spec.attributes.items() if v.value is not None}
        for attribute in spec.attributes:
            override = overrides.pop((spec.obis, attribute), None)
            if override is not None:
                initial[attribute] = override
        obj = _create(spec, initial, profile, tz, time_source, secrets or {})
        consumed = _CONSUMED.get(spec.class_id, frozenset())
        for attribute, value in initial.items():
            if attribute in consumed:
                continue
            try:
                obj.set(attribute, value)
            except CosemAccessError as exc:
                where = f'object "{spec.name}" ({spec.obis})'
                raise ProfileError(f"{where}, attribute {attribute}: {exc}") from None
        rights = {profile.association(name).client_sap: r for name, r in spec.access.items()}
        if isinstance(spec.settings, AssociationSettings):
            sap = profile.association(spec.settings.association).client_sap
            device.add_private(sap, obj, rights[sap])
        else:
            device.add(obj, rights)
    if overrides:
        (obis, attribute), _ = next(iter(overrides.items()))
        raise ProfileError(f"value override for {obis} attribute {attribute}: not in the profile")
    device.name = _logical_device_name(device)
    return device


def _logical_device_name(device: LogicalDevice) -> bytes:
    try:
        value = device.get(1, Obis(0, 0, 42, 0, 0, 255), 2).value
    except CosemAccessError:
        return b""
    return value if isinstance(value, bytes) else b""


def _locate(device: LogicalDevice, profile: DeviceProfile, spec: ObjectSpec) -> CosemObject | None:
    if isinstance(spec.settings, AssociationSettings):
        sap = profile.association(spec.settings.association).client_sap
        for obj, _ in device.visible(sap):
            if spec.class_id == obj.CLASS_ID and obj.logical_name == spec.obis:
                return obj
        return None
    try:
        return device.find(spec.class_id, spec.obis)
    except CosemAccessError:
        return None


def check_device(device: LogicalDevice, profile: DeviceProfile) -> list[str]:
    """Differences between a device and its profile (empty when they agree).

    Checks that every profile object exists with its class and version, that each declared
    attribute reads back with the declared type, and that each association's rights match.
    """
    problems: list[str] = []
    for spec in profile.objects:
        where = f'object "{spec.name}" ({spec.obis})'
        obj = _locate(device, profile, spec)
        if obj is None:
            problems.append(f"{where}: missing")
            continue
        if spec.version != obj.VERSION:
            problems.append(f"{where}: version {obj.VERSION}, profile says {spec.version}")
        for name, rights in spec.access.items():
            sap = profile.association(name).client_sap
            if device.rights(sap, spec.class_id, spec.obis) != rights:
                problems.append(f"{where}: rights of {name} differ")
        for attribute, attr in spec.attributes.items():
            tag = obj.get(attribute).tag
            if tag is not attr.type:
                problems.append(
                    f"{where} attribute {attribute}: {tag_name(tag)}, "
                    f"profile says {tag_name(attr.type)}"
                )
    return problems


# -- client side ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttributeInfo:
    """What a client needs to interpret one attribute."""

    class_id: int
    obis: Obis
    attribute: int
    type: DataTag | None
    scaler: int | None = None
    unit: int | None = None

    def scale(self, value: Data) -> float | int:
        """The value in its unit (raw × 10^scaler); unscaled numbers pass through."""
        raw = value.value
        if not isinstance(raw, int | float) or isinstance(raw, bool):
            raise ValueError(f"{self.obis} attribute {self.attribute} is not numeric")
        if self.scaler is None or self.scaler == 0:
            return raw
        return raw * 10.0**self.scaler


class DecodeMap:
    """(OBIS, attribute) → type, scaler and unit, as declared by a profile."""

    def __init__(self, profile: DeviceProfile) -> None:
        self._info: dict[tuple[Obis, int], AttributeInfo] = {}
        self._columns: dict[Obis, tuple[AttributeInfo | None, ...]] = {}
        for spec in profile.objects:
            s = spec.settings
            scaled = {3: (2,), 4: (2,), 5: (2, 3)}.get(spec.class_id, ())
            for attribute, attr in spec.attributes.items():
                scaler, unit = (
                    (s.scaler, s.unit)
                    if isinstance(s, RegisterSettings) and attribute in scaled
                    else (None, None)
                )
                key = (spec.obis, attribute)
                self._info.setdefault(
                    key, AttributeInfo(spec.class_id, spec.obis, attribute, attr.type, scaler, unit)
                )
            if isinstance(s, RegisterSettings):
                for attribute in scaled:
                    self._info.setdefault(
                        (spec.obis, attribute),
                        AttributeInfo(spec.class_id, spec.obis, attribute, None, s.scaler, s.unit),
                    )
        for spec in profile.objects:
            if isinstance(spec.settings, ProfileSettings):
                self._columns[spec.obis] = tuple(
                    self._info.get((c.logical_name, c.attribute_index))
                    for c in spec.settings.capture_objects
                )

    def info(self, obis: Obis, attribute: int) -> AttributeInfo | None:
        """What the profile says about an attribute (``None`` if nothing)."""
        return self._info.get((obis, attribute))

    def columns(self, obis: Obis) -> tuple[AttributeInfo | None, ...]:
        """For a profile generic, the info of each captured column (``KeyError`` if unknown)."""
        return self._columns[obis]
