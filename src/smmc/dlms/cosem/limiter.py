"""Interface class 71, Limiter: act when a monitored value stays above/below a threshold.

``evaluate`` is driven by the meter model with the monitored value and the time elapsed; it
runs the over/under threshold scripts on the device (typically a disconnect script), which
is how a power limit trips the breaker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from smmc.dlms.axdr import Data, DataTag
from smmc.dlms.cosem.base import (
    AccessResult,
    CosemAccessError,
    CosemObject,
    SelectiveAccessDescriptor,
    expect_bool,
    expect_int,
    expect_items,
    obis_from,
)
from smmc.dlms.cosem.data import ANY_TYPE
from smmc.dlms.cosem.extended_register import UNSPECIFIED_DATE_TIME, date_time_value
from smmc.dlms.obis import Obis

__all__ = ["Limiter", "ScriptReference"]

_NULL_OBIS = Obis(0, 0, 0, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class ScriptReference:
    """action_item: a script table and the script to run in it."""

    script: Obis = _NULL_OBIS
    selector: int = 0

    def to_data(self) -> Data:
        """The action_item structure."""
        return Data.structure(
            (Data.octet_string(self.script.to_bytes()), Data.long_unsigned(self.selector))
        )

    @classmethod
    def from_data(cls, value: Data) -> ScriptReference:
        """Parse an action_item."""
        script, selector = expect_items(value, DataTag.STRUCTURE, 2, "action_item")
        return cls(obis_from(script), expect_int(selector, DataTag.LONG_UNSIGNED))


class Limiter(CosemObject):
    """IC 71 v0: monitored_value (2), threshold_active (3), threshold_normal (4),
    threshold_emergency (5), min_over_threshold_duration (6), min_under_threshold_duration
    (7), emergency_profile (8), emergency_profile_group_id_list (9),
    emergency_profile_active (10), actions (11). No methods.
    """

    CLASS_ID: ClassVar[int] = 71
    VERSION: ClassVar[int] = 0
    ATTRIBUTE_COUNT: ClassVar[int] = 11
    ATTRIBUTE_TYPES: ClassVar[dict[int, tuple[DataTag, ...]]] = {
        3: ANY_TYPE,
        4: ANY_TYPE,
        5: ANY_TYPE,
        6: (DataTag.DOUBLE_LONG_UNSIGNED,),
        7: (DataTag.DOUBLE_LONG_UNSIGNED,),
        9: (DataTag.ARRAY,),
    }

    def __init__(
        self,
        logical_name: Obis,
        monitored: tuple[int, Obis, int] = (3, Obis(1, 0, 1, 7, 0, 255), 2),
        threshold: Data | None = None,
        min_over: int = 60,
        min_under: int = 60,
        over: ScriptReference | None = None,
        under: ScriptReference | None = None,
    ) -> None:
        super().__init__(logical_name)
        self.monitored = monitored
        limit = Data.double_long_unsigned(0xFFFF_FFFF) if threshold is None else threshold
        self.over = over or ScriptReference()
        self.under = under or ScriptReference()
        self.emergency_active = False
        self._values.update(
            {
                3: limit,
                4: limit,
                5: limit,
                6: Data.double_long_unsigned(min_over),
                7: Data.double_long_unsigned(min_under),
                8: Data.structure(
                    (
                        Data.long_unsigned(0),
                        date_time_value(UNSPECIFIED_DATE_TIME),
                        Data.double_long_unsigned(0),
                    )
                ),
                9: Data.array(()),
            }
        )
        self._over_for = 0.0
        self._under_for = 0.0
        self.tripped = False

    def evaluate(self, value: float, elapsed: float) -> ScriptReference | None:
        """Feed the monitored value held for ``elapsed`` seconds; returns the script run."""
        limit = self._values[3].value
        if not isinstance(limit, int | float):
            raise CosemAccessError(AccessResult.OTHER_REASON, "threshold_active is not numeric")
        if value > limit:
            self._over_for += elapsed
            self._under_for = 0.0
            if not self.tripped and self._over_for >= expect_int(self._values[6]):
                self.tripped = True
                return self._run(self.over)
        else:
            self._under_for += elapsed
            self._over_for = 0.0
            if self.tripped and self._under_for >= expect_int(self._values[7]):
                self.tripped = False
                return self._run(self.under)
        return None

    def _run(self, ref: ScriptReference) -> ScriptReference | None:
        if ref.script == _NULL_OBIS:
            return None
        if self.device is None:
            raise CosemAccessError(AccessResult.TEMPORARY_FAILURE, f"{self!r} is not in a device")
        self.device.action(9, ref.script, 1, Data.long_unsigned(ref.selector))
        return ref

    def _get(self, attribute: int, selective_access: SelectiveAccessDescriptor | None) -> Data:
        if attribute == 2:
            class_id, ln, index = self.monitored
            return Data.structure(
                (
                    Data.long_unsigned(class_id),
                    Data.octet_string(ln.to_bytes()),
                    Data.integer(index),
                )
            )
        if attribute == 10:
            return Data.boolean(self.emergency_active)
        if attribute == 11:
            return Data.structure((self.over.to_data(), self.under.to_data()))
        return super()._get(attribute, selective_access)

    def _set(self, attribute: int, value: Data) -> None:
        if attribute == 2:
            class_id, ln, index = expect_items(value, DataTag.STRUCTURE, 3, "monitored_value")
            self.monitored = (
                expect_int(class_id, DataTag.LONG_UNSIGNED, what="class_id"),
                obis_from(ln),
                expect_int(index, DataTag.INTEGER, what="attribute_index"),
            )
        elif attribute == 8:
            expect_items(value, DataTag.STRUCTURE, 3, "emergency_profile")
            self._values[8] = value
        elif attribute == 10:
            self.emergency_active = expect_bool(value, "emergency_profile_active")
        elif attribute == 11:
            over, under = expect_items(value, DataTag.STRUCTURE, 2, "actions")
            self.over = ScriptReference.from_data(over)
            self.under = ScriptReference.from_data(under)
        else:
            super()._set(attribute, value)
