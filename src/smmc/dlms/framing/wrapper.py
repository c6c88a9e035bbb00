"""IEC 62056-47 wrapper (the DLMS/COSEM TCP and UDP transport).

Header: version (2) = 0x0001, source wPort (2), destination wPort (2), length (2), then
``length`` bytes of APDU. TCP delivers a byte stream, so :class:`WrapperDecoder` reassembles
frames across arbitrary chunk boundaries without copying the whole buffer on every read.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

from smmc.dlms.errors import DecodeError, EncodeError

__all__ = ["HEADER_LENGTH", "WRAPPER_VERSION", "WrapperDecoder", "WrapperFrame"]

WRAPPER_VERSION: Final = 0x0001
HEADER_LENGTH: Final = 8
_HEADER: Final = struct.Struct(">HHHH")


@dataclass(frozen=True, slots=True)
class WrapperFrame:
    """One wrapper frame: the wPorts (client/server SAPs) and the APDU it carries."""

    version: int = WRAPPER_VERSION
    source_wport: int = 0
    destination_wport: int = 0
    payload: bytes = b""

    def __post_init__(self) -> None:
        for name in ("version", "source_wport", "destination_wport"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= 0xFFFF:
                raise EncodeError(f"wrapper {name} must be 0..65535, got {value!r}")
        if not isinstance(self.payload, bytes):
            raise EncodeError("wrapper payload must be bytes")
        if len(self.payload) > 0xFFFF:
            raise EncodeError(f"wrapper payload of {len(self.payload)} bytes exceeds 65535")

    def to_bytes(self) -> bytes:
        """Header followed by the payload."""
        return (
            _HEADER.pack(self.version, self.source_wport, self.destination_wport, len(self.payload))
            + self.payload
        )

    @classmethod
    def from_bytes(cls, buf: bytes | bytearray | memoryview) -> WrapperFrame:
        """Decode exactly one frame; trailing or missing bytes are a ``DecodeError``."""
        if len(buf) < HEADER_LENGTH:
            raise DecodeError("wrapper frame shorter than its 8-byte header", 0)
        version, src, dst, length = _HEADER.unpack_from(buf, 0)
        if version != WRAPPER_VERSION:
            raise DecodeError(f"unsupported wrapper version {version}", 0)
        if len(buf) != HEADER_LENGTH + length:
            raise DecodeError(
                f"wrapper length field says {length} bytes, {len(buf) - HEADER_LENGTH} present",
                6,
            )
        return cls(version, src, dst, bytes(buf[HEADER_LENGTH:]))


class WrapperDecoder:
    """Sans-IO stream reassembler: ``feed(bytes)`` returns the frames completed so far.

    A bad version or a length above ``max_length`` means the stream is out of sync and
    cannot be trusted again, so the decoder raises ``DecodeError`` and stays failed (every
    later ``feed`` raises too); the caller closes the connection.
    """

    __slots__ = ("_buf", "_error", "_pos", "max_length")

    def __init__(self, max_length: int = 0xFFFF) -> None:
        if not 0 <= max_length <= 0xFFFF:
            raise ValueError("max_length must be 0..65535")
        self.max_length = max_length
        self._buf = bytearray()
        self._pos = 0
        self._error: DecodeError | None = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes | bytearray | memoryview) -> list[WrapperFrame]:
        """Add received bytes; return every frame they complete, in order."""
        if self._error is not None:
            raise self._error
        buf = self._buf
        buf += data
        pos = self._pos
        frames: list[WrapperFrame] = []
        end = len(buf)
        while end - pos >= HEADER_LENGTH:
            version, src, dst, length = _HEADER.unpack_from(buf, pos)
            if version != WRAPPER_VERSION:
                self._error = DecodeError(f"unsupported wrapper version {version}", pos)
                raise self._error
            if length > self.max_length:
                self._error = DecodeError(
                    f"wrapper length {length} exceeds the maximum {self.max_length}", pos + 6
                )
                raise self._error
            stop = pos + HEADER_LENGTH + length
            if stop > end:
                break
            frames.append(WrapperFrame(version, src, dst, bytes(buf[pos + HEADER_LENGTH : stop])))
            pos = stop
        # Compact once consumed bytes dominate, so long sessions stay O(n).
        if pos and pos >= len(buf) // 2:
            del buf[:pos]
            pos = 0
        self._pos = pos
        return frames
