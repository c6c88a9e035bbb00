"""The JSON device-profile format and its validating loader.

A profile lists the COSEM objects of a device model: OBIS, interface class and version, the
DLMS type (and optional static value) of attributes, scaler/unit of registers, the settings
particular to each class, and the access rights of each association (client SAP). The
loader checks everything and names the object and field of the first problem it finds; see
``docs/protocol/device-profiles.md``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Final, TypeAlias, TypeVar

from smmc.dlms.apdu.selective_access import CaptureObjectDefinition
from smmc.dlms.axdr import BitString, Data, DataTag
from smmc.dlms.cosem import INTERFACE_CLASSES
from smmc.dlms.cosem.activity_calendar import Calendar, DayAction, DayProfile, Season, WeekProfile
from smmc.dlms.cosem.association_ln import AuthenticationMechanism, ContextName
from smmc.dlms.cosem.base import AccessRights, AttributeAccess, MethodAccess
from smmc.dlms.cosem.limiter import ScriptReference
from smmc.dlms.cosem.push_setup import TransportService
from smmc.dlms.cosem.register import Unit
from smmc.dlms.cosem.script_table import Script, ScriptAction, ScriptService
from smmc.dlms.cosem.security_setup import SecurityPolicy
from smmc.dlms.cosem_time import NOT_SPECIFIED, YEAR_NOT_SPECIFIED, CosemDateTime, CosemTime
from smmc.dlms.errors import DecodeError, DlmsError, EncodeError
from smmc.dlms.obis import Obis

__all__ = [
    "FORMAT",
    "UNIT_SYMBOLS",
    "AssociationSettings",
    "AssociationSpec",
    "AttributeSpec",
    "CalendarSettings",
    "DeviceProfile",
    "DisconnectSettings",
    "ImageSettings",
    "LimiterSettings",
    "NoSettings",
    "ObjectSpec",
    "ProfileError",
    "ProfileSettings",
    "PushSettings",
    "RegisterSettings",
    "ScriptSettings",
    "SecuritySettings",
    "Settings",
    "load_builtin",
    "load_profile",
    "parse_profile",
    "tag_name",
]

FORMAT: Final = "smmc-device-profile/1"

_C = TypeVar("_C")


class ProfileError(DlmsError):
    """A profile file is invalid; the message names the object and the field."""


# -- vocabularies ----------------------------------------------------------------------------

UNIT_SYMBOLS: Final[dict[str, Unit]] = {
    "a": Unit.YEAR,
    "mo": Unit.MONTH,
    "wk": Unit.WEEK,
    "d": Unit.DAY,
    "h": Unit.HOUR,
    "min": Unit.MINUTE,
    "s": Unit.SECOND,
    "°": Unit.DEGREE,
    "°C": Unit.CELSIUS,
    "W": Unit.WATT,
    "VA": Unit.VOLT_AMPERE,
    "var": Unit.VAR,
    "Wh": Unit.WATT_HOUR,
    "VAh": Unit.VOLT_AMPERE_HOUR,
    "varh": Unit.VAR_HOUR,
    "A": Unit.AMPERE,
    "C": Unit.COULOMB,
    "V": Unit.VOLT,
    "Hz": Unit.HERTZ,
    "%": Unit.PERCENTAGE,
    "other": Unit.OTHER,
    "count": Unit.COUNT,
}

_AUTHENTICATION: Final[dict[str, AuthenticationMechanism]] = {
    "none": AuthenticationMechanism.LOWEST,
    "lls": AuthenticationMechanism.LOW,
    "hls-gmac": AuthenticationMechanism.HIGH_GMAC,
}

_SECURITY: Final[dict[str, SecurityPolicy]] = {
    "none": SecurityPolicy.NOTHING,
    "authenticated": SecurityPolicy.ALL_AUTHENTICATED,
    "encrypted": SecurityPolicy.ALL_ENCRYPTED,
    "authenticated-encrypted": SecurityPolicy.ALL_AUTHENTICATED_AND_ENCRYPTED,
}

_SERVICES: Final[dict[str, ScriptService]] = {
    "write": ScriptService.WRITE_ATTRIBUTE,
    "execute": ScriptService.EXECUTE_METHOD,
}

_TRANSPORTS: Final[dict[str, TransportService]] = {t.name.lower(): t for t in TransportService}


def tag_name(tag: DataTag) -> str:
    """The profile spelling of a DLMS type: ``double-long-unsigned``, ``octet-string``…"""
    return tag.name.lower().replace("_", "-")


_TYPES: Final[dict[str, DataTag]] = {tag_name(t): t for t in DataTag}

_INT_CONSTRUCTORS: Final[dict[DataTag, Callable[[int], Data]]] = {
    DataTag.INTEGER: Data.integer,
    DataTag.LONG: Data.long,
    DataTag.UNSIGNED: Data.unsigned,
    DataTag.LONG_UNSIGNED: Data.long_unsigned,
    DataTag.DOUBLE_LONG: Data.double_long,
    DataTag.DOUBLE_LONG_UNSIGNED: Data.double_long_unsigned,
    DataTag.LONG64: Data.long64,
    DataTag.LONG64_UNSIGNED: Data.long64_unsigned,
    DataTag.ENUM: Data.enum,
    DataTag.BCD: Data.bcd,
}


# -- typed result ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AssociationSpec:
    """One association the device accepts."""

    name: str
    client_sap: int
    authentication: AuthenticationMechanism
    security: SecurityPolicy

    @property
    def context(self) -> ContextName:
        """Logical-name referencing, with ciphering when the policy asks for it."""
        if self.security is SecurityPolicy.NOTHING:
            return ContextName.LOGICAL_NAME
        return ContextName.LOGICAL_NAME_WITH_CIPHERING


@dataclass(frozen=True, slots=True)
class AttributeSpec:
    """The declared DLMS type of an attribute and its static value, if any."""

    type: DataTag
    value: Data | None = None


@dataclass(frozen=True, slots=True)
class NoSettings:
    """Classes without settings of their own (Data, Clock)."""


@dataclass(frozen=True, slots=True)
class RegisterSettings:
    """Registers (3, 4, 5): scaler and unit."""

    scaler: int
    unit: int


@dataclass(frozen=True, slots=True)
class ProfileSettings:
    """Profile generic (7)."""

    capture_objects: tuple[CaptureObjectDefinition, ...]
    capture_period: int
    profile_entries: int


@dataclass(frozen=True, slots=True)
class ScriptSettings:
    """Script table (9)."""

    scripts: tuple[Script, ...]


@dataclass(frozen=True, slots=True)
class AssociationSettings:
    """Association LN (15): which association of the profile this object describes."""

    association: str


@dataclass(frozen=True, slots=True)
class ImageSettings:
    """Image transfer (18)."""

    block_size: int


@dataclass(frozen=True, slots=True)
class CalendarSettings:
    """Activity calendar (20): the calendar active when the device starts."""

    calendar: Calendar


@dataclass(frozen=True, slots=True)
class PushSettings:
    """Push setup (40)."""

    objects: tuple[CaptureObjectDefinition, ...]
    transport: TransportService
    destination: bytes


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    """Security setup (64)."""

    policy: SecurityPolicy
    suite: int


@dataclass(frozen=True, slots=True)
class DisconnectSettings:
    """Disconnect control (70)."""

    control_mode: int


@dataclass(frozen=True, slots=True)
class LimiterSettings:
    """Limiter (71)."""

    monitored: tuple[int, Obis, int]
    threshold: Data
    min_over: int
    min_under: int
    over: ScriptReference
    under: ScriptReference


Settings: TypeAlias = (
    NoSettings
    | RegisterSettings
    | ProfileSettings
    | ScriptSettings
    | AssociationSettings
    | ImageSettings
    | CalendarSettings
    | PushSettings
    | SecuritySettings
    | DisconnectSettings
    | LimiterSettings
)


@dataclass(frozen=True, slots=True)
class ObjectSpec:
    """One COSEM object of the profile."""

    name: str
    obis: Obis
    class_id: int
    version: int
    attributes: Mapping[int, AttributeSpec]
    access: Mapping[str, AccessRights]
    settings: Settings = field(default_factory=NoSettings)


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    """A validated device profile."""

    model: str
    description: str
    associations: tuple[AssociationSpec, ...]
    objects: tuple[ObjectSpec, ...]

    def association(self, name: str) -> AssociationSpec:
        """The association with this name (``KeyError`` if none)."""
        for a in self.associations:
            if a.name == name:
                return a
        raise KeyError(name)

    def object(self, name: str) -> ObjectSpec:
        """The object with this name (``KeyError`` if none)."""
        for o in self.objects:
            if o.name == name:
                return o
        raise KeyError(name)


# -- JSON reading helpers --------------------------------------------------------------------

_MISSING: Final = object()


class _Node:
    """A JSON object being read, with the location used in error messages."""

    def __init__(self, raw: object, where: str) -> None:
        if not isinstance(raw, dict) or not all(isinstance(k, str) for k in raw):
            raise ProfileError(f"{where}: expected a JSON object")
        self.raw: dict[str, object] = raw
        self.where = where
        self._seen: set[str] = set()

    def error(self, key: str, message: str) -> ProfileError:
        return ProfileError(f'{self.where}, field "{key}": {message}')

    def get(self, key: str, default: object = _MISSING) -> object:
        self._seen.add(key)
        if key in self.raw:
            return self.raw[key]
        if default is _MISSING:
            raise self.error(key, "missing")
        return default

    def integer(self, key: str, lo: int, hi: int, default: object = _MISSING) -> int:
        value = self.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise self.error(key, f"must be an integer {lo}..{hi}, got {value!r}")
        return value

    def text(self, key: str, default: object = _MISSING) -> str:
        value = self.get(key, default)
        if not isinstance(value, str):
            raise self.error(key, f"must be a string, got {value!r}")
        return value

    def items(self, key: str, default: object = _MISSING) -> list[object]:
        value = self.get(key, default)
        if not isinstance(value, list):
            raise self.error(key, f"must be a list, got {value!r}")
        return value

    def obis(self, key: str) -> Obis:
        text = self.text(key)
        try:
            return Obis.parse(text)
        except (DecodeError, EncodeError) as exc:
            raise self.error(key, str(exc)) from None

    def choice(self, key: str, options: Mapping[str, _C], default: str | None = None) -> _C:
        value = self.get(key, _MISSING if default is None else default)
        if isinstance(value, str) and value in options:
            return options[value]
        raise self.error(key, f"must be one of {', '.join(sorted(options))}, got {value!r}")

    def child(self, key: str, default: object = _MISSING) -> _Node:
        return _Node(self.get(key, default), f'{self.where}, field "{key}"')

    def done(self) -> None:
        unknown = sorted(set(self.raw) - self._seen)
        if unknown:
            raise self.error(unknown[0], "unknown field")


# -- values ----------------------------------------------------------------------------------


def data_from_json(raw: object, where: str) -> Data:
    """A typed value ``{"type": ..., "value": ...}`` (arrays/structures nest such objects)."""
    node = _Node(raw, where)
    tag = node.choice("type", _TYPES)
    value = _value(node, tag)
    node.done()
    return value


def _value(node: _Node, tag: DataTag, key: str = "value") -> Data:
    raw = node.get(key)
    try:
        return _convert(tag, raw, f'{node.where}, field "{key}"')
    except (EncodeError, ValueError) as exc:
        raise node.error(key, f"not a valid {tag_name(tag)}: {exc}") from None


def _convert(tag: DataTag, raw: object, where: str) -> Data:
    if tag in _INT_CONSTRUCTORS:
        if not isinstance(raw, int) or isinstance(raw, bool):
            raise ValueError(f"expected an integer, got {raw!r}")
        return _INT_CONSTRUCTORS[tag](raw)
    if tag is DataTag.NULL_DATA and raw is None:
        return Data.null()
    if tag is DataTag.BOOLEAN and isinstance(raw, bool):
        return Data.boolean(raw)
    if tag in (DataTag.FLOAT32, DataTag.FLOAT64) and isinstance(raw, int | float):
        return Data(tag, float(raw))
    if isinstance(raw, str):
        if tag is DataTag.OCTET_STRING:
            return Data.octet_string(octets(raw))
        if tag is DataTag.VISIBLE_STRING:
            return Data.visible_string(raw)
        if tag is DataTag.UTF8_STRING:
            return Data.utf8_string(raw)
        if tag is DataTag.BIT_STRING and set(raw) <= {"0", "1"}:
            return Data.bit_string(BitString.from_bits(raw))
    if tag in (DataTag.ARRAY, DataTag.STRUCTURE) and isinstance(raw, list):
        items = [data_from_json(item, f"{where}[{i}]") for i, item in enumerate(raw)]
        return Data(tag, tuple(items))
    raise ValueError(f"{raw!r} cannot be a {tag_name(tag)} value in a profile")


def octets(text: str) -> bytes:
    """Octet-string spelling: ``hex:0A1B…``, ``obis:1.0.1.8.0.255`` or plain ASCII text."""
    if text.startswith("hex:"):
        return bytes.fromhex(text[4:])
    if text.startswith("obis:"):
        try:
            return Obis.parse(text[5:]).to_bytes()
        except (DecodeError, EncodeError) as exc:
            raise ValueError(str(exc)) from None
    if not text.isascii():
        raise ValueError("plain octet-string text must be ASCII (use hex: otherwise)")
    return text.encode("ascii")


# -- objects ---------------------------------------------------------------------------------

_COMMON_FIELDS: Final = ("name", "obis", "class_id", "version", "attributes", "access", "comment")


def _rights(node: _Node, class_id: int) -> AccessRights:
    cls = INTERFACE_CLASSES[class_id]

    def ids(key: str, count: int) -> set[int]:
        value = node.get(key, [])
        if value == "all":
            return set(range(1, count + 1))
        if not isinstance(value, list):
            raise node.error(key, f'must be "all" or a list of numbers, got {value!r}')
        out: set[int] = set()
        for item in value:
            if not isinstance(item, int) or isinstance(item, bool) or not 1 <= item <= count:
                raise node.error(key, f"{item!r} is not a number 1..{count} of class {class_id}")
            out.add(item)
        return out

    readable = ids("read", cls.ATTRIBUTE_COUNT)
    writable = ids("write", cls.ATTRIBUTE_COUNT)
    methods = ids("methods", cls.METHOD_COUNT)
    node.done()
    attributes = {
        i: AttributeAccess.READ_WRITE
        if i in readable and i in writable
        else AttributeAccess.READ_ONLY
        if i in readable
        else AttributeAccess.WRITE_ONLY
        for i in readable | writable
    }
    return AccessRights(attributes, dict.fromkeys(methods, MethodAccess.ACCESS))


def _definition(raw: object, where: str) -> CaptureObjectDefinition:
    node = _Node(raw, where)
    class_id = node.integer("class_id", 0, 0xFFFF)
    obis = node.obis("obis")
    attribute = node.integer("attribute", -128, 127)
    data_index = node.integer("data_index", 0, 0xFFFF, 0)
    node.done()
    return CaptureObjectDefinition(class_id, obis, attribute, data_index)


def _definitions(node: _Node, key: str) -> tuple[CaptureObjectDefinition, ...]:
    return tuple(
        _definition(item, f'{node.where}, field "{key}"[{i}]')
        for i, item in enumerate(node.items(key))
    )


def _script_ref(raw: object, where: str) -> ScriptReference:
    node = _Node(raw, where)
    ref = ScriptReference(node.obis("script"), node.integer("selector", 0, 0xFFFF))
    node.done()
    return ref


_SEASON_START: Final = re.compile(r"^(?:(\d{4})-)?(\d{2})-(\d{2})(?:T(\d{2}):(\d{2}))?$")
_TIME_OF_DAY: Final = re.compile(r"^(\d{2}):(\d{2})(?::(\d{2}))?$")


def _calendar(node: _Node) -> Calendar:
    seasons: list[Season] = []
    for i, raw in enumerate(node.items("seasons")):
        s = _Node(raw, f'{node.where}, field "seasons"[{i}]')
        start = s.text("start")
        m = _SEASON_START.match(start)
        if m is None:
            raise s.error("start", f'expected "MM-DD", "YYYY-MM-DD" or "...THH:MM", got {start!r}')
        year, month, day, hour, minute = m.groups()
        stamp = CosemDateTime(
            int(year) if year else YEAR_NOT_SPECIFIED,
            int(month),
            int(day),
            NOT_SPECIFIED,
            int(hour or 0),
            int(minute or 0),
            0,
            NOT_SPECIFIED,
        )
        seasons.append(Season(s.text("name").encode(), stamp, s.text("week").encode()))
        s.done()
    weeks: list[WeekProfile] = []
    for i, raw in enumerate(node.items("weeks")):
        w = _Node(raw, f'{node.where}, field "weeks"[{i}]')
        days = w.items("days")
        if len(days) != 7 or not all(isinstance(d, int) and 0 <= d <= 255 for d in days):
            raise w.error("days", "must list seven day ids (Monday first)")
        ids = [d for d in days if isinstance(d, int)]
        week = (ids[0], ids[1], ids[2], ids[3], ids[4], ids[5], ids[6])
        weeks.append(WeekProfile(w.text("name").encode(), week))
        w.done()
    day_profiles: list[DayProfile] = []
    for i, raw in enumerate(node.items("days")):
        d = _Node(raw, f'{node.where}, field "days"[{i}]')
        actions: list[DayAction] = []
        for j, item in enumerate(d.items("schedule")):
            a = _Node(item, f'{d.where}, field "schedule"[{j}]')
            at = a.text("start")
            t = _TIME_OF_DAY.match(at)
            if t is None or int(t.group(1)) > 23 or int(t.group(2)) > 59:
                raise a.error("start", f'expected "HH:MM", got {at!r}')
            begins = CosemTime(int(t.group(1)), int(t.group(2)), int(t.group(3) or 0), 0)
            actions.append(DayAction(begins, a.obis("script"), a.integer("selector", 0, 0xFFFF)))
            a.done()
        day_profiles.append(DayProfile(d.integer("id", 0, 255), tuple(actions)))
        d.done()
    calendar = Calendar(
        node.text("name").encode(), tuple(seasons), tuple(weeks), tuple(day_profiles)
    )
    node.done()
    _check_calendar(node, calendar)
    return calendar


def _check_calendar(node: _Node, calendar: Calendar) -> None:
    weeks = {w.name for w in calendar.weeks}
    days = {d.day_id for d in calendar.days}
    for season in calendar.seasons:
        if season.week not in weeks:
            raise node.error("seasons", f"season {season.name.decode()!r} uses unknown week")
    for week in calendar.weeks:
        missing = set(week.days) - days
        if missing:
            raise node.error(
                "weeks", f"week {week.name.decode()!r} uses unknown day id {min(missing)}"
            )


def _scripts(node: _Node) -> tuple[Script, ...]:
    scripts: list[Script] = []
    for i, raw in enumerate(node.items("scripts")):
        s = _Node(raw, f'{node.where}, field "scripts"[{i}]')
        actions: list[ScriptAction] = []
        for j, item in enumerate(s.items("actions", [])):
            a = _Node(item, f'{s.where}, field "actions"[{j}]')
            parameter = data_from_json(a.get("parameter"), f'{a.where}, field "parameter"')
            actions.append(
                ScriptAction(
                    a.choice("service", _SERVICES),
                    a.integer("class_id", 0, 0xFFFF),
                    a.obis("obis"),
                    a.integer("index", -128, 127),
                    parameter,
                )
            )
            a.done()
        scripts.append(Script(s.integer("id", 0, 0xFFFF), tuple(actions)))
        s.done()
    return tuple(scripts)


def _unit(node: _Node) -> int:
    value = node.get("unit")
    if isinstance(value, str) and value in UNIT_SYMBOLS:
        return int(UNIT_SYMBOLS[value])
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255:
        return value
    raise node.error("unit", f"must be a unit symbol ({', '.join(UNIT_SYMBOLS)}) or 0..255")


def _settings(node: _Node, class_id: int, associations: Mapping[str, AssociationSpec]) -> Settings:
    if class_id in (3, 4, 5):
        return RegisterSettings(node.integer("scaler", -128, 127), _unit(node))
    if class_id == 7:
        return ProfileSettings(
            _definitions(node, "capture_objects"),
            node.integer("capture_period", 0, 0xFFFF_FFFF),
            node.integer("profile_entries", 1, 0xFFFF_FFFF),
        )
    if class_id == 9:
        return ScriptSettings(_scripts(node))
    if class_id == 15:
        name = node.text("association")
        if name not in associations:
            raise node.error("association", f"unknown association {name!r}")
        return AssociationSettings(name)
    if class_id == 18:
        return ImageSettings(node.integer("block_size", 1, 0xFFFF_FFFF))
    if class_id == 20:
        return CalendarSettings(_calendar(node.child("calendar")))
    if class_id == 40:
        destination = node.text("destination", "")
        if not destination.isascii():
            raise node.error("destination", "must be ASCII")
        return PushSettings(
            _definitions(node, "push_objects"),
            node.choice("transport", _TRANSPORTS, "tcp"),
            destination.encode("ascii"),
        )
    if class_id == 64:
        return SecuritySettings(node.choice("policy", _SECURITY), node.integer("suite", 0, 2, 0))
    if class_id == 70:
        return DisconnectSettings(node.integer("control_mode", 0, 6))
    if class_id == 71:
        monitored = _definition(node.get("monitored"), f'{node.where}, field "monitored"')
        return LimiterSettings(
            (monitored.class_id, monitored.logical_name, monitored.attribute_index),
            data_from_json(node.get("threshold"), f'{node.where}, field "threshold"'),
            node.integer("min_over", 0, 0xFFFF_FFFF),
            node.integer("min_under", 0, 0xFFFF_FFFF),
            _script_ref(node.get("over"), f'{node.where}, field "over"'),
            _script_ref(node.get("under"), f'{node.where}, field "under"'),
        )
    return NoSettings()


def _object(raw: object, index: int, associations: Mapping[str, AssociationSpec]) -> ObjectSpec:
    node = _Node(raw, f"objects[{index}]")
    name = node.text("name")
    node.where = f'object "{name}"'
    obis = node.obis("obis")
    node.where = f'object "{name}" ({obis})'
    class_id = node.integer("class_id", 0, 0xFFFF)
    cls = INTERFACE_CLASSES.get(class_id)
    if cls is None:
        raise node.error("class_id", f"interface class {class_id} is not supported")
    version = node.integer("version", 0, 255)
    if version != cls.VERSION:
        raise node.error("version", f"class {class_id} is implemented in version {cls.VERSION}")
    node.get("comment", "")
    attributes: dict[int, AttributeSpec] = {}
    attrs = node.child("attributes", {})
    for key in list(attrs.raw):
        if not key.isdigit() or not 2 <= int(key) <= cls.ATTRIBUTE_COUNT:
            raise attrs.error(key, f"not an attribute 2..{cls.ATTRIBUTE_COUNT} of class {class_id}")
        spec = attrs.child(key)
        tag = spec.choice("type", _TYPES)
        value = _value(spec, tag) if "value" in spec.raw else None
        spec.done()
        attributes[int(key)] = AttributeSpec(tag, value)
    attrs.done()
    access_node = node.child("access")
    access: dict[str, AccessRights] = {}
    for assoc in list(access_node.raw):
        if assoc not in associations:
            raise access_node.error(assoc, "unknown association")
        access[assoc] = _rights(access_node.child(assoc), class_id)
    access_node.done()
    settings = _settings(node, class_id, associations)
    if isinstance(settings, AssociationSettings) and set(access) != {settings.association}:
        raise node.error("access", f'must give rights to "{settings.association}" only')
    node.done()
    return ObjectSpec(name, obis, class_id, version, attributes, access, settings)


def _association(name: str, node: _Node) -> AssociationSpec:
    spec = AssociationSpec(
        name,
        node.integer("client_sap", 0, 0x7F),
        node.choice("authentication", _AUTHENTICATION),
        node.choice("security", _SECURITY),
    )
    node.get("comment", "")
    node.done()
    return spec


def parse_profile(raw: object, origin: str = "profile") -> DeviceProfile:
    """Validate a decoded JSON profile; ``ProfileError`` names the first problem."""
    top = _Node(raw, origin)
    if top.get("format") != FORMAT:
        raise top.error("format", f"must be {FORMAT!r}")
    model = top.text("model")
    description = top.text("description", "")
    assoc_node = top.child("associations")
    associations: dict[str, AssociationSpec] = {}
    saps: set[int] = set()
    for name in list(assoc_node.raw):
        spec = _association(name, assoc_node.child(name))
        if spec.client_sap in saps:
            raise assoc_node.error(name, f"client SAP {spec.client_sap} used twice")
        saps.add(spec.client_sap)
        associations[name] = spec
    assoc_node.done()
    objects = [_object(item, i, associations) for i, item in enumerate(top.items("objects"))]
    top.done()
    _check_objects(objects, associations)
    return DeviceProfile(model, description, tuple(associations.values()), tuple(objects))


def _check_objects(
    objects: Sequence[ObjectSpec], associations: Mapping[str, AssociationSpec]
) -> None:
    names: set[str] = set()
    keys: set[tuple[int, Obis, str]] = set()
    served: set[str] = set()
    for obj in objects:
        where = f'object "{obj.name}" ({obj.obis})'
        if obj.name in names:
            raise ProfileError(f'{where}, field "name": used by another object')
        names.add(obj.name)
        owner = obj.settings.association if isinstance(obj.settings, AssociationSettings) else ""
        key = (obj.class_id, obj.obis, owner)
        if key in keys:
            raise ProfileError(f'{where}, field "obis": class {obj.class_id} object listed twice')
        keys.add(key)
        if owner:
            served.add(owner)
    for name in associations:
        if name not in served:
            raise ProfileError(f'association "{name}": no Association LN object describes it')


# -- loading ---------------------------------------------------------------------------------


def load_profile(source: str | Path) -> DeviceProfile:
    """Read and validate a profile file."""
    path = Path(source)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ProfileError(f"{path}: not JSON: {exc}") from None
    return parse_profile(raw, str(path.name))


def load_builtin(name: str = "nexy_m") -> DeviceProfile:
    """A profile shipped with the package (``nexy_m``: our meter)."""
    text = resources.files("smmc.dlms.profiles").joinpath(f"{name}.json").read_text("utf-8")
    return parse_profile(json.loads(text), f"{name}.json")
