"""The alarm-push fast path reads exactly what the general DLMS decoder reads, and hands
everything else to it."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from smmc.dlms.apdu import DataNotification
from smmc.dlms.axdr import Data
from smmc.dlms.cosem_time import CosemDateTime
from smmc.dlms.framing.wrapper import WrapperFrame
from smmc.events import decode
from smmc.events.decode import DLMS_PUSH, UNKNOWN, decode_message

AT = datetime(2026, 4, 10, 12, 0, tzinfo=UTC)
words16 = st.integers(min_value=0, max_value=0xFFFF)


def _frame(serial: bytes, node: int, words: tuple[int, int, int, int], stamp: bytes) -> bytes:
    body = Data.structure(
        (Data.octet_string(serial), Data.long_unsigned(node), *map(Data.long_unsigned, words))
    )
    apdu = DataNotification(body, CosemDateTime.from_bytes(stamp)).to_bytes()
    return WrapperFrame(1, 0x1001, 1, apdu).to_bytes()


def _general(data: bytes) -> decode.Decoded:
    """What the general decoder makes of ``data`` (the fast path switched off)."""
    original = decode._alarm_push
    decode._alarm_push = lambda _data: None  # type: ignore[assignment]
    try:
        return decode_message(data, AT)
    finally:
        decode._alarm_push = original


STAMPS = [
    CosemDateTime.from_datetime(datetime(2026, 4, 10, 12, 0, 5)).to_bytes(),
    CosemDateTime.from_datetime(datetime(2021, 7, 2, 20, 3, 9, 500000)).to_bytes(),
    bytes.fromhex("FFFFFFFFFFFFFFFFFF800000"),  # every field "not specified"
]


@given(
    serial=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), min_size=1,
                   max_size=40),
    node=words16,
    words=st.tuples(words16, words16, words16, words16),
    stamp=st.sampled_from(STAMPS),
)  # fmt: skip
def test_fast_path_equals_the_general_decoder(
    serial: str, node: int, words: tuple[int, int, int, int], stamp: bytes
) -> None:
    data = _frame(serial.encode("ascii"), node, words, stamp)
    assert decode._alarm_push(data) is not None
    fast = decode_message(data, AT)
    assert fast.message_type == DLMS_PUSH
    assert fast == _general(data)
    assert fast.observation is not None
    assert dict(fast.observation.words) == dict(
        zip(("normal1", "normal2", "extended1", "extended2"), words, strict=True)
    )


@given(
    serial=st.binary(min_size=1, max_size=20),
    words=st.tuples(words16, words16, words16, words16),
    cut=st.integers(min_value=0, max_value=60),
    flip=st.integers(min_value=0, max_value=60),
    value=st.integers(min_value=0, max_value=255),
)
def test_any_altered_push_decodes_as_the_general_decoder_says(
    serial: bytes, words: tuple[int, int, int, int], cut: int, flip: int, value: int
) -> None:
    data = bytearray(_frame(serial, 7, words, STAMPS[0]))
    if flip < len(data):
        data[flip] = value
    altered = bytes(data[: len(data) - cut])
    assert decode_message(altered, AT) == _general(altered)


def test_a_push_without_date_time_or_with_a_bad_serial_is_left_to_the_general_decoder() -> None:
    body = Data.structure((Data.octet_string(b"M\x01"), *(Data.long_unsigned(0) for _ in range(5))))
    bad_serial = WrapperFrame(
        1, 1, 1, DataNotification(body, CosemDateTime.from_bytes(STAMPS[0])).to_bytes()
    ).to_bytes()
    assert decode._alarm_push(bad_serial) is None
    result = decode_message(bad_serial, AT)
    assert (result.message_type, result.decoded) == (UNKNOWN, False)
    assert "unprintable" in str(result.reason)
    plain = Data.structure((Data.octet_string(b"M1"), *(Data.long_unsigned(1) for _ in range(5))))
    undated = WrapperFrame(1, 1, 1, DataNotification(plain).to_bytes()).to_bytes()
    assert decode._alarm_push(undated) is None
    assert decode_message(undated, AT).device_time_local is None
    assert decode_message(undated, AT).device == "M1"
