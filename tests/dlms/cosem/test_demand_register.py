"""Interface class 5 (Demand register)."""

from __future__ import annotations

import pytest

from smmc.dlms.axdr import Data
from smmc.dlms.cosem.base import CosemAccessError, LogicalDevice
from smmc.dlms.cosem.demand_register import DemandRegister
from smmc.dlms.cosem.register import Unit
from smmc.dlms.cosem_time import CosemDateTime
from smmc.dlms.obis import Obis

LN = Obis.parse("1.0.1.4.0.255")
T0 = CosemDateTime(2026, 7, 1, 3, 10, 15, 0, 0, 240, None)


def _device_register() -> DemandRegister:
    device = LogicalDevice(clock_source=lambda: T0)
    return device.add(DemandRegister(LN, Data.double_long(0), -1, Unit.WATT, period=900))


def test_attributes() -> None:
    reg = _device_register()
    assert reg.get(4) == Data.structure((Data.integer(-1), Data.enum(27)))
    assert reg.get(8) == Data.double_long_unsigned(900)
    assert reg.get(9) == Data.long_unsigned(1)


def test_next_period_moves_current_to_last() -> None:
    reg = _device_register()
    reg.update(Data.double_long(12_345))
    reg.action(2, Data.integer(0))
    assert reg.get(3) == Data.double_long(12_345)
    assert reg.get(2) == Data.double_long(0)
    assert reg.get(6) == Data.octet_string(T0.to_bytes())
    assert reg.get(7) == Data.octet_string(T0.to_bytes())


def test_reset_zeroes_both() -> None:
    reg = _device_register()
    reg.update(Data.double_long(5))
    reg.next_period()
    reg.update(Data.double_long(7))
    reg.action(1, Data.integer(0))
    assert (reg.current.value, reg.last.value) == (0, 0)


def test_update_keeps_type() -> None:
    reg = _device_register()
    with pytest.raises(CosemAccessError) as exc:
        reg.update(Data.long(1))
    assert exc.value.result == 12


def test_writes_checked() -> None:
    reg = _device_register()
    reg.set(8, Data.double_long_unsigned(300))
    assert reg.get(8).value == 300
    with pytest.raises(CosemAccessError):
        reg.set(8, Data.long_unsigned(300))
    with pytest.raises(CosemAccessError):
        reg.set(2, Data.double_long_unsigned(1))
    with pytest.raises(CosemAccessError):
        reg.set(6, Data.octet_string(b"x"))


def test_without_device_no_clock() -> None:
    with pytest.raises(CosemAccessError) as exc:
        DemandRegister(LN).next_period()
    assert exc.value.result == 2
    reg = DemandRegister(LN)
    reg.next_period(T0)
    assert reg.get(6).value == T0.to_bytes()
