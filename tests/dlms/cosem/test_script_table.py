"""Interface class 9 (Script table)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smmc.dlms.axdr import Data
from smmc.dlms.cosem.base import CosemAccessError, LogicalDevice
from smmc.dlms.cosem.disconnect_control import DisconnectControl
from smmc.dlms.cosem.register import Register
from smmc.dlms.cosem.script_table import Script, ScriptAction, ScriptService, ScriptTable
from smmc.dlms.obis import Obis

DISCONNECT = Obis.parse("0.0.96.3.10.255")
REG = Obis.parse("1.0.1.8.1.255")
TABLE = Obis.parse("0.0.10.0.106.255")

SCRIPTS = (
    Script(1, (ScriptAction(ScriptService.EXECUTE_METHOD, 70, DISCONNECT, 1, Data.integer(0)),)),
    Script(
        2,
        (
            ScriptAction(ScriptService.EXECUTE_METHOD, 70, DISCONNECT, 2, Data.integer(0)),
            ScriptAction(ScriptService.WRITE_ATTRIBUTE, 3, REG, 2, Data.double_long_unsigned(99)),
        ),
    ),
    Script(3),
)


def _device() -> tuple[LogicalDevice, ScriptTable, list[int]]:
    ran: list[int] = []
    device = LogicalDevice()
    device.add(DisconnectControl(DISCONNECT, control_mode=1))
    device.add(Register(REG))
    table = device.add(ScriptTable(TABLE, SCRIPTS, on_execute=ran.append))
    return device, table, ran


def test_execute_runs_actions_and_notifies() -> None:
    device, table, ran = _device()
    table.action(1, Data.long_unsigned(1))
    assert device.get(70, DISCONNECT, 3) == Data.enum(0)
    table.action(1, Data.long_unsigned(2))
    assert device.get(70, DISCONNECT, 3) == Data.enum(1)
    assert device.get(3, REG, 2).value == 99
    table.execute(3)
    assert ran == [1, 2, 3]


def test_unknown_script_and_bad_parameter() -> None:
    _, table, ran = _device()
    with pytest.raises(CosemAccessError) as exc:
        table.action(1, Data.long_unsigned(9))
    assert exc.value.result == 250
    with pytest.raises(CosemAccessError) as exc:
        table.action(1, Data.unsigned(1))
    assert exc.value.result == 12
    assert ran == []


def test_actions_without_device_fail() -> None:
    with pytest.raises(CosemAccessError) as exc:
        ScriptTable(TABLE, SCRIPTS).execute(1)
    assert exc.value.result == 2
    ScriptTable(TABLE, SCRIPTS).execute(3)


def test_scripts_attribute_round_trip() -> None:
    _, table, _ = _device()
    encoded = table.get(2)
    copy = ScriptTable(TABLE)
    copy.set(2, encoded)
    assert list(copy.scripts.values()) == list(SCRIPTS)
    with pytest.raises(CosemAccessError) as exc:
        copy.set(2, Data.array((Data.structure((Data.long_unsigned(1),)),)))
    assert exc.value.result == 12
    bad_service = ScriptAction(ScriptService.WRITE_ATTRIBUTE, 3, REG, 2, Data.null()).to_data()
    items = bad_service.value
    assert isinstance(items, tuple)
    broken = Data.structure((Data.enum(7), *items[1:]))
    with pytest.raises(CosemAccessError):
        ScriptAction.from_data(broken)


@given(st.integers(0, 0xFFFF), st.integers(-128, 127), st.integers(0, 0xFFFF))
def test_action_round_trip(class_id: int, index: int, identifier: int) -> None:
    action = ScriptAction(ScriptService.EXECUTE_METHOD, class_id, REG, index, Data.null())
    script = Script(identifier, (action,))
    assert Script.from_data(script.to_data()) == script
