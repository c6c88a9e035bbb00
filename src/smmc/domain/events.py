"""The event catalog (status-word bits, concentrator letters, other sources) and change
detection.

The catalog is data (``event_catalog.yaml``, overridable by an operator's YAML file) so the
Legacy contract - code, description, priority, routing - can change without a release.
Change detection is a pure function of (previous words, new words): a condition that starts
holding opens an event, one that stops holding closes it, and a repeated report changes
nothing.
"""

from __future__ import annotations

import importlib.resources
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import yaml

from smmc.domain.concentrator_status import LETTERS, STATUS_WORD_BITS

__all__ = [
    "CONCENTRATOR_WORD",
    "METER_WORDS",
    "METER_WORD_BITS",
    "Catalog",
    "CatalogEntry",
    "CatalogError",
    "Category",
    "Change",
    "MeterWords",
    "Priority",
    "Routing",
    "detect_changes",
    "load_catalog",
]

METER_WORDS = ("normal1", "normal2", "extended1", "extended2")
"""The meter's four status words, in the order pushes and reads carry them."""
METER_WORD_BITS = 16
CONCENTRATOR_WORD = "concentrator"

_CODE = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")
_FIELDS = ("acronym", "description", "code", "severity", "priority", "category", "routing")


class CatalogError(ValueError):
    """A catalog file that is not valid: names the source, the entry and the field."""


class Priority(StrEnum):
    HIGH = "high"
    NORMAL = "normal"


class Category(StrEnum):
    POWER = "power"
    TAMPER = "tamper"
    CLOCK = "clock"
    COMMUNICATION = "communication"
    DIAGNOSTICS = "diagnostics"
    BILLING = "billing"
    WORK_ORDER_RESULT = "work-order result"
    COMMISSIONING = "commissioning"


class Routing(StrEnum):
    EMERGENCY_DISPATCH = "emergency dispatch"
    FIELD_OPERATIONS = "field operations"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    """One event source. ``key`` is stable across catalog edits (``normal1.0``,
    ``concentrator.A``, ``LVC_POWER_OFF``): it is what de-duplicates active events."""

    key: str
    acronym: str
    description: str
    code: str
    severity: int
    priority: Priority
    category: Category
    routing: Routing
    word: str | None = None
    bit: int | None = None
    active_when_clear: bool = False

    def active(self, words: Mapping[str, int] | None) -> bool:
        """Whether this bit's condition holds in ``words`` (None: nothing known, nothing
        active)."""
        if words is None or self.word is None or self.bit is None or self.word not in words:
            return False
        is_set = bool(words[self.word] >> self.bit & 1)
        return is_set != self.active_when_clear


@dataclass(frozen=True, slots=True)
class MeterWords:
    """The meter's four 16-bit status words."""

    normal1: int = 0
    normal2: int = 0
    extended1: int = 0
    extended2: int = 0

    def __post_init__(self) -> None:
        for name in METER_WORDS:
            value = getattr(self, name)
            if not 0 <= value < 1 << METER_WORD_BITS:
                raise CatalogError(f"status word {name}={value} does not fit in 16 bits")

    def as_mapping(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in METER_WORDS}


class Change(NamedTuple):
    """One condition starting (``opened``) or stopping to hold. A named tuple: one is built
    per event at storm rates, where a frozen dataclass costs several times more."""

    entry: CatalogEntry
    opened: bool


def _text(raw: Mapping[str, Any], name: str, where: str) -> str:
    value = raw.get(name)
    if value is None or str(value).strip() == "":
        raise CatalogError(f"{where}: field {name!r} is missing or empty")
    return str(value).strip()


def _entry(raw: object, where: str, **fixed: Any) -> CatalogEntry:
    if not isinstance(raw, Mapping):
        raise CatalogError(f"{where}: expected a mapping of fields, got {type(raw).__name__}")
    unknown = set(raw) - {*_FIELDS, "active_when"}
    if unknown:
        raise CatalogError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    code = _text(raw, "code", where)
    if not _CODE.match(code):
        raise CatalogError(f"{where}: code {code!r} is not deviceType.domain.subDomain.event")
    severity = raw.get("severity", 0)
    if isinstance(severity, bool) or not isinstance(severity, int) or severity < 0:
        raise CatalogError(f"{where}: severity {severity!r} is not a non-negative integer")
    active_when = str(raw.get("active_when", "set"))
    if active_when not in ("set", "clear"):
        raise CatalogError(f"{where}: active_when {active_when!r} is neither 'set' nor 'clear'")
    try:
        priority = Priority(_text(raw, "priority", where))
        category = Category(_text(raw, "category", where))
        routing = Routing(_text(raw, "routing", where))
    except ValueError as exc:
        raise CatalogError(f"{where}: {exc}") from None
    return CatalogEntry(
        acronym=_text(raw, "acronym", where),
        description=_text(raw, "description", where),
        code=code,
        severity=severity,
        priority=priority,
        category=category,
        routing=routing,
        active_when_clear=active_when == "clear",
        **fixed,
    )


