"""Interface class 70 (Disconnect control): Blue Book state machine per control mode."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smmc.dlms.axdr import Data
from smmc.dlms.cosem.base import CosemAccessError
from smmc.dlms.cosem.disconnect_control import ControlState, DisconnectControl, Trigger

D, C, R = ControlState.DISCONNECTED, ControlState.CONNECTED, ControlState.READY_FOR_RECONNECTION
T = Trigger


@pytest.mark.parametrize(
    ("mode", "state", "trigger", "expected"),
    [
        # mode 1: remote reconnect goes straight to connected (d); manual disconnect (f)
        (1, C, T.REMOTE_DISCONNECT, D),
        (1, D, T.REMOTE_RECONNECT, C),
        (1, R, T.REMOTE_DISCONNECT, D),
        (1, C, T.MANUAL_DISCONNECT, R),
        (1, R, T.MANUAL_RECONNECT, C),
        (1, C, T.LOCAL_DISCONNECT, R),
        # mode 2: remote reconnect only arms the breaker (a), a person closes it (e)
        (2, D, T.REMOTE_RECONNECT, R),
        (2, R, T.MANUAL_RECONNECT, C),
        (2, R, T.REMOTE_RECONNECT, R),
        # modes 3/4: no manual disconnection
        (3, D, T.REMOTE_RECONNECT, C),
        (4, D, T.REMOTE_RECONNECT, R),
        # modes 5/6: local reconnection (h)
        (5, R, T.LOCAL_RECONNECT, C),
        (6, R, T.LOCAL_RECONNECT, C),
        # already there: no-op
        (1, D, T.REMOTE_DISCONNECT, D),
        (1, C, T.REMOTE_RECONNECT, C),
        (0, C, T.REMOTE_RECONNECT, C),
    ],
)
def test_allowed_transitions(
    mode: int, state: ControlState, trigger: Trigger, expected: ControlState
) -> None:
    dc = DisconnectControl(control_mode=mode, state=state)
    assert dc.trigger(trigger) is expected
    assert dc.control_state is expected


@pytest.mark.parametrize(
    ("mode", "state", "trigger"),
    [
        (0, C, T.REMOTE_DISCONNECT),
        (0, C, T.MANUAL_DISCONNECT),
        (1, R, T.REMOTE_RECONNECT),
        (1, R, T.LOCAL_RECONNECT),
        (3, C, T.MANUAL_DISCONNECT),
        (4, C, T.MANUAL_DISCONNECT),
        (2, D, T.MANUAL_RECONNECT),
    ],
)
def test_refused_transitions(mode: int, state: ControlState, trigger: Trigger) -> None:
    dc = DisconnectControl(control_mode=mode, state=state)
    with pytest.raises(CosemAccessError) as exc:
        dc.trigger(trigger)
    assert exc.value.result == 250
    assert dc.control_state is state


def test_methods_and_attributes() -> None:
    dc = DisconnectControl(control_mode=1)
    assert dc.get(2) == Data.boolean(True)
    assert dc.action(1, Data.integer(0)) is None
    assert dc.get(2) == Data.boolean(False)
    assert dc.get(3) == Data.enum(0)
    assert dc.get(4) == Data.enum(1)
    dc.action(2, Data.integer(0))
    assert dc.get(3) == Data.enum(1)
    with pytest.raises(CosemAccessError) as exc:
        dc.action(1, Data.long(0))
    assert exc.value.result == 12


def test_control_mode_write() -> None:
    dc = DisconnectControl(control_mode=1, state=D)
    with pytest.raises(CosemAccessError):
        dc.set(4, Data.enum(7))
    with pytest.raises(CosemAccessError):
        dc.set(3, Data.enum(1))
    dc.set(4, Data.enum(0))
    assert dc.control_state is C


def test_callback_on_output_change_only() -> None:
    seen: list[bool] = []
    dc = DisconnectControl(control_mode=2, on_output_change=seen.append)
    dc.remote_disconnect()
    dc.remote_disconnect()
    dc.remote_reconnect()  # D -> R: output stays open
    dc.trigger(T.MANUAL_RECONNECT)
    assert seen == [False, True]


@given(st.integers(0, 6), st.lists(st.sampled_from(list(Trigger)), max_size=20))
def test_invariants_under_any_sequence(mode: int, triggers: list[Trigger]) -> None:
    seen: list[bool] = []
    dc = DisconnectControl(control_mode=mode, on_output_change=seen.append)
    outputs = [dc.output_state]
    for trigger in triggers:
        with contextlib.suppress(CosemAccessError):
            dc.trigger(trigger)
        assert dc.output_state is (dc.control_state is C)
        if mode == 0:
            assert dc.control_state is C
        if dc.output_state != outputs[-1]:
            outputs.append(dc.output_state)
    assert seen == outputs[1:]
