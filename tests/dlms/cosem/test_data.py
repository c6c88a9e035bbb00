"""Interface class 1 (Data)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from smmc.dlms.axdr import Data
from smmc.dlms.cosem.data import DataObject
from smmc.dlms.obis import Obis

LDN = Obis.parse("0.0.42.0.0.255")


def test_default_value_is_null() -> None:
    obj = DataObject(LDN)
    assert obj.get(2) == Data.null()
    assert obj.CLASS_ID == 1


@given(st.binary(max_size=64))
def test_set_then_get_round_trips(raw: bytes) -> None:
    obj = DataObject(LDN)
    obj.set(2, Data.octet_string(raw))
    assert obj.get(2) == Data.octet_string(raw)
    assert obj.value.value == raw


def test_any_type_accepted() -> None:
    obj = DataObject(LDN, Data.long_unsigned(7))
    obj.set(2, Data.structure((Data.unsigned(1), Data.boolean(True))))
    assert obj.get(2).to_python() == [1, True]
