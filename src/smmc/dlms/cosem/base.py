"""The COSEM object model: interface-class objects, access rights and the logical device.

Server-side only and I/O-free: a simulator or the server role feeds ``LogicalDevice`` the
attribute/method references decoded from GET/SET/ACTION requests and turns the returned
``Data`` (or the raised :class:`CosemAccessError`) into the response APDU.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar, TypeVar

from smmc.dlms.apdu import DataAccessResult
from smmc.dlms.apdu.selective_access import SelectiveAccessDescriptor
from smmc.dlms.axdr import Data, DataTag
from smmc.dlms.cosem_time import CosemDateTime
from smmc.dlms.errors import DlmsError
from smmc.dlms.obis import Obis

__all__ = [
    "AccessResult",
    "AccessRights",
    "AttributeAccess",
    "CosemAccessError",
    "CosemObject",
    "LogicalDevice",
    "MethodAccess",
    "SelectiveAccessDescriptor",
    "expect",
    "expect_bool",
    "expect_bytes",
    "expect_int",
    "expect_items",
    "obis_from",
]


AccessResult = DataAccessResult
"""Result numbers of a failed access; Action-Result uses the same numbers for these cases."""


class CosemAccessError(DlmsError):
    """An attribute or method access failed; ``result`` is the number to put on the wire."""

    def __init__(self, result: int, message: str | None = None) -> None:
        self.result = int(result)
        self.message = message
        name = AccessResult(result).name if result in AccessResult._value2member_map_ else result
        super().__init__(f"{name}: {message}" if message else str(name))

    def __reduce__(self) -> tuple[type[CosemAccessError], tuple[int, str | None]]:
        return (type(self), (self.result, self.message))


class AttributeAccess(IntEnum):
    """Attribute access modes as listed in Association LN ``object_list``."""

    NO_ACCESS = 0
    READ_ONLY = 1
    WRITE_ONLY = 2
    READ_WRITE = 3
    AUTHENTICATED_READ_ONLY = 4
    AUTHENTICATED_WRITE_ONLY = 5
    AUTHENTICATED_READ_WRITE = 6

    def can_read(self, authenticated: bool) -> bool:
        """Whether a read is allowed for a request that is (or is not) authenticated."""
        if self in (AttributeAccess.READ_ONLY, AttributeAccess.READ_WRITE):
            return True
        return authenticated and self in (
            AttributeAccess.AUTHENTICATED_READ_ONLY,
            AttributeAccess.AUTHENTICATED_READ_WRITE,
        )

    def can_write(self, authenticated: bool) -> bool:
        """Whether a write is allowed for a request that is (or is not) authenticated."""
        if self in (AttributeAccess.WRITE_ONLY, AttributeAccess.READ_WRITE):
            return True
        return authenticated and self in (
            AttributeAccess.AUTHENTICATED_WRITE_ONLY,
            AttributeAccess.AUTHENTICATED_READ_WRITE,
        )


class MethodAccess(IntEnum):
    """Method access modes as listed in Association LN ``object_list``."""

    NO_ACCESS = 0
    ACCESS = 1
    AUTHENTICATED_ACCESS = 2

    def allowed(self, authenticated: bool) -> bool:
        """Whether an invocation is allowed."""
        return self is MethodAccess.ACCESS or (
            authenticated and self is MethodAccess.AUTHENTICATED_ACCESS
        )


@dataclass(frozen=True, slots=True)
class AccessRights:
    """What one association may do with one object; anything not listed is denied."""

    attributes: Mapping[int, AttributeAccess] = field(default_factory=dict)
    methods: Mapping[int, MethodAccess] = field(default_factory=dict)

    def attribute(self, attribute: int) -> AttributeAccess:
        """Access mode of one attribute (``NO_ACCESS`` if not listed)."""
        return self.attributes.get(attribute, AttributeAccess.NO_ACCESS)

    def method(self, method: int) -> MethodAccess:
        """Access mode of one method (``NO_ACCESS`` if not listed)."""
        return self.methods.get(method, MethodAccess.NO_ACCESS)


def expect(value: Data, *tags: DataTag, what: str = "value") -> Data:
    """Return ``value`` if its tag is one of ``tags``; else type-unmatched."""
    if not isinstance(value, Data) or value.tag not in tags:
        got = value.tag.name if isinstance(value, Data) else type(value).__name__
        wanted = "/".join(t.name for t in tags)
        raise CosemAccessError(AccessResult.TYPE_UNMATCHED, f"{what}: expected {wanted}, got {got}")
    return value


_INT_TAGS: tuple[DataTag, ...] = (
    DataTag.INTEGER,
    DataTag.LONG,
    DataTag.UNSIGNED,
    DataTag.LONG_UNSIGNED,
    DataTag.DOUBLE_LONG,
    DataTag.DOUBLE_LONG_UNSIGNED,
    DataTag.LONG64,
    DataTag.LONG64_UNSIGNED,
    DataTag.ENUM,
)


def expect_int(value: Data, *tags: DataTag, what: str = "value") -> int:
    """The integer carried by ``value`` (any integer tag unless ``tags`` narrows it)."""
    v = expect(value, *(tags or _INT_TAGS), what=what).value
    if not isinstance(v, int) or isinstance(v, bool):
        raise CosemAccessError(AccessResult.TYPE_UNMATCHED, f"{what}: not an integer")
    return v


def expect_bytes(value: Data, what: str = "value", length: int | None = None) -> bytes:
    """The bytes of an octet-string, optionally of an exact length."""
    v = expect(value, DataTag.OCTET_STRING, what=what).value
    if not isinstance(v, bytes):
        raise CosemAccessError(AccessResult.TYPE_UNMATCHED, f"{what}: not an octet-string")
    if length is not None and len(v) != length:
        raise CosemAccessError(
            AccessResult.TYPE_UNMATCHED, f"{what}: expected {length} octets, got {len(v)}"
        )
    return v


def expect_bool(value: Data, what: str = "value") -> bool:
    """The value of a boolean."""
    v = expect(value, DataTag.BOOLEAN, what=what).value
    if not isinstance(v, bool):
        raise CosemAccessError(AccessResult.TYPE_UNMATCHED, f"{what}: not a boolean")
    return v


def expect_items(
    value: Data, tag: DataTag, count: int | None = None, what: str = "value"
) -> tuple[Data, ...]:
    """The elements of an array or structure, optionally checking how many there are."""
    v = expect(value, tag, what=what).value
    if not isinstance(v, tuple):
        raise CosemAccessError(AccessResult.TYPE_UNMATCHED, f"{what}: no elements")
    if count is not None and len(v) != count:
        raise CosemAccessError(
            AccessResult.TYPE_UNMATCHED, f"{what}: expected {count} elements, got {len(v)}"
        )
    return v


def obis_from(value: Data, what: str = "logical_name") -> Obis:
    """An OBIS code carried as a 6-octet octet-string."""
    return Obis.from_bytes(expect_bytes(value, what, 6))


class CosemObject:
    """Base of every interface class.

    Plain attributes live in ``_values`` and are type-checked against ``ATTRIBUTE_TYPES`` on
    SET; classes with behaviour override ``_get``/``_set``/``_action``. The object itself
    does not check access rights: the ``LogicalDevice`` does, per association, so the
    simulator can change any attribute directly.
    """

    CLASS_ID: ClassVar[int]
    VERSION: ClassVar[int] = 0
    ATTRIBUTE_COUNT: ClassVar[int]
    METHOD_COUNT: ClassVar[int] = 0
    ATTRIBUTE_TYPES: ClassVar[Mapping[int, tuple[DataTag, ...]]] = {}
    SELECTIVE_ATTRIBUTES: ClassVar[frozenset[int]] = frozenset()

    def __init__(self, logical_name: Obis) -> None:
        self.logical_name = logical_name
        self._values: dict[int, Data] = {}
        self._device: LogicalDevice | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.logical_name})"

    @property
    def device(self) -> LogicalDevice | None:
        """The logical device this object was added to (for objects that reference others)."""
        return self._device

    def bind(self, device: LogicalDevice) -> None:
        """Called by ``LogicalDevice.add``."""
        self._device = device

    def get(
        self, attribute: int, selective_access: SelectiveAccessDescriptor | None = None
    ) -> Data:
        """Read an attribute."""
        self._check_attribute(attribute)
        if selective_access is not None and attribute not in self.SELECTIVE_ATTRIBUTES:
            raise CosemAccessError(
                AccessResult.OTHER_REASON, f"attribute {attribute} has no selective access"
            )
        if attribute == 1:
            return Data.octet_string(self.logical_name.to_bytes())
        return self._get(attribute, selective_access)

    def set(self, attribute: int, value: Data) -> None:
        """Write an attribute."""
        self._check_attribute(attribute)
        if attribute == 1:
            raise CosemAccessError(AccessResult.READ_WRITE_DENIED, "logical_name is read-only")
        self._set(attribute, value)

    def action(self, method: int, parameters: Data | None = None) -> Data | None:
        """Invoke a method; returns the optional return parameters."""
        if not 1 <= method <= self.METHOD_COUNT:
            raise CosemAccessError(
                AccessResult.OBJECT_UNDEFINED, f"{self!r} has no method {method}"
            )
        return self._action(method, parameters)

    def _check_attribute(self, attribute: int) -> None:
        if not 1 <= attribute <= self.ATTRIBUTE_COUNT:
            raise CosemAccessError(
                AccessResult.OBJECT_UNDEFINED, f"{self!r} has no attribute {attribute}"
            )

    def _get(self, attribute: int, selective_access: SelectiveAccessDescriptor | None) -> Data:
        try:
            return self._values[attribute]
        except KeyError:
            raise CosemAccessError(
                AccessResult.OBJECT_UNAVAILABLE, f"{self!r} attribute {attribute} has no value"
            ) from None

    def _set(self, attribute: int, value: Data) -> None:
        tags = self.ATTRIBUTE_TYPES.get(attribute)
        if tags is None:
            raise CosemAccessError(
                AccessResult.READ_WRITE_DENIED, f"{self!r} attribute {attribute} is read-only"
            )
        self._values[attribute] = expect(value, *tags, what=f"attribute {attribute}")

    def _action(self, method: int, parameters: Data | None) -> Data | None:
        raise CosemAccessError(
            AccessResult.OBJECT_UNDEFINED, f"{self!r} method {method} is not implemented"
        )


_T = TypeVar("_T", bound=CosemObject)


class LogicalDevice:
    """The objects of one logical device, addressed by (class id, OBIS), with access rights.

    ``access`` maps a client SAP to the rights of that association on each object; an object
    without rights for a SAP is invisible to it (object-undefined). Calls with
    ``client_sap=None`` are local (simulator, scripts) and bypass access rights.
    """

    def __init__(
        self, name: bytes = b"", clock_source: Callable[[], CosemDateTime] | None = None
    ) -> None:
        self.name = name
        self.clock_source = clock_source
        self._objects: dict[tuple[int, Obis], CosemObject] = {}
        self._rights: dict[int, dict[tuple[int, Obis], AccessRights]] = {}
        self._private: dict[int, dict[tuple[int, Obis], tuple[CosemObject, AccessRights]]] = {}

    def now(self) -> CosemDateTime:
        """The device's current time (its clock object's, once one is bound) for captures."""
        if self.clock_source is not None:
            return self.clock_source()
        return CosemDateTime.from_datetime(dt.datetime.now(dt.UTC))

    def add(self, obj: _T, access: Mapping[int, AccessRights] | None = None) -> _T:
        """Add an object and the rights each client SAP has on it; returns the object."""
        key = (obj.CLASS_ID, obj.logical_name)
        if key in self._objects:
            raise ValueError(f"duplicate object class {key[0]} {key[1]}")
        self._objects[key] = obj
        for sap, rights in (access or {}).items():
            self._rights.setdefault(sap, {})[key] = rights
        obj.bind(self)
        return obj

    def add_private(self, client_sap: int, obj: _T, rights: AccessRights) -> _T:
        """Add an object only one association sees, e.g. its "current association" object.

        It hides a shared object with the same class and logical name for that association.
        """
        key = (obj.CLASS_ID, obj.logical_name)
        private = self._private.setdefault(client_sap, {})
        if key in private:
            raise ValueError(f"duplicate object class {key[0]} {key[1]} for client {client_sap}")
        private[key] = (obj, rights)
        obj.bind(self)
        return obj

    def grant(self, client_sap: int, obj: CosemObject, rights: AccessRights) -> None:
        """Give (or replace) one association's rights on an object already added."""
        key = (obj.CLASS_ID, obj.logical_name)
        if self._objects.get(key) is not obj:
            raise ValueError(f"{obj!r} is not part of this device")
        self._rights.setdefault(client_sap, {})[key] = rights

    def __iter__(self) -> Iterator[CosemObject]:
        """Shared objects, then each association's private ones."""
        yield from self._objects.values()
        for private in self._private.values():
            for obj, _ in private.values():
                yield obj

    def __len__(self) -> int:
        return len(self._objects) + sum(len(p) for p in self._private.values())

    @property
    def client_saps(self) -> tuple[int, ...]:
        """The client SAPs that have rights on at least one object."""
        return tuple(sorted(set(self._rights) | set(self._private)))

    def find(self, class_id: int, obis: Obis) -> CosemObject:
        """The object with this class id and logical name, or object-undefined."""
        try:
            return self._objects[(class_id, obis)]
        except KeyError:
            raise CosemAccessError(
                AccessResult.OBJECT_UNDEFINED, f"no object class {class_id} {obis}"
            ) from None

    def by_obis(self, obis: Obis) -> CosemObject:
        """The object with this logical name, whatever its class (for local use)."""
        for (_, ln), obj in self._objects.items():
            if ln == obis:
                return obj
        raise CosemAccessError(AccessResult.OBJECT_UNDEFINED, f"no object {obis}")

    def of_type(self, cls: type[_T]) -> list[_T]:
        """All objects of one Python class, in insertion order."""
        return [o for o in self._objects.values() if isinstance(o, cls)]

    def visible_object(self, client_sap: int, class_id: int, obis: Obis) -> CosemObject:
        """The object an association sees at (class id, OBIS): its private one, else the
        shared one it has rights on; object-undefined otherwise."""
        return self._target(class_id, obis, client_sap)[0]

    def rights(self, client_sap: int, class_id: int, obis: Obis) -> AccessRights | None:
        """The rights of an association on an object, ``None`` if it cannot see it."""
        private = self._private.get(client_sap, {}).get((class_id, obis))
        if private is not None:
            return private[1]
        return self._rights.get(client_sap, {}).get((class_id, obis))

    def visible(self, client_sap: int) -> list[tuple[CosemObject, AccessRights]]:
        """The objects an association can see, with its rights: shared, then private."""
        rights = self._rights.get(client_sap, {})
        private = self._private.get(client_sap, {})
        shared = [
            (o, rights[k]) for k, o in self._objects.items() if k in rights and k not in private
        ]
        return shared + list(private.values())

    def _target(
        self, class_id: int, obis: Obis, client_sap: int | None
    ) -> tuple[CosemObject, AccessRights | None]:
        if client_sap is not None:
            private = self._private.get(client_sap, {}).get((class_id, obis))
            if private is not None:
                return private
        obj = self.find(class_id, obis)
        if client_sap is None:
            return obj, None
        rights = self.rights(client_sap, class_id, obis)
        if rights is None:
            raise CosemAccessError(
                AccessResult.OBJECT_UNDEFINED,
                f"object class {class_id} {obis} is not visible to client {client_sap}",
            )
        return obj, rights

    def get(
        self,
        class_id: int,
        obis: Obis,
        attribute: int,
        selective_access: SelectiveAccessDescriptor | None = None,
        *,
        client_sap: int | None = None,
        authenticated: bool = False,
    ) -> Data:
        """GET one attribute on behalf of an association (or locally)."""
        obj, rights = self._target(class_id, obis, client_sap)
        if rights is not None and not rights.attribute(attribute).can_read(authenticated):
            obj._check_attribute(attribute)
            raise CosemAccessError(
                AccessResult.READ_WRITE_DENIED, f"{obj!r} attribute {attribute} not readable"
            )
        return obj.get(attribute, selective_access)

    def set(
        self,
        class_id: int,
        obis: Obis,
        attribute: int,
        value: Data,
        *,
        client_sap: int | None = None,
        authenticated: bool = False,
    ) -> None:
        """SET one attribute on behalf of an association (or locally)."""
        obj, rights = self._target(class_id, obis, client_sap)
        if rights is not None and not rights.attribute(attribute).can_write(authenticated):
            obj._check_attribute(attribute)
            raise CosemAccessError(
                AccessResult.READ_WRITE_DENIED, f"{obj!r} attribute {attribute} not writable"
            )
        obj.set(attribute, value)

    def action(
        self,
        class_id: int,
        obis: Obis,
        method: int,
        parameters: Data | None = None,
        *,
        client_sap: int | None = None,
        authenticated: bool = False,
    ) -> Data | None:
        """ACTION on one method on behalf of an association (or locally)."""
        obj, rights = self._target(class_id, obis, client_sap)
        if rights is not None and not rights.method(method).allowed(authenticated):
            if not 1 <= method <= obj.METHOD_COUNT:
                raise CosemAccessError(
                    AccessResult.OBJECT_UNDEFINED, f"{obj!r} has no method {method}"
                )
            raise CosemAccessError(
                AccessResult.READ_WRITE_DENIED, f"{obj!r} method {method} not allowed"
            )
        return obj.action(method, parameters)
