"""DataNotification and EventNotificationRequest."""

from __future__ import annotations

import pytest
from apdu_strategies import attribute_descriptors, data_values
from hypothesis import given
from hypothesis import strategies as st

from smmc.dlms.apdu._common import CosemAttributeDescriptor, LongInvokeIdAndPriority
from smmc.dlms.apdu.notification import DataNotification, EventNotificationRequest
from smmc.dlms.axdr import Data
from smmc.dlms.cosem_time import CosemDateTime
from smmc.dlms.errors import DecodeError, EncodeError
from smmc.dlms.obis import Obis

STAMP = CosemDateTime(2024, 5, 17, 5, 13, 45, 0, 0, deviation=240)
date_times = st.binary(min_size=12, max_size=12).map(CosemDateTime.from_bytes)
long_invoke_ids = st.builds(
    LongInvokeIdAndPriority,
    st.integers(0, 0xFFFFFF),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.booleans(),
)


def test_long_invoke_id_bits() -> None:
    iid = LongInvokeIdAndPriority(0x123456, self_descriptive=True, high_priority=True)
    assert iid.to_bytes() == bytes.fromhex("90123456")
    iid = LongInvokeIdAndPriority(1, break_on_error=True, confirmed=True)
    assert iid.to_bytes() == bytes.fromhex("60000001")
    with pytest.raises(EncodeError):
        LongInvokeIdAndPriority(1 << 24)


def test_data_notification_without_date_time() -> None:
    push = DataNotification(
        Data.structure((Data.octet_string(b"MTR1"), Data.double_long_unsigned(123456))),
        long_invoke_id_and_priority=LongInvokeIdAndPriority(1),
    )
    encoded = bytes.fromhex("0F 00000001 00 0202 0904 4D545231 06 0001E240")
    assert push.to_bytes() == encoded
    assert DataNotification.from_bytes(encoded) == push


def test_data_notification_with_date_time() -> None:
    push = DataNotification(Data.enum(3), STAMP)
    encoded = push.to_bytes()
    assert encoded == b"\x0f\x00\x00\x00\x00\x0c" + STAMP.to_bytes() + b"\x16\x03"
    assert DataNotification.from_bytes(encoded) == push


def test_event_notification() -> None:
    event = EventNotificationRequest(
        CosemAttributeDescriptor(1, Obis(0, 0, 96, 11, 0, 255), 2), Data.long_unsigned(40), STAMP
    )
    encoded = event.to_bytes()
    assert encoded == (
        b"\xc2\x01" + STAMP.to_bytes() + bytes.fromhex("0001 0000600B00FF 02 12 0028")
    )
    assert EventNotificationRequest.from_bytes(encoded) == event
    no_time = EventNotificationRequest(event.attribute, event.value)
    assert no_time.to_bytes() == bytes.fromhex("C2 00 0001 0000600B00FF 02 12 0028")


@given(data_values, st.none() | date_times, long_invoke_ids)
def test_data_notification_round_trip(
    body: Data, stamp: CosemDateTime | None, iid: LongInvokeIdAndPriority
) -> None:
    push = DataNotification(body, stamp, iid)
    assert DataNotification.from_bytes(push.to_bytes()) == push


@given(attribute_descriptors(), data_values, st.none() | date_times)
def test_event_notification_round_trip(
    attribute: CosemAttributeDescriptor, value: Data, stamp: CosemDateTime | None
) -> None:
    event = EventNotificationRequest(attribute, value, stamp)
    assert EventNotificationRequest.from_bytes(event.to_bytes()) == event


@pytest.mark.parametrize(
    "bad",
    [
        "0F",
        "0F000000",  # long invoke id truncated
        "0F00000001",  # date-time missing
        "0F00000001 05 0102030405 1100",  # date-time of 5 bytes
        "0F00000001 0C 07E8",  # date-time shorter than declared
        "0F00000001 00",  # body missing
        "0F00000001 00 1100 00",  # trailing
        "C2 01 07E8",  # time truncated
        "C2 00 0001 0000600B00FF",  # attribute id missing
        "C2 00 0001 0000600B00FF 02",  # value missing
        "C2 02 0001 0000600B00FF 02 1100",  # presence flag 2
    ],
)
def test_malformed_raises(bad: str) -> None:
    buf = bytes.fromhex(bad)
    decode = DataNotification.from_bytes if buf[0] == 0x0F else EventNotificationRequest.from_bytes
    with pytest.raises(DecodeError):
        decode(buf)
