"""Decoding of what arrives on the spontaneous-message port: the concentrator's power
frames and meters' DLMS DataNotification pushes (wrapped, as the DC relays them).

Pure functions: bytes in, a :class:`Decoded` out. Nothing here raises on bad input; a
message that cannot be decoded comes back with ``decoded=False`` and the reason, so the
listener stores it raw and keeps serving.
"""

from __future__ import annotations

import struct
from datetime import datetime
from functools import lru_cache
from typing import NamedTuple

from smmc.dlms.apdu import DataNotification
from smmc.dlms.axdr import Data, DataTag
from smmc.dlms.cosem_time import CosemDateTime
from smmc.dlms.errors import DlmsError
from smmc.dlms.framing.wrapper import HEADER_LENGTH, WRAPPER_VERSION, WrapperFrame
from smmc.domain.events import METER_WORDS
from smmc.domain.spontaneous import PowerEvent, SpontaneousFrameError, decode_power_frame
from smmc.store.events import Observation, Occurrence

__all__ = [
    "DLMS_PUSH",
    "MAX_MESSAGE",
    "UNKNOWN",
    "Decoded",
    "decode_message",
    "split_stream",
]

DLMS_PUSH = "DLMS_PUSH"
UNKNOWN = "UNKNOWN"
MAX_MESSAGE = HEADER_LENGTH + 0xFFFF
"""The longest message either framing can carry (a wrapper frame with a full payload)."""
_POWER_HEADER = b"\x01\x13"
_WRAPPER_HEADER = WRAPPER_VERSION.to_bytes(2, "big")


class Decoded(NamedTuple):
    message_type: str
    decoded: bool
    device: str | None = None
    device_time_local: str | None = None
    reason: str | None = None
    observation: Observation | None = None
    occurrence: Occurrence | None = None


def split_stream(buffer: bytearray) -> list[bytes]:
    """Cut the whole messages off the front of a TCP ``buffer`` (in place).

    Power frames carry their length after ``01 13``, wrapper frames after ``00 01`` and the
    wPorts. Bytes that start neither are one unknown message up to the end of the buffer:
    without a length there is no boundary to trust, and they are kept, not dropped.
    """
    messages: list[bytes] = []
    while len(buffer) >= 2:
        head = bytes(buffer[:2])
        if head == _POWER_HEADER:
            if len(buffer) < 4:
                break
            total = 6 + int.from_bytes(buffer[2:4], "big")
        elif head == _WRAPPER_HEADER:
            if len(buffer) < HEADER_LENGTH:
                break
            total = HEADER_LENGTH + int.from_bytes(buffer[6:8], "big")
        else:
            messages.append(bytes(buffer))
            del buffer[:]
            break
        if len(buffer) < total:
            break
        messages.append(bytes(buffer[:total]))
        del buffer[:total]
    return messages


def _power(data: bytes, received_at: datetime, source: str) -> Decoded:
    try:
        frame = decode_power_frame(data)
    except SpontaneousFrameError as exc:
        return Decoded(UNKNOWN, False, reason=str(exc))
    local = frame.local_time.isoformat(sep=" ")
    off = frame.event is PowerEvent.OFF
    occurrence = Occurrence(
        "concentrator",
        frame.serial,
        frame.event.message_type,
        received_at,
        source,
        raw=data.hex().upper(),
        active=off,
        closes=None if off else "LVC_POWER_OFF",
    )
    return Decoded(frame.event.message_type, True, frame.serial, local, occurrence=occurrence)


def _push_words(body: Data) -> tuple[str, dict[str, int]]:
    """The meter serial and its four words from the relayed alarm structure
    ``{serial, node address, normal 1, normal 2, extended 1, extended 2}``."""
    fields = body.value
    if body.tag is not DataTag.STRUCTURE or not isinstance(fields, tuple) or len(fields) != 6:
        raise ValueError("push body is not the 6-field meter alarm structure")
    items = [item for item in fields if isinstance(item, Data)]
    serial_field, _node, *word_fields = items
    raw_serial = serial_field.value
    if serial_field.tag is not DataTag.OCTET_STRING or not isinstance(raw_serial, bytes):
        raise ValueError("push does not identify the meter (field 1 is not an octet string)")
    try:
        serial = raw_serial.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError("meter serial in the push is not ASCII") from None
    if not serial or not serial.isprintable():
        raise ValueError(f"meter serial {serial!r} in the push is empty or unprintable")
    words: dict[str, int] = {}
    for name, item in zip(METER_WORDS, word_fields, strict=True):
        if item.tag is not DataTag.LONG_UNSIGNED or not isinstance(item.value, int):
            raise ValueError(f"status word {name} is {item.tag.name}, not long-unsigned")
        words[name] = item.value
    return serial, words


