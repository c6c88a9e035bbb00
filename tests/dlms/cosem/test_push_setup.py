"""Interface class 40 (Push setup)."""

from __future__ import annotations

import pytest

from smmc.dlms.apdu.selective_access import CaptureObjectDefinition
from smmc.dlms.axdr import Data
from smmc.dlms.cosem.base import CosemAccessError, LogicalDevice
from smmc.dlms.cosem.data import DataObject
from smmc.dlms.cosem.push_setup import PUSH_SETUP_OBIS, PushSetup, TransportService
from smmc.dlms.obis import Obis

LDN = Obis.parse("0.0.42.0.0.255")
ALARM = Obis.parse("0.0.97.98.0.255")
OBJECTS = (
    CaptureObjectDefinition(40, PUSH_SETUP_OBIS, 1),
    CaptureObjectDefinition(1, LDN, 2),
    CaptureObjectDefinition(1, ALARM, 2),
)


def _setup() -> tuple[PushSetup, list[tuple[Data, ...]]]:
    sent: list[tuple[Data, ...]] = []
    device = LogicalDevice()
    device.add(DataObject(LDN, Data.octet_string(b"SMMC0001")))
    device.add(DataObject(ALARM, Data.double_long_unsigned(0x11)))
    setup = device.add(
        PushSetup(
            objects=OBJECTS,
            destination=b"10.0.0.1:4059",
            on_push=lambda s, values: sent.append(values),
        )
    )
    return setup, sent


def test_push_collects_listed_attributes() -> None:
    setup, sent = _setup()
    setup.action(1, Data.integer(0))
    assert sent == [
        (
            Data.octet_string(PUSH_SETUP_OBIS.to_bytes()),
            Data.octet_string(b"SMMC0001"),
            Data.double_long_unsigned(0x11),
        )
    ]


def test_attributes_and_writes() -> None:
    setup, _ = _setup()
    assert setup.get(2) == Data.array(o.to_data() for o in OBJECTS)
    assert setup.get(3).to_python() == [0, b"10.0.0.1:4059", 0]
    setup.set(3, Data.structure((Data.enum(1), Data.octet_string(b"h:1"), Data.enum(0))))
    assert (setup.transport, setup.destination) == (TransportService.UDP, b"h:1")
    setup.set(2, Data.array((OBJECTS[1].to_data(),)))
    assert setup.objects == (OBJECTS[1],)
    setup.set(6, Data.unsigned(3))
    setup.set(7, Data.long_unsigned(60))
    assert (setup.number_of_retries, setup.repetition_delay) == (3, 60)
    window = Data.structure((Data.octet_string(b"\xff" * 12), Data.octet_string(b"\xff" * 12)))
    setup.set(4, Data.array((window,)))
    assert setup.get(4) == Data.array((window,))


def test_bad_writes_rejected() -> None:
    setup, _ = _setup()
    with pytest.raises(CosemAccessError):
        setup.set(3, Data.structure((Data.enum(99), Data.octet_string(b""), Data.enum(0))))
    with pytest.raises(CosemAccessError) as exc:
        setup.set(6, Data.long_unsigned(3))
    assert exc.value.result == 12
    with pytest.raises(CosemAccessError):
        setup.set(4, Data.array((Data.structure((Data.octet_string(b"x"),)),)))


def test_push_without_device() -> None:
    with pytest.raises(CosemAccessError) as exc:
        PushSetup().push()
    assert exc.value.result == 2
