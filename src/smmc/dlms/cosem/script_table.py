"""Interface class 9, Script table: named lists of attribute writes and method calls.

Tariff switching (activity calendar), disconnect scripts and similar are script tables. A
script runs its actions against the logical device; ``on_execute`` also tells the meter
model which script ran (e.g. which tariff became active), even for scripts with no actions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import ClassVar

from smmc.dlms.axdr import Data, DataTag
from smmc.dlms.cosem.base import (
    AccessResult,
    CosemAccessError,
    CosemObject,
    SelectiveAccessDescriptor,
    expect_int,
    expect_items,
    obis_from,
)
from smmc.dlms.obis import Obis

__all__ = ["TARIFF_SCRIPT_TABLE_OBIS", "Script", "ScriptAction", "ScriptService", "ScriptTable"]

TARIFF_SCRIPT_TABLE_OBIS = Obis(0, 0, 10, 0, 100, 255)


class ScriptService(IntEnum):
    """service_id of an action specification."""

    WRITE_ATTRIBUTE = 1
    EXECUTE_METHOD = 2


@dataclass(frozen=True, slots=True)
class ScriptAction:
    """One action: write an attribute or invoke a method of an object."""

    service: ScriptService
    class_id: int
    logical_name: Obis
    index: int
    parameter: Data

    def to_data(self) -> Data:
        """The action_specification structure."""
        return Data.structure(
            (
                Data.enum(self.service),
                Data.long_unsigned(self.class_id),
                Data.octet_string(self.logical_name.to_bytes()),
                Data.integer(self.index),
                self.parameter,
            )
        )

    @classmethod
    def from_data(cls, value: Data) -> ScriptAction:
        """Parse an action_specification; type-unmatched if malformed."""
        service, class_id, ln, index, parameter = expect_items(
            value, DataTag.STRUCTURE, 5, "action_specification"
        )
        service_id = expect_int(service, DataTag.ENUM, what="service_id")
        if service_id not in ScriptService._value2member_map_:
            raise CosemAccessError(AccessResult.TYPE_UNMATCHED, f"service_id {service_id}")
        return cls(
            ScriptService(service_id),
            expect_int(class_id, DataTag.LONG_UNSIGNED, what="class_id"),
            obis_from(ln),
            expect_int(index, DataTag.INTEGER, what="index"),
            parameter,
        )


@dataclass(frozen=True, slots=True)
class Script:
    """A script: identifier and its actions."""

    identifier: int
    actions: tuple[ScriptAction, ...] = ()

    def to_data(self) -> Data:
        """The script structure."""
        return Data.structure(
            (
                Data.long_unsigned(self.identifier),
                Data.array(a.to_data() for a in self.actions),
            )
        )

    @classmethod
    def from_data(cls, value: Data) -> Script:
        """Parse a script structure."""
        identifier, actions = expect_items(value, DataTag.STRUCTURE, 2, "script")
        return cls(
            expect_int(identifier, DataTag.LONG_UNSIGNED, what="script_identifier"),
            tuple(
                ScriptAction.from_data(a)
                for a in expect_items(actions, DataTag.ARRAY, None, "actions")
            ),
        )


class ScriptTable(CosemObject):
    """IC 9 v0: scripts (2); method execute (1) with the script identifier."""

    CLASS_ID: ClassVar[int] = 9
    VERSION: ClassVar[int] = 0
    ATTRIBUTE_COUNT: ClassVar[int] = 2
    METHOD_COUNT: ClassVar[int] = 1

    def __init__(
        self,
        logical_name: Obis,
        scripts: Sequence[Script] = (),
        on_execute: Callable[[int], None] | None = None,
    ) -> None:
        super().__init__(logical_name)
        self.scripts = {s.identifier: s for s in scripts}
        self.on_execute = on_execute

    def execute(self, identifier: int) -> None:
        """Run a script's actions locally on the device, then notify ``on_execute``."""
        script = self.scripts.get(identifier)
        if script is None:
            raise CosemAccessError(AccessResult.OTHER_REASON, f"{self!r}: no script {identifier}")
        if script.actions:
            device = self.device
            if device is None:
                raise CosemAccessError(AccessResult.TEMPORARY_FAILURE, f"{self!r} has no device")
            for action in script.actions:
                ln, index, parameter = action.logical_name, action.index, action.parameter
                if action.service is ScriptService.WRITE_ATTRIBUTE:
                    device.set(action.class_id, ln, index, parameter)
                else:
                    device.action(action.class_id, ln, index, parameter)
        if self.on_execute is not None:
            self.on_execute(identifier)

    def _get(self, attribute: int, selective_access: SelectiveAccessDescriptor | None) -> Data:
        return Data.array(s.to_data() for s in self.scripts.values())

    def _set(self, attribute: int, value: Data) -> None:
        scripts = [Script.from_data(s) for s in expect_items(value, DataTag.ARRAY, None, "scripts")]
        self.scripts = {s.identifier: s for s in scripts}

    def _action(self, method: int, parameters: Data | None) -> Data | None:
        if parameters is None:
            raise CosemAccessError(AccessResult.TYPE_UNMATCHED, "script identifier expected")
        self.execute(expect_int(parameters, DataTag.LONG_UNSIGNED, what="script identifier"))
        return None
