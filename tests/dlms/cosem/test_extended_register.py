"""Interface class 4 (Extended register)."""

from __future__ import annotations

import pytest

from smmc.dlms.axdr import Data
from smmc.dlms.cosem.base import CosemAccessError, LogicalDevice
from smmc.dlms.cosem.extended_register import ExtendedRegister, date_time_value
from smmc.dlms.cosem.register import Unit
from smmc.dlms.cosem_time import CosemDateTime
from smmc.dlms.obis import Obis

LN = Obis.parse("1.0.1.6.0.255")
T0 = CosemDateTime(2026, 3, 1, 7, 12, 15, 0, 0, 180, None)
T1 = CosemDateTime(2026, 3, 2, 1, 0, 0, 0, 0, 180, None)


def test_capture_sets_value_and_time() -> None:
    reg = ExtendedRegister(LN, Data.double_long_unsigned(0), 0, Unit.WATT)
    reg.capture(Data.double_long_unsigned(4400), T0)
    assert reg.get(2).value == 4400
    assert reg.get(5) == Data.octet_string(T0.to_bytes())
    assert reg.capture_time == T0


def test_reset_stamps_device_time() -> None:
    device = LogicalDevice(clock_source=lambda: T1)
    reg = device.add(ExtendedRegister(LN, Data.double_long_unsigned(5)))
    reg.action(1, Data.integer(0))
    assert reg.value.value == 0
    assert reg.capture_time == T1


def test_reset_without_device_has_no_clock() -> None:
    reg = ExtendedRegister(LN, Data.double_long_unsigned(5))
    with pytest.raises(CosemAccessError) as exc:
        reg.reset()
    assert exc.value.result == 2


def test_capture_time_write_checked() -> None:
    reg = ExtendedRegister(LN)
    reg.set(5, date_time_value(T0))
    assert reg.capture_time == T0
    reg.set(5, Data.date_time(T1))
    assert reg.capture_time == T1
    with pytest.raises(CosemAccessError) as exc:
        reg.set(5, Data.octet_string(b"\x00" * 5))
    assert exc.value.result == 12


def test_status_any_type() -> None:
    reg = ExtendedRegister(LN)
    reg.set(4, Data.long_unsigned(3))
    assert reg.status == Data.long_unsigned(3)
