from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smmc.domain.spontaneous import (
    PowerEvent,
    PowerFrame,
    SpontaneousFrameError,
    decode_power_frame,
    encode_power_frame,
)

# The seed's spontaneous-message report (ID-002): LVC_POWER_ON then LVC_POWER_OFF.
POWER_ON = "011300184E6B001214030902071532314C564D3530414530303038313602"
POWER_OFF = "011300184E6F0012090D2503071532314C564D3530414530303038313601"


def test_seed_power_on_frame_decodes_to_the_report_row() -> None:
    frame = decode_power_frame(bytes.fromhex(POWER_ON))
    assert frame == PowerFrame(
        0x4E6B, datetime(2021, 7, 2, 20, 3, 9), "21LVM50AE000816", PowerEvent.ON
    )
    assert frame.event.message_type == "LVC_POWER_ON"


def test_seed_power_off_frame_decodes_to_the_report_row() -> None:
    frame = decode_power_frame(bytes.fromhex(POWER_OFF))
    assert frame == PowerFrame(
        0x4E6F, datetime(2021, 7, 3, 9, 13, 37), "21LVM50AE000816", PowerEvent.OFF
    )
    assert frame.event.message_type == "LVC_POWER_OFF"


@pytest.mark.parametrize("hex_frame", [POWER_ON, POWER_OFF])
def test_encoder_reproduces_the_seed_frames_byte_for_byte(hex_frame: str) -> None:
    frame = decode_power_frame(bytes.fromhex(hex_frame))
    assert encode_power_frame(frame).hex().upper() == hex_frame


def test_encoder_from_plain_values() -> None:
    frame = PowerFrame(0x4E6B, datetime(2021, 7, 2, 20, 3, 9), "21LVM50AE000816", PowerEvent.ON)
    assert encode_power_frame(frame) == bytes.fromhex(POWER_ON)


_serials = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=40
)
_times = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2255, 12, 31)).map(
    lambda moment: moment.replace(microsecond=0)
)


@given(st.integers(0, 0xFFFF), _times, _serials, st.sampled_from(PowerEvent))
def test_round_trip(sequence: int, moment: datetime, serial: str, event: PowerEvent) -> None:
    frame = PowerFrame(sequence, moment, serial, event)
    data = encode_power_frame(frame)
    assert int.from_bytes(data[2:4], "big") == len(data) - 6
    assert decode_power_frame(data) == frame


@given(st.binary(max_size=64))
def test_garbage_raises_only_the_typed_error(data: bytes) -> None:
    try:
        frame = decode_power_frame(data)
    except SpontaneousFrameError:
        return
    assert encode_power_frame(frame) == data


@given(st.integers(0, 29), st.integers(0, 255))
def test_any_corrupted_byte_is_refused_or_decodes_consistently(index: int, value: int) -> None:
    data = bytearray.fromhex(POWER_ON)
    data[index] = value
    try:
        frame = decode_power_frame(bytes(data))
    except SpontaneousFrameError:
        return
    assert encode_power_frame(frame) == bytes(data)


@pytest.mark.parametrize(
    ("hex_frame", "reason"),
    [
        (POWER_ON[:-2], "length"),
        ("02" + POWER_ON[2:], "header"),
        (POWER_ON[:-2] + "03", "event"),
        (POWER_ON[:12] + "0013" + POWER_ON[16:], "message type"),
        (POWER_ON[:16] + "18" + POWER_ON[18:], "local time"),
    ],
)
def test_malformed_frames_say_why(hex_frame: str, reason: str) -> None:
    with pytest.raises(SpontaneousFrameError, match=reason):
        decode_power_frame(bytes.fromhex(hex_frame))


@pytest.mark.parametrize(
    "frame",
    [
        PowerFrame(0x10000, datetime(2021, 1, 1), "X", PowerEvent.ON),
        PowerFrame(1, datetime(1999, 12, 31), "X", PowerEvent.ON),
        PowerFrame(1, datetime(2021, 1, 1), "", PowerEvent.OFF),
        PowerFrame(1, datetime(2021, 1, 1), "Ñandú", PowerEvent.OFF),
    ],
)
def test_unencodable_values_raise(frame: PowerFrame) -> None:
    with pytest.raises(SpontaneousFrameError):
        encode_power_frame(frame)