@lru_cache(maxsize=4096)
def _local_time(stamp: bytes) -> str | None:
    """The push's 12-byte date-time as local wall time text (``None`` if it names no
    instant); a ``DlmsError`` if it is not a COSEM date-time at all. Cached: the pushes of
    one second share their stamp."""
    parsed = CosemDateTime.from_bytes(stamp)
    try:
        return parsed.to_datetime().replace(tzinfo=None).isoformat(sep=" ")
    except (DlmsError, ValueError):
        return None


def _alarm_push(data: bytes) -> tuple[str, dict[str, int], str | None] | None:
    """The serial, words and local time of a push in exactly the concentrator's alarm
    layout (wrapper, DataNotification with a date-time, ``{octet-string serial,
    long-unsigned × 5}``) read by fixed offsets; ``None`` for anything else, which the
    general decoder then reads (and explains, if it is wrong)."""
    if len(data) < _ALARM_MIN or data[_ALARM_FIXED.size - 1] >= 0x80:
        return None
    version, _, _, length, tag, stamp_length, stamp, structure, count, string, size = (
        _ALARM_FIXED.unpack_from(data)
    )
    if (
        version != WRAPPER_VERSION
        or length != len(data) - HEADER_LENGTH
        or len(data) != _ALARM_MIN + size
        or (tag, stamp_length, structure, count, string) != (0x0F, 12, 0x02, 6, 0x09)
        or size == 0
    ):
        return None
    start = _ALARM_FIXED.size
    raw_serial = data[start : start + size]
    fields = _ALARM_WORDS.unpack_from(data, start + size)
    if fields[0::2] != (0x12,) * 5 or not raw_serial.isascii():
        return None
    serial = raw_serial.decode("ascii")
    if not serial.isprintable():
        return None
    try:
        local = _local_time(stamp)
    except DlmsError:
        return None
    _, normal1, normal2, extended1, extended2 = fields[1::2]
    words = {"normal1": normal1, "normal2": normal2, "extended1": extended1,
             "extended2": extended2}  # fmt: skip
    return serial, words, local


_ALARM_FIXED = struct.Struct(">HHHHB4xB12sBBBB")
"""Wrapper header, 0F, invoke id, date-time (0C + 12 bytes), structure of 6, octet string
and its length."""
_ALARM_WORDS = struct.Struct(">" + "BH" * 5)
_ALARM_MIN = _ALARM_FIXED.size + _ALARM_WORDS.size


def _push(data: bytes, received_at: datetime, source: str) -> Decoded:
    fast = _alarm_push(data)
    if fast is not None:
        serial, words, local = fast
    else:
        try:
            frame = WrapperFrame.from_bytes(data)
            notification = DataNotification.from_bytes(frame.payload)
            serial, words = _push_words(notification.body)
        except (DlmsError, ValueError) as exc:
            return Decoded(UNKNOWN, False, reason=f"DLMS push: {exc}")
        stamp = notification.date_time
        local = None if stamp is None else _local_time(stamp.to_bytes())
    observation = Observation("meter", serial, words, received_at, source, data.hex().upper())
    return Decoded(DLMS_PUSH, True, serial, local, observation=observation)


def decode_message(data: bytes, received_at: datetime, source: str = "spontaneous") -> Decoded:
    """What one message is; never raises."""
    if data[:2] == _POWER_HEADER:
        return _power(data, received_at, source)
    if data[:2] == _WRAPPER_HEADER:
        return _push(data, received_at, source)
    head = data[:2].hex().upper() or "empty"
    return Decoded(UNKNOWN, False, reason=f"header {head} is neither a power frame nor a push")