def _merged(base: Mapping[str, Any] | None, over: object, where: str) -> Mapping[str, Any]:
    if over is None:
        return base or {}
    if not isinstance(over, Mapping):
        raise CatalogError(f"{where}: expected a mapping, got {type(over).__name__}")
    if base is None:
        return over
    return {**base, **over}


def _section(raw: Mapping[str, Any], name: str, source: str) -> Mapping[Any, Any]:
    value = raw.get(name) or {}
    if not isinstance(value, Mapping):
        raise CatalogError(f"{source}: section {name!r} must be a mapping")
    return value


@dataclass(frozen=True, slots=True)
class Catalog:
    """Every entry by key; ``bits`` indexes the status-word entries by (word, bit)."""

    entries: Mapping[str, CatalogEntry]
    bits: Mapping[tuple[str, int], CatalogEntry]
    unmapped: Mapping[str, CatalogEntry]
    inverted: Mapping[str, int]
    """Per word, the mask of ``active_when: clear`` bits (a clear bit there is the alarm)."""

    def __getitem__(self, key: str) -> CatalogEntry:
        try:
            return self.entries[key]
        except KeyError:
            raise CatalogError(f"no catalog entry {key!r}") from None

    def bit(self, word: str, bit: int) -> CatalogEntry:
        """The entry of ``bit`` of ``word``; a bit no one mapped has the documented
        "unmapped" entry of its device kind, so it is still seen."""
        try:
            return self.bits[(word, bit)]
        except KeyError:
            raise CatalogError(f"{word}.{bit} is not a status-word bit") from None

    def mapped(self, word: str, bit: int) -> bool:
        return self.bits[(word, bit)].key in self.entries

    def by_code(self, code: str) -> list[CatalogEntry]:
        return [entry for entry in self.entries.values() if entry.code == code]

    @classmethod
    def from_mapping(cls, raw: object, source: str, base: Catalog | None = None) -> Catalog:
        """Build from parsed YAML; with ``base``, only the given fields override it."""
        if not isinstance(raw, Mapping):
            raise CatalogError(f"{source}: the top level must be a mapping")
        unknown = set(raw) - {"meter", "concentrator", "other", "unmapped"}
        if unknown:
            raise CatalogError(f"{source}: unknown section(s) {', '.join(sorted(unknown))}")
        previous: dict[str, Mapping[str, Any]] = {}
        if base is not None:
            previous = {key: _as_raw(entry) for key, entry in base.entries.items()}
            previous.update({f"unmapped.{k}": _as_raw(e) for k, e in base.unmapped.items()})
        entries: dict[str, CatalogEntry] = {}
        bits: dict[tuple[str, int], CatalogEntry] = {}
        meter = _section(raw, "meter", source)
        for word in meter:
            if word not in METER_WORDS:
                raise CatalogError(f"{source}: meter word {word!r} is not one of {METER_WORDS}")
        if base is not None:
            for (word, bit), entry in base.bits.items():
                if entry.key not in base.entries:
                    continue
                if word != CONCENTRATOR_WORD and (word not in meter or bit not in meter[word]):
                    entries[entry.key] = entry
                    bits[(word, bit)] = entry
        for word, table in meter.items():
            if not isinstance(table, Mapping):
                raise CatalogError(f"{source}: meter.{word} must map bits to entries")
            for bit, fields in table.items():
                if isinstance(bit, bool) or not isinstance(bit, int):
                    raise CatalogError(f"{source}: meter.{word}: bit {bit!r} is not an integer")
                if not 0 <= bit < METER_WORD_BITS:
                    raise CatalogError(f"{source}: meter.{word}.{bit}: bit outside 0..15")
                key = f"{word}.{bit}"
                where = f"{source}: meter.{key}"
                entry = _entry(
                    _merged(previous.get(key), fields, where), where, key=key, word=word, bit=bit
                )
                entries[key] = entry
                bits[(word, bit)] = entry
        letters = _section(raw, "concentrator", source)
        if base is not None:
            for (word, bit), entry in base.bits.items():
                if entry.key not in base.entries:
                    continue
                if word == CONCENTRATOR_WORD and entry.acronym not in letters:
                    entries[entry.key] = entry
                    bits[(word, bit)] = entry
        for letter, fields in letters.items():
            found = LETTERS.get(str(letter))
            if found is None:
                raise CatalogError(f"{source}: {letter!r} is not a concentrator status letter")
            key = f"{CONCENTRATOR_WORD}.{letter}"
            where = f"{source}: {key}"
            entry = _entry(
                _merged(previous.get(key), fields, where),
                where,
                key=key,
                word=CONCENTRATOR_WORD,
                bit=found.bit,
            )
            entries[key] = entry
            bits[(CONCENTRATOR_WORD, found.bit)] = entry
        others = _section(raw, "other", source)
        if base is not None:
            for key, entry in base.entries.items():
                if entry.word is None and key not in others:
                    entries[key] = entry
        for name, fields in others.items():
            key = str(name)
            where = f"{source}: other.{key}"
            entries[key] = _entry(_merged(previous.get(key), fields, where), where, key=key)
        unmapped: dict[str, CatalogEntry] = dict(base.unmapped) if base is not None else {}
        for kind, fields in _section(raw, "unmapped", source).items():
            if kind not in ("meter", CONCENTRATOR_WORD):
                raise CatalogError(f"{source}: unmapped.{kind}: expected meter or concentrator")
            where = f"{source}: unmapped.{kind}"
            defaults = {"acronym": "UNMAPPED", "description": "Unmapped status bit"}
            merged = {**defaults, **_merged(previous.get(f"unmapped.{kind}"), fields, where)}
            unmapped[str(kind)] = _entry(merged, where, key=f"unmapped.{kind}")
        for kind in ("meter", CONCENTRATOR_WORD):
            if kind not in unmapped:
                raise CatalogError(f"{source}: unmapped.{kind} is missing")
        for word in (*METER_WORDS, CONCENTRATOR_WORD):
            template = unmapped[CONCENTRATOR_WORD if word == CONCENTRATOR_WORD else "meter"]
            for bit in range(_width(word)):
                if (word, bit) not in bits:
                    bits[(word, bit)] = replace(
                        template,
                        key=f"{word}.{bit}",
                        acronym=f"{word.upper()}_B{bit}",
                        description=f"Unmapped status bit {word}.{bit}",
                        word=word,
                        bit=bit,
                    )
        inverted = dict.fromkeys((*METER_WORDS, CONCENTRATOR_WORD), 0)
        for (word, bit), entry in bits.items():
            if entry.active_when_clear:
                inverted[word] |= 1 << bit
        return cls(
            MappingProxyType(entries),
            MappingProxyType(bits),
            MappingProxyType(unmapped),
            MappingProxyType(inverted),
        )


