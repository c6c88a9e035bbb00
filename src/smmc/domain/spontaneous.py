"""The concentrator's spontaneous power off/on frame (LVC_POWER_OFF / LVC_POWER_ON).

A DC sends these to the head-end's spontaneous-message port (58700 in the seed) when it
loses or regains supply; last-gasp frames are how outages reach the head-end. Layout,
derived from the seed's two frames (DOMAIN.md §4), all integers big-endian::

    01 13        frame header (protocol 1, spontaneous message)
    LL LL        number of bytes after the sequence number
    SS SS        sequence number (wraps at 65536)
    00 12        message type: power event
    hh mm ss DD MM YY   DC-local time, binary; year = 2000 + YY
    serial       the DC serial in ASCII (the rest up to the last byte)
    01 | 02      01 power off, 02 power on

``011300184E6B001214030902071532314C564D3530414530303038313602`` is DC 21LVM50AE000816
powering on at 2021-07-02 20:03:09 local, sequence 0x4E6B.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

__all__ = [
    "DEFAULT_SPONTANEOUS_PORT",
    "PowerEvent",
    "PowerFrame",
    "SpontaneousFrameError",
    "decode_power_frame",
    "encode_power_frame",
]

DEFAULT_SPONTANEOUS_PORT = 58700

_HEADER = b"\x01\x13"
_POWER_TYPE = 0x0012
_FIXED_AFTER_SEQUENCE = 2 + 6 + 1  # type, time, event
_MAX_SERIAL = 0xFFFF - _FIXED_AFTER_SEQUENCE


class SpontaneousFrameError(ValueError):
    """A frame that is not a well-formed power frame, or values that cannot be encoded."""


class PowerEvent(enum.IntEnum):
    OFF = 1
    ON = 2

    @property
    def message_type(self) -> str:
        """The name the head-end's spontaneous-message report shows."""
        return "LVC_POWER_ON" if self is PowerEvent.ON else "LVC_POWER_OFF"


@dataclass(frozen=True, slots=True)
class PowerFrame:
    """One power frame; ``local_time`` is the DC's local wall clock (naive, whole seconds)."""

    sequence: int
    local_time: datetime
    serial: str
    event: PowerEvent


def encode_power_frame(frame: PowerFrame) -> bytes:
    """The frame's bytes, exactly as the seed's DC sends them."""
    if not 0 <= frame.sequence <= 0xFFFF:
        raise SpontaneousFrameError(f"sequence {frame.sequence} outside 0..65535")
    moment = frame.local_time
    if not 2000 <= moment.year <= 2255:
        raise SpontaneousFrameError(f"year {moment.year} outside 2000..2255")
    try:
        serial = frame.serial.encode("ascii")
    except UnicodeEncodeError:
        raise SpontaneousFrameError(f"serial {frame.serial!r} is not ASCII") from None
    if not serial or len(serial) > _MAX_SERIAL or not frame.serial.isprintable():
        raise SpontaneousFrameError(f"serial {frame.serial!r} is empty, too long or unprintable")
    body = (
        _POWER_TYPE.to_bytes(2, "big")
        + bytes(
            (
                moment.hour,
                moment.minute,
                moment.second,
                moment.day,
                moment.month,
                moment.year - 2000,
            )
        )
        + serial
        + bytes((PowerEvent(frame.event),))
    )
    return _HEADER + len(body).to_bytes(2, "big") + frame.sequence.to_bytes(2, "big") + body


def decode_power_frame(data: bytes) -> PowerFrame:
    """The power frame in ``data`` (one whole datagram or TCP message)."""
    if len(data) < 6 + _FIXED_AFTER_SEQUENCE + 1:
        raise SpontaneousFrameError(f"{len(data)} bytes is too short for a power frame")
    if data[:2] != _HEADER:
        raise SpontaneousFrameError(f"header {data[:2].hex().upper()} is not 0113")
    length = int.from_bytes(data[2:4], "big")
    if length != len(data) - 6:
        raise SpontaneousFrameError(
            f"length field says {length} bytes after the sequence, frame has {len(data) - 6}"
        )
    sequence = int.from_bytes(data[4:6], "big")
    kind = int.from_bytes(data[6:8], "big")
    if kind != _POWER_TYPE:
        raise SpontaneousFrameError(f"message type {kind:04X} is not a power event (0012)")
    hour, minute, second, day, month, year = data[8:14]
    try:
        local_time = datetime(2000 + year, month, day, hour, minute, second)
    except ValueError as exc:
        raise SpontaneousFrameError(f"bad local time in frame: {exc}") from None
    raw_serial = data[14:-1]
    try:
        serial = raw_serial.decode("ascii")
    except UnicodeDecodeError:
        raise SpontaneousFrameError("serial is not ASCII") from None
    if not serial.isprintable():
        raise SpontaneousFrameError(f"serial {serial!r} has control characters")
    if data[-1] not in PowerEvent._value2member_map_:
        raise SpontaneousFrameError(f"power event byte {data[-1]:02X} is neither 01 nor 02")
    return PowerFrame(sequence, local_time, serial, PowerEvent(data[-1]))
