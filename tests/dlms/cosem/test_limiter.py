"""Interface class 71 (Limiter)."""

from __future__ import annotations

import pytest

from smmc.dlms.axdr import Data
from smmc.dlms.cosem.base import CosemAccessError, LogicalDevice
from smmc.dlms.cosem.limiter import Limiter, ScriptReference
from smmc.dlms.cosem.script_table import Script, ScriptTable
from smmc.dlms.obis import Obis

LN = Obis.parse("0.0.17.0.0.255")
SCRIPTS = Obis.parse("0.0.10.0.106.255")
POWER = Obis.parse("1.0.1.7.0.255")


def _limiter() -> tuple[Limiter, list[int]]:
    ran: list[int] = []
    device = LogicalDevice()
    device.add(ScriptTable(SCRIPTS, [Script(1), Script(2)], on_execute=ran.append))
    limiter = device.add(
        Limiter(
            LN,
            (3, POWER, 2),
            Data.double_long_unsigned(5000),
            min_over=60,
            min_under=30,
            over=ScriptReference(SCRIPTS, 1),
            under=ScriptReference(SCRIPTS, 2),
        )
    )
    return limiter, ran


def test_trips_after_min_over_duration_and_recovers() -> None:
    limiter, ran = _limiter()
    assert limiter.evaluate(6000, 30) is None
    assert limiter.evaluate(4000, 30) is None  # dip resets the over-threshold timer
    assert limiter.evaluate(6000, 59) is None
    assert limiter.evaluate(6000, 1) == ScriptReference(SCRIPTS, 1)
    assert limiter.evaluate(6000, 600) is None  # already tripped
    assert limiter.evaluate(100, 29) is None
    assert limiter.evaluate(100, 1) == ScriptReference(SCRIPTS, 2)
    assert ran == [1, 2]


def test_attributes_round_trip() -> None:
    limiter, _ = _limiter()
    assert limiter.get(2).to_python() == [3, POWER.to_bytes(), 2]
    assert limiter.get(3) == Data.double_long_unsigned(5000)
    assert limiter.get(6) == Data.double_long_unsigned(60)
    assert limiter.get(10) == Data.boolean(False)
    actions = limiter.get(11)
    copy = Limiter(LN)
    copy.set(11, actions)
    copy.set(2, limiter.get(2))
    assert (copy.over, copy.under, copy.monitored) == (limiter.over, limiter.under, (3, POWER, 2))
    copy.set(3, Data.long_unsigned(10))
    copy.set(10, Data.boolean(True))
    assert copy.emergency_active
    with pytest.raises(CosemAccessError):
        copy.set(6, Data.long_unsigned(1))
    with pytest.raises(CosemAccessError):
        copy.set(8, Data.structure(()))


def test_non_numeric_threshold_and_no_device() -> None:
    limiter = Limiter(LN, threshold=Data.octet_string(b"x"))
    with pytest.raises(CosemAccessError):
        limiter.evaluate(1, 1)
    lonely = Limiter(LN, threshold=Data.long_unsigned(1), min_over=0, over=ScriptReference(SCRIPTS))
    with pytest.raises(CosemAccessError) as exc:
        lonely.evaluate(5, 1)
    assert exc.value.result == 2
    quiet = Limiter(LN, threshold=Data.long_unsigned(1), min_over=0)
    assert quiet.evaluate(5, 1) is None
    assert quiet.tripped