def _as_raw(entry: CatalogEntry) -> dict[str, Any]:
    raw: dict[str, Any] = {name: getattr(entry, name) for name in _FIELDS}
    raw["priority"] = entry.priority.value
    raw["category"] = entry.category.value
    raw["routing"] = entry.routing.value
    raw["active_when"] = "clear" if entry.active_when_clear else "set"
    return raw


def _read_yaml(text: str, source: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{source}: not valid YAML ({exc})") from None


def load_catalog(override: Path | None = None) -> Catalog:
    """The shipped catalog, with the entries and fields of ``override`` laid over it."""
    resource = importlib.resources.files("smmc.domain").joinpath("event_catalog.yaml")
    shipped = Catalog.from_mapping(
        _read_yaml(resource.read_text(encoding="utf-8"), "event_catalog.yaml"),
        "event_catalog.yaml",
    )
    if override is None:
        return shipped
    raw = _read_yaml(override.read_text(encoding="utf-8"), str(override))
    return Catalog.from_mapping(raw or {}, str(override), base=shipped)


def _width(word: str) -> int:
    return STATUS_WORD_BITS if word == CONCENTRATOR_WORD else METER_WORD_BITS


def detect_changes(
    catalog: Catalog,
    previous: Mapping[str, int] | None,
    current: Mapping[str, int],
    words: Iterable[str] | None = None,
) -> list[Change]:
    """The events opened and closed going from ``previous`` to ``current`` words.

    ``previous=None`` is a device never seen: every condition that holds now opens. Only the
    words in ``current`` are compared (a report of one word leaves the others alone).
    """
    changes: list[Change] = []
    for word in words if words is not None else current:
        if word not in current:
            continue
        width = _width(word)
        value = current[word]
        if not 0 <= value < 1 << width:
            raise CatalogError(f"status word {word}={value} does not fit in {width} bits")
        active_now = value ^ catalog.inverted.get(word, 0)
        if previous is not None and word in previous:
            changed = (previous[word] ^ value) & ((1 << width) - 1)
        else:
            changed = active_now
        bit = 0
        while changed:
            if changed & 1:
                changes.append(Change(catalog.bits[(word, bit)], bool(active_now >> bit & 1)))
            changed >>= 1
            bit += 1
    return changes
