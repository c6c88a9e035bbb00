"""Bounded byte cursor and integer packers shared by the APDU codecs.

Every APDU decoder walks its buffer through :class:`Reader`, so a truncated or lying input
always ends in :class:`DecodeError` with the offset of the faulty byte, never in
``IndexError`` or a huge allocation.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TypeVar

from smmc.dlms.axdr import Data, decode_data, decode_length, encode_length
from smmc.dlms.errors import DecodeError, EncodeError
from smmc.dlms.obis import Obis

__all__ = ["Buffer", "Reader", "encode_length", "i8", "octet_string", "to_enum", "u8", "u16", "u32"]

E = TypeVar("E", bound=IntEnum)

Buffer = bytes | bytearray | memoryview
"""What every decoder accepts."""


def to_enum(enum: type[E], value: int, offset: int | None) -> E:
    """Convert a wire code to ``enum``, raising DecodeError for codes the standard lacks."""
    try:
        return enum(value)
    except ValueError as exc:
        raise DecodeError(f"unknown {enum.__name__} code {value}", offset) from exc


def _unsigned(value: int, size: int, what: str) -> bytes:
    if not 0 <= value < 1 << (8 * size):
        raise EncodeError(f"{what} {value} is out of range for {size} unsigned byte(s)")
    return value.to_bytes(size, "big")


def u8(value: int, what: str = "unsigned8") -> bytes:
    """Encode an Unsigned8, raising EncodeError when out of range."""
    return _unsigned(value, 1, what)


def u16(value: int, what: str = "unsigned16") -> bytes:
    """Encode an Unsigned16, raising EncodeError when out of range."""
    return _unsigned(value, 2, what)


def u32(value: int, what: str = "unsigned32") -> bytes:
    """Encode an Unsigned32, raising EncodeError when out of range."""
    return _unsigned(value, 4, what)


def i8(value: int, what: str = "integer8") -> bytes:
    """Encode an Integer8 (two's complement), raising EncodeError when out of range."""
    if not -128 <= value <= 127:
        raise EncodeError(f"{what} {value} is out of range for a signed byte")
    return value.to_bytes(1, "big", signed=True)


def octet_string(value: bytes) -> bytes:
    """A-XDR OCTET STRING: length then the bytes."""
    return encode_length(len(value)) + value


class Reader:
    """Cursor over an immutable buffer; every read checks what remains first."""

    __slots__ = ("_buf", "_pos")

    def __init__(self, buf: Buffer, offset: int = 0) -> None:
        self._buf = bytes(buf)
        self._pos = offset

    @property
    def pos(self) -> int:
        """Offset of the next unread byte."""
        return self._pos

    @property
    def remaining(self) -> int:
        """Number of unread bytes."""
        return len(self._buf) - self._pos

    def seek(self, pos: int) -> None:
        """Move to ``pos`` (used after an external decoder returned its new offset)."""
        if not self._pos <= pos <= len(self._buf):
            raise DecodeError("decoder moved outside the buffer", self._pos)
        self._pos = pos

    def take(self, n: int, what: str) -> bytes:
        """Return the next ``n`` bytes or raise DecodeError if fewer remain."""
        start = self._pos
        if n < 0 or n > len(self._buf) - start:  # inline of ``remaining``: a hot path
            raise DecodeError(f"{what}: needs {n} byte(s), {self.remaining} remain", start)
        self._pos = start + n
        return self._buf[start : start + n]

    def u8(self, what: str) -> int:
        """Read an Unsigned8."""
        pos = self._pos
        if pos >= len(self._buf):
            raise DecodeError(f"{what}: needs 1 byte(s), {self.remaining} remain", pos)
        self._pos = pos + 1
        return self._buf[pos]

    def i8(self, what: str) -> int:
        """Read an Integer8."""
        return int.from_bytes(self.take(1, what), "big", signed=True)

    def u16(self, what: str) -> int:
        """Read a big-endian Unsigned16."""
        return int.from_bytes(self.take(2, what), "big")

    def u32(self, what: str) -> int:
        """Read a big-endian Unsigned32."""
        return int.from_bytes(self.take(4, what), "big")

    def peek(self, what: str) -> int:
        """Return the next byte without consuming it."""
        if self.remaining < 1:
            raise DecodeError(f"{what}: buffer ends", self._pos)
        return self._buf[self._pos]

    def enum(self, enum: type[E], what: str) -> E:
        """Read a one-byte ENUMERATED code into ``enum``."""
        offset = self._pos
        return to_enum(enum, self.u8(what), offset)

    def boolean(self, what: str) -> bool:
        """Read an A-XDR BOOLEAN (zero is false, anything else true)."""
        return self.u8(what) != 0

    def optional(self, what: str) -> bool:
        """Read the A-XDR presence flag of an OPTIONAL component (0x00 absent, 0x01 present)."""
        start = self._pos
        flag = self.u8(what)
        if flag > 1:
            raise DecodeError(f"{what}: presence flag must be 0 or 1, got {flag:#04x}", start)
        return flag == 1

    def _quantity(self, what: str) -> tuple[int, int]:
        """Read an A-XDR/BER length or quantity; return it with the offset where it began."""
        start = self._pos
        try:
            n, self._pos = decode_length(self._buf, start)
        except DecodeError as exc:
            raise DecodeError(f"{what}: {exc.reason}", start) from exc
        return n, start

    def length(self, what: str) -> int:
        """Read an A-XDR/BER length and check it against the bytes that remain."""
        buf, start = self._buf, self._pos
        if start < len(buf) and buf[start] < 0x80:  # the short form, inline: a hot path
            n = buf[start]
            self._pos = start + 1
        else:
            n, start = self._quantity(what)
        if n > len(buf) - self._pos:
            raise DecodeError(
                f"{what}: declared length {n} exceeds the {self.remaining} remaining byte(s)",
                start,
            )
        return n

    def octet_string(self, what: str) -> bytes:
        """Read a length-prefixed OCTET STRING."""
        return self.take(self.length(what), what)

    def count(self, what: str, min_item_size: int = 1) -> int:
        """Read a SEQUENCE OF quantity; reject counts the remaining bytes cannot hold."""
        n, start = self._quantity(what)
        if n * min_item_size > self.remaining:
            raise DecodeError(
                f"{what}: {n} item(s) cannot fit in {self.remaining} remaining byte(s)", start
            )
        return n

    def sub(self, n: int, what: str) -> Reader:
        """Consume ``n`` bytes and return a reader bounded to them (offsets stay absolute)."""
        start = self._pos
        self.take(n, what)
        bounded = Reader.__new__(Reader)  # the slice is bytes already: no copy in __init__
        bounded._buf = self._buf[: start + n]
        bounded._pos = start
        return bounded

    def data(self) -> Data:
        """Read one A-XDR ``Data`` value."""
        value, new_pos = decode_data(self._buf, self._pos)
        self.seek(new_pos)
        return value

    def obis(self, what: str) -> Obis:
        """Read a six-byte logical name."""
        return Obis.from_bytes(self.take(6, what))

    def expect_end(self, what: str) -> None:
        """Raise DecodeError when bytes are left after a complete APDU."""
        if self.remaining:
            raise DecodeError(f"{what}: {self.remaining} trailing byte(s)", self._pos)
