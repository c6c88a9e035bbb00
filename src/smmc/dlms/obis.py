"""OBIS codes (IEC 62056-6-1): the six-value logical names of COSEM objects."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final

from smmc.dlms.errors import DecodeError, EncodeError

__all__ = ["Obis"]

# Accepts "1.0.1.8.0.255", "1-0:1.8.0*255", "1-0:1.8.0.255", "1-0:1.8.0" (F defaults to 255)
# and twelve hex digits "0100010800FF".
_SEPARATED: Final = re.compile(
    r"^\s*(\d{1,3})[.\-](\d{1,3})[.:](\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:[.*&](\d{1,3}))?\s*$",
    re.ASCII,
)
_HEX: Final = re.compile(r"^\s*([0-9A-Fa-f]{12})\s*$", re.ASCII)


@dataclass(frozen=True, slots=True, order=True)
class Obis:
    """An OBIS code A.B.C.D.E.F, each group 0..255."""

    a: int
    b: int
    c: int
    d: int
    e: int
    f: int = 255
    # OBIS codes key every object table: the hash is computed once, not per lookup.
    _hash: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        groups = (self.a, self.b, self.c, self.d, self.e, self.f)
        for name, value in zip("ABCDEF", groups, strict=True):
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 255:
                raise EncodeError(f"OBIS group {name} must be 0..255, got {value!r}")
        object.__setattr__(self, "_hash", hash(groups))

    def __hash__(self) -> int:
        return self._hash

    @classmethod
    def parse(cls, text: str) -> Obis:
        """Parse the dotted, the IEC ``A-B:C.D.E*F`` or the 12-hex-digit form."""
        if not isinstance(text, str):
            raise DecodeError(f"an OBIS code must be text, got {type(text).__name__}")
        m = _SEPARATED.match(text)
        if m is not None:
            groups = [int(g) for g in m.groups() if g is not None]
            if any(g > 255 for g in groups):
                raise DecodeError(f"OBIS group out of range in {text!r}")
            return cls(*groups)
        h = _HEX.match(text)
        if h is not None:
            return cls(*bytes.fromhex(h.group(1)))
        raise DecodeError(f"not an OBIS code: {text!r}")

    def to_bytes(self) -> bytes:
        """The 6-octet logical name."""
        return bytes((self.a, self.b, self.c, self.d, self.e, self.f))

    @classmethod
    def from_bytes(cls, buf: bytes | bytearray | memoryview, offset: int = 0) -> Obis:
        """Decode the 6 octets at ``offset``."""
        if offset < 0 or len(buf) - offset < 6:
            raise DecodeError("OBIS code needs 6 octets", offset)
        a, b, c, d, e, f = bytes(buf[offset : offset + 6])
        return cls(a, b, c, d, e, f)

    def __str__(self) -> str:
        return f"{self.a}.{self.b}.{self.c}.{self.d}.{self.e}.{self.f}"

    def to_iec(self) -> str:
        """The IEC 62056-6-1 display form ``A-B:C.D.E*F``."""
        return f"{self.a}-{self.b}:{self.c}.{self.d}.{self.e}*{self.f}"
