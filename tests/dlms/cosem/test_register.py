"""Interface class 3 (Register)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smmc.dlms.axdr import Data, DataTag
from smmc.dlms.cosem.base import CosemAccessError
from smmc.dlms.cosem.register import Register, Unit, decode_scaler_unit, scaler_unit
from smmc.dlms.obis import Obis

LN = Obis.parse("1.0.1.8.0.255")


def test_attributes() -> None:
    reg = Register(LN, Data.double_long_unsigned(42), -1, Unit.WATT_HOUR)
    assert reg.get(2) == Data.double_long_unsigned(42)
    assert reg.get(3) == Data.structure((Data.integer(-1), Data.enum(30)))
    assert reg.scaled() == pytest.approx(4.2)


@given(st.integers(-128, 127), st.integers(0, 255))
def test_scaler_unit_round_trip(scaler: int, unit: int) -> None:
    assert decode_scaler_unit(scaler_unit(scaler, unit)) == (scaler, unit)


def test_malformed_scaler_unit_rejected() -> None:
    reg = Register(LN)
    with pytest.raises(CosemAccessError) as exc:
        reg.set(3, Data.structure((Data.long(1), Data.enum(30))))
    assert exc.value.result == 12
    with pytest.raises(CosemAccessError):
        reg.set(3, Data.structure((Data.integer(1),)))


def test_value_type_is_pinned() -> None:
    reg = Register(LN, Data.double_long_unsigned(1))
    with pytest.raises(CosemAccessError) as exc:
        reg.set(2, Data.long(1))
    assert exc.value.result == 12
    with pytest.raises(CosemAccessError):
        reg.set(2, Data.array(()))
    reg.set(2, Data.double_long_unsigned(9))
    assert reg.value.value == 9


def test_reset_zeroes_keeping_type() -> None:
    reg = Register(LN, Data.float32(3.5))
    assert reg.action(1, Data.integer(0)) is None
    assert reg.value == Data(DataTag.FLOAT32, 0.0)


def test_reset_of_text_value_fails() -> None:
    reg = Register(LN, Data.visible_string("abc"))
    with pytest.raises(CosemAccessError) as exc:
        reg.reset()
    assert exc.value.result == 250
