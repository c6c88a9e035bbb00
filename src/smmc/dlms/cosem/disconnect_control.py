"""Interface class 70, Disconnect control: the supply breaker and its state machine.

States and transitions follow the Blue Book figure: Disconnected (0), Connected (1),
Ready_for_reconnection (2); transitions a (remote_reconnect 0→2), b (remote_disconnect 1→0),
c (remote_disconnect 2→0), d (remote_reconnect 0→1), e (manual_reconnect 2→1),
f (manual_disconnect 1→2), g (local_disconnect 1→2), h (local_reconnect 2→1). The control
mode (0..6) says which of them are enabled. ``on_output_change`` lets the meter model gate
consumption on the breaker.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import IntEnum
from typing import ClassVar, Final

from smmc.dlms.axdr import Data, DataTag
from smmc.dlms.cosem.base import (
    AccessResult,
    CosemAccessError,
    CosemObject,
    SelectiveAccessDescriptor,
    expect_int,
)
from smmc.dlms.obis import Obis

__all__ = ["DISCONNECT_CONTROL_OBIS", "ControlState", "DisconnectControl", "Trigger"]

DISCONNECT_CONTROL_OBIS = Obis(0, 0, 96, 3, 10, 255)


class ControlState(IntEnum):
    """Attribute 3."""

    DISCONNECTED = 0
    CONNECTED = 1
    READY_FOR_RECONNECTION = 2


class Trigger(IntEnum):
    """What asks the breaker to move."""

    REMOTE_DISCONNECT = 1
    REMOTE_RECONNECT = 2
    MANUAL_DISCONNECT = 3
    MANUAL_RECONNECT = 4
    LOCAL_DISCONNECT = 5
    LOCAL_RECONNECT = 6


_D, _C, _R = ControlState.DISCONNECTED, ControlState.CONNECTED, ControlState.READY_FOR_RECONNECTION

# Transition letter → (trigger, from state, to state).
_TRANSITIONS: Final[dict[str, tuple[Trigger, ControlState, ControlState]]] = {
    "a": (Trigger.REMOTE_RECONNECT, _D, _R),
    "b": (Trigger.REMOTE_DISCONNECT, _C, _D),
    "c": (Trigger.REMOTE_DISCONNECT, _R, _D),
    "d": (Trigger.REMOTE_RECONNECT, _D, _C),
    "e": (Trigger.MANUAL_RECONNECT, _R, _C),
    "f": (Trigger.MANUAL_DISCONNECT, _C, _R),
    "g": (Trigger.LOCAL_DISCONNECT, _C, _R),
    "h": (Trigger.LOCAL_RECONNECT, _R, _C),
}

# Control mode → enabled transitions (Blue Book table of control_mode).
_MODES: Final[dict[int, str]] = {
    0: "",
    1: "bcfgde",
    2: "bcfgae",
    3: "bcgde",
    4: "bcgae",
    5: "bcfgdeh",
    6: "bcgdeh",
}

OutputCallback = Callable[[bool], None]


class DisconnectControl(CosemObject):
    """IC 70 v0: output_state (2), control_state (3), control_mode (4); methods
    remote_disconnect (1), remote_reconnect (2).

    A remote method whose transition the mode does not enable leaves the state unchanged and
    fails with other-reason (250); asking for the state the breaker is already in succeeds.
    """

    CLASS_ID: ClassVar[int] = 70
    VERSION: ClassVar[int] = 0
    ATTRIBUTE_COUNT: ClassVar[int] = 4
    METHOD_COUNT: ClassVar[int] = 2

    def __init__(
        self,
        logical_name: Obis = DISCONNECT_CONTROL_OBIS,
        control_mode: int = 1,
        state: ControlState = ControlState.CONNECTED,
        on_output_change: OutputCallback | None = None,
    ) -> None:
        super().__init__(logical_name)
        self._check_mode(control_mode)
        self.control_mode = control_mode
        self.control_state = ControlState.CONNECTED if control_mode == 0 else state
        self.on_output_change = on_output_change

    @staticmethod
    def _check_mode(mode: int) -> None:
        if mode not in _MODES:
            raise CosemAccessError(AccessResult.OTHER_REASON, f"control_mode {mode} not 0..6")

    @property
    def output_state(self) -> bool:
        """True when the breaker is closed (the customer is supplied)."""
        return self.control_state is ControlState.CONNECTED

    def trigger(self, trigger: Trigger) -> ControlState:
        """Apply a trigger (remote, manual button, local function) and return the new state.

        Raises other-reason when the current control mode does not enable it.
        """
        for letter in _MODES[self.control_mode]:
            name, source, destination = _TRANSITIONS[letter]
            if name is trigger and source is self.control_state:
                self._move(destination)
                return destination
        if self._settled(trigger):
            return self.control_state
        raise CosemAccessError(
            AccessResult.OTHER_REASON,
            f"{trigger.name.lower()} not allowed in state {self.control_state.name.lower()} "
            f"with control mode {self.control_mode}",
        )

    def _settled(self, trigger: Trigger) -> bool:
        """Whether the breaker already is where ``trigger`` would take it (a no-op)."""
        state = self.control_state
        if trigger is Trigger.REMOTE_DISCONNECT:
            return state is _D
        if trigger is Trigger.REMOTE_RECONNECT:
            return state is _C or (state is _R and "a" in _MODES[self.control_mode])
        if trigger in (Trigger.MANUAL_DISCONNECT, Trigger.LOCAL_DISCONNECT):
            return state is not _C
        return state is _C

    def _move(self, destination: ControlState) -> None:
        before = self.output_state
        self.control_state = destination
        if self.on_output_change is not None and before != self.output_state:
            self.on_output_change(self.output_state)

    def remote_disconnect(self) -> ControlState:
        """Method 1."""
        return self.trigger(Trigger.REMOTE_DISCONNECT)

    def remote_reconnect(self) -> ControlState:
        """Method 2."""
        return self.trigger(Trigger.REMOTE_RECONNECT)

    def _get(self, attribute: int, selective_access: SelectiveAccessDescriptor | None) -> Data:
        if attribute == 2:
            return Data.boolean(self.output_state)
        if attribute == 3:
            return Data.enum(self.control_state)
        return Data.enum(self.control_mode)

    def _set(self, attribute: int, value: Data) -> None:
        if attribute != 4:
            raise CosemAccessError(
                AccessResult.READ_WRITE_DENIED, f"{self!r} attribute {attribute} is read-only"
            )
        mode = expect_int(value, DataTag.ENUM, what="control_mode")
        self._check_mode(mode)
        self.control_mode = mode
        if mode == 0:
            self._move(ControlState.CONNECTED)

    def _action(self, method: int, parameters: Data | None) -> Data | None:
        if parameters is not None:
            expect_int(parameters, DataTag.INTEGER, what="method parameter")
        if method == 1:
            self.remote_disconnect()
        else:
            self.remote_reconnect()
        return None
