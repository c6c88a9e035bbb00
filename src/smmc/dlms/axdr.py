"""A-XDR encoding of DLMS ``Data`` (IEC 62056-6-2 / Green Book 9.5).

Decoding is the hot path of meter reading (load profiles are arrays of hundreds of
structures), so :func:`decode_data` dispatches on the tag through a 256-entry table, reads
fixed-size values with precompiled :class:`struct.Struct` objects and builds ``Data`` values
without going through the dataclass ``__init__``. It is also bounded: every declared length
or element count is compared with the bytes that remain before anything is allocated, and
nesting is limited to :data:`MAX_DEPTH`, so any byte string yields a value or ``DecodeError``.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final, NamedTuple, TypeAlias

from smmc.dlms.cosem_time import CosemDate, CosemDateTime, CosemTime, datetime_from_wire
from smmc.dlms.errors import DecodeError, EncodeError

__all__ = [
    "MAX_DEPTH",
    "BitString",
    "CompactArray",
    "Data",
    "DataTag",
    "EncodedData",
    "StructurePacker",
    "TypeDescription",
    "decode_data",
    "decode_length",
    "encode_data",
    "encode_length",
]

MAX_DEPTH: Final = 64
"""Deepest nesting of arrays/structures accepted by the decoder and the encoder."""


class DataTag(IntEnum):
    """The CHOICE tags of the DLMS ``Data`` type."""

    NULL_DATA = 0
    ARRAY = 1
    STRUCTURE = 2
    BOOLEAN = 3
    BIT_STRING = 4
    DOUBLE_LONG = 5
    DOUBLE_LONG_UNSIGNED = 6
    OCTET_STRING = 9
    VISIBLE_STRING = 10
    UTF8_STRING = 12
    BCD = 13
    INTEGER = 15
    LONG = 16
    UNSIGNED = 17
    LONG_UNSIGNED = 18
    COMPACT_ARRAY = 19
    LONG64 = 20
    LONG64_UNSIGNED = 21
    ENUM = 22
    FLOAT32 = 23
    FLOAT64 = 24
    DATE_TIME = 25
    DATE = 26
    TIME = 27
    DONT_CARE = 255


# --------------------------------------------------------------------------------------------
# Length (A-XDR / BER definite form)
# --------------------------------------------------------------------------------------------


def encode_length(n: int) -> bytes:
    """Encode a length: one byte below 0x80, else 0x81/0x82/0x84 followed by the value."""
    if n < 0:
        raise EncodeError(f"negative length {n}")
    if n < 0x80:
        return bytes((n,))
    if n <= 0xFF:
        return bytes((0x81, n))
    if n <= 0xFFFF:
        return b"\x82" + n.to_bytes(2, "big")
    if n <= 0xFFFFFFFF:
        return b"\x84" + n.to_bytes(4, "big")
    raise EncodeError(f"length {n} does not fit 32 bits")


def decode_length(buf: bytes | bytearray | memoryview, offset: int) -> tuple[int, int]:
    """Decode a length at ``offset``; return ``(length, new_offset)``.

    The length is *not* compared with what remains; callers do that, since only they know
    the unit (bytes, bits, elements).
    """
    end = len(buf)
    if offset < 0 or offset >= end:
        raise DecodeError("missing length", offset)
    first = buf[offset]
    if first < 0x80:
        return first, offset + 1
    size = first & 0x7F
    if size == 0 or size > 4:
        raise DecodeError(f"unsupported length form 0x{first:02X}", offset)
    if offset + 1 + size > end:
        raise DecodeError("truncated length", offset)
    return int.from_bytes(buf[offset + 1 : offset + 1 + size], "big"), offset + 1 + size


# --------------------------------------------------------------------------------------------
# Value types
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BitString:
    """A bit string: ``length`` bits, most significant bit of ``data[0]`` first."""

    data: bytes
    length: int

    def __post_init__(self) -> None:
        if self.length < 0 or len(self.data) != (self.length + 7) // 8:
            raise EncodeError(
                f"bit string of {self.length} bits needs {(self.length + 7) // 8} octets, "
                f"got {len(self.data)}"
            )

    @classmethod
    def from_bits(cls, bits: str | Iterable[bool | int]) -> BitString:
        """Build from ``"1011"`` or an iterable of booleans."""
        flags = [c == "1" if isinstance(c, str) else bool(c) for c in bits]
        out = bytearray((len(flags) + 7) // 8)
        for i, bit in enumerate(flags):
            if bit:
                out[i >> 3] |= 0x80 >> (i & 7)
        return cls(bytes(out), len(flags))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> bool:
        if index < 0:
            index += self.length
        if not 0 <= index < self.length:
            raise IndexError("bit index out of range")
        return bool(self.data[index >> 3] & (0x80 >> (index & 7)))

    def __str__(self) -> str:
        return "".join("1" if self[i] else "0" for i in range(self.length))


@dataclass(frozen=True, slots=True)
class TypeDescription:
    """The type of the elements of a compact array.

    ``children`` holds the member types of a structure, or the single element type of an
    array (whose element count is ``count``).
    """

    tag: DataTag
    children: tuple[TypeDescription, ...] = ()
    count: int = 0


@dataclass(frozen=True, slots=True)
class CompactArray:
    """A compact array: one type description and elements encoded without tags."""

    description: TypeDescription
    values: tuple[Data, ...]


Value: TypeAlias = (
    bool
    | int
    | float
    | bytes
    | str
    | BitString
    | tuple["Data", ...]
    | CompactArray
    | CosemDateTime
    | CosemDate
    | CosemTime
    | None
)

_INT_RANGES: Final[dict[DataTag, tuple[int, int]]] = {
    DataTag.INTEGER: (-0x80, 0x7F),
    DataTag.LONG: (-0x8000, 0x7FFF),
    DataTag.DOUBLE_LONG: (-0x8000_0000, 0x7FFF_FFFF),
    DataTag.LONG64: (-0x8000_0000_0000_0000, 0x7FFF_FFFF_FFFF_FFFF),
    DataTag.UNSIGNED: (0, 0xFF),
    DataTag.LONG_UNSIGNED: (0, 0xFFFF),
    DataTag.DOUBLE_LONG_UNSIGNED: (0, 0xFFFF_FFFF),
    DataTag.LONG64_UNSIGNED: (0, 0xFFFF_FFFF_FFFF_FFFF),
    DataTag.ENUM: (0, 0xFF),
    DataTag.BCD: (0, 99),
}


@dataclass(frozen=True, slots=True)
class Data:
    """One DLMS ``Data`` value: a tag and a Python value of the matching type."""

    tag: DataTag
    value: Value

    # -- constructors (validate eagerly so mistakes surface where they are made) --------

    @staticmethod
    def _int(tag: DataTag, i: int) -> Data:
        lo, hi = _INT_RANGES[tag]
        if not isinstance(i, int) or isinstance(i, bool) or not lo <= i <= hi:
            raise EncodeError(f"{tag.name.lower()} must be an integer {lo}..{hi}, got {i!r}")
        return Data(tag, i)

    @staticmethod
    def null() -> Data:
        """null-data."""
        return _NULL

    @staticmethod
    def dont_care() -> Data:
        """dont-care."""
        return _DONT_CARE

    @staticmethod
    def boolean(b: bool) -> Data:
        """boolean."""
        return Data(DataTag.BOOLEAN, bool(b))

    @staticmethod
    def integer(i: int) -> Data:
        """integer (int8)."""
        return Data._int(DataTag.INTEGER, i)

    @staticmethod
    def long(i: int) -> Data:
        """long (int16)."""
        return Data._int(DataTag.LONG, i)

    @staticmethod
    def unsigned(i: int) -> Data:
        """unsigned (uint8)."""
        return Data._int(DataTag.UNSIGNED, i)

    @staticmethod
    def long_unsigned(i: int) -> Data:
        """long-unsigned (uint16)."""
        return Data._int(DataTag.LONG_UNSIGNED, i)

    @staticmethod
    def double_long(i: int) -> Data:
        """double-long (int32)."""
        return Data._int(DataTag.DOUBLE_LONG, i)

    @staticmethod
    def double_long_unsigned(i: int) -> Data:
        """double-long-unsigned (uint32)."""
        return Data._int(DataTag.DOUBLE_LONG_UNSIGNED, i)

    @staticmethod
    def long64(i: int) -> Data:
        """long64 (int64)."""
        return Data._int(DataTag.LONG64, i)

    @staticmethod
    def long64_unsigned(i: int) -> Data:
        """long64-unsigned (uint64)."""
        return Data._int(DataTag.LONG64_UNSIGNED, i)

    @staticmethod
    def enum(i: int) -> Data:
        """enum (uint8)."""
        return Data._int(DataTag.ENUM, i)

    @staticmethod
    def bcd(i: int) -> Data:
        """bcd: two decimal digits packed in one octet (0..99)."""
        return Data._int(DataTag.BCD, i)

    @staticmethod
    def float32(f: float) -> Data:
        """float32 (IEEE 754 single, big-endian)."""
        return Data(DataTag.FLOAT32, float(f))

    @staticmethod
    def float64(f: float) -> Data:
        """float64 (IEEE 754 double, big-endian)."""
        return Data(DataTag.FLOAT64, float(f))

    @staticmethod
    def octet_string(b: bytes | bytearray | memoryview) -> Data:
        """octet-string."""
        return Data(DataTag.OCTET_STRING, bytes(b))

    @staticmethod
    def visible_string(s: str) -> Data:
        """visible-string (ASCII)."""
        if not isinstance(s, str) or not s.isascii():
            raise EncodeError(f"visible-string must be ASCII text, got {s!r}")
        return Data(DataTag.VISIBLE_STRING, s)

    @staticmethod
    def utf8_string(s: str) -> Data:
        """utf8-string."""
        if not isinstance(s, str):
            raise EncodeError(f"utf8-string must be text, got {s!r}")
        return Data(DataTag.UTF8_STRING, s)

    @staticmethod
    def bit_string(bits: BitString) -> Data:
        """bit-string."""
        if not isinstance(bits, BitString):
            raise EncodeError("bit-string needs a BitString")
        return Data(DataTag.BIT_STRING, bits)

    @staticmethod
    def array(items: Iterable[Data]) -> Data:
        """array (elements should share one type; not enforced)."""
        return Data(DataTag.ARRAY, tuple(items))

    @staticmethod
    def structure(items: Iterable[Data]) -> Data:
        """structure."""
        return Data(DataTag.STRUCTURE, tuple(items))

    @staticmethod
    def compact_array(array: CompactArray) -> Data:
        """compact-array."""
        return Data(DataTag.COMPACT_ARRAY, array)

    @staticmethod
    def date_time(dt: CosemDateTime) -> Data:
        """date-time (12 octets)."""
        return Data(DataTag.DATE_TIME, dt)

    @staticmethod
    def date(d: CosemDate) -> Data:
        """date (5 octets)."""
        return Data(DataTag.DATE, d)

    @staticmethod
    def time(t: CosemTime) -> Data:
        """time (4 octets)."""
        return Data(DataTag.TIME, t)

    # -- conversions ---------------------------------------------------------------------

    def to_python(self) -> Any:
        """The plain Python value: lists for arrays and structures, the rest as stored."""
        value = self.value
        if isinstance(value, tuple):
            return [item.to_python() for item in value]
        if isinstance(value, CompactArray):
            return [item.to_python() for item in value.values]
        return value

    def to_bytes(self) -> bytes:
        """Shorthand for :func:`encode_data`."""
        return encode_data(self)


_NULL: Final = Data(DataTag.NULL_DATA, None)
_DONT_CARE: Final = Data(DataTag.DONT_CARE, None)


class EncodedData(Data):
    """A ``Data`` value given by its A-XDR encoding, which the encoder copies as it is.

    For answers built as bytes (a simulated concentrator's thousands of profile rows, see
    :class:`StructurePacker`): no ``Data`` per cell is made and nothing is encoded twice.
    ``value`` is decoded on use. The octets must be one complete encoding: only the tag is
    checked here; a trailing excess surfaces as ``DecodeError`` when ``value`` is read.
    """

    __slots__ = ("encoded",)
    encoded: bytes

    def __init__(self, encoded: bytes) -> None:
        if not encoded or encoded[0] not in DataTag._value2member_map_:
            raise EncodeError(f"not an A-XDR encoding: {encoded[:8].hex()}")
        object.__setattr__(self, "tag", DataTag(encoded[0]))
        object.__setattr__(self, "encoded", bytes(encoded))

    @classmethod
    def array_of(cls, items: Sequence[bytes]) -> EncodedData:
        """An array of the already encoded ``items``."""
        return cls(b"".join((bytes((DataTag.ARRAY,)), encode_length(len(items)), *items)))

    @property
    def value(self) -> Value:
        decoded, end = decode_data(self.encoded)
        if end != len(self.encoded):
            raise DecodeError(f"{len(self.encoded) - end} octets after the value", end)
        return decoded.value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Data):
            return NotImplemented
        return self.tag is other.tag and self.value == other.value

    def __hash__(self) -> int:
        return hash((self.tag, self.value))

    def __repr__(self) -> str:
        return f"EncodedData({self.encoded.hex()})"


# --------------------------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------------------------

_T_ARRAY: Final = DataTag.ARRAY
_T_STRUCT: Final = DataTag.STRUCTURE
_T_DATETIME: Final = DataTag.DATE_TIME

_FIXED_STRUCTS: Final[dict[DataTag, struct.Struct]] = {
    DataTag.INTEGER: struct.Struct(">b"),
    DataTag.LONG: struct.Struct(">h"),
    DataTag.DOUBLE_LONG: struct.Struct(">i"),
    DataTag.LONG64: struct.Struct(">q"),
    DataTag.UNSIGNED: struct.Struct(">B"),
    DataTag.LONG_UNSIGNED: struct.Struct(">H"),
    DataTag.DOUBLE_LONG_UNSIGNED: struct.Struct(">I"),
    DataTag.LONG64_UNSIGNED: struct.Struct(">Q"),
    DataTag.ENUM: struct.Struct(">B"),
    DataTag.FLOAT32: struct.Struct(">f"),
    DataTag.FLOAT64: struct.Struct(">d"),
}


# Per tag octet: (pack, min, max) for the integer types, else None (list: IntEnum indexes fast).
_INT_SPECS: list[tuple[Callable[[int], bytes], int, int] | None] = [None] * 256
for _t, (_lo, _hi) in _INT_RANGES.items():
    if _t in _FIXED_STRUCTS:
        _INT_SPECS[_t] = (_FIXED_STRUCTS[_t].pack, _lo, _hi)


def _bcd_byte(value: int) -> int:
    return ((value // 10) << 4) | (value % 10)


def _encode_value(out: bytearray, tag: DataTag, value: Any, depth: int) -> None:
    """Append the tagless encoding of ``value`` (the body after the tag byte)."""
    spec = _INT_SPECS[tag]
    if spec is not None:  # hot path: integers of every width
        pack, lo, hi = spec
        if value.__class__ is int and lo <= value <= hi:
            out += pack(value)
            return
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise EncodeError(f"{tag.name.lower()} must be an integer {lo}..{hi}, got {value!r}")
        out += pack(int(value))
        return
    if tag is _T_STRUCT or tag is _T_ARRAY:
        if not isinstance(value, tuple):
            raise EncodeError(f"{tag.name.lower()} needs a tuple of Data, got {type(value)}")
        if depth >= MAX_DEPTH:
            raise EncodeError(f"nesting deeper than {MAX_DEPTH}")
        n = len(value)
        if n < 0x80:
            out.append(n)
        else:
            out += encode_length(n)
        depth += 1
        for item in value:
            _encode(out, item, depth)
        return
    if tag is _T_DATETIME:
        if not isinstance(value, CosemDateTime):
            raise EncodeError("date-time needs a CosemDateTime")
        out += value.to_bytes()
        return
    if tag is DataTag.FLOAT32 or tag is DataTag.FLOAT64:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise EncodeError(f"{tag.name.lower()} needs a float, got {value!r}")
        try:
            out += _FIXED_STRUCTS[tag].pack(value)
        except (OverflowError, struct.error) as exc:
            raise EncodeError(f"{tag.name.lower()} cannot hold {value!r}: {exc}") from None
        return
    if tag is DataTag.OCTET_STRING:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise EncodeError(f"octet-string needs bytes, got {type(value)}")
        out += encode_length(len(value))
        out += value
        return
    if tag is DataTag.VISIBLE_STRING:
        if not isinstance(value, str) or not value.isascii():
            raise EncodeError(f"visible-string needs ASCII text, got {value!r}")
        raw = value.encode("ascii")
        out += encode_length(len(raw))
        out += raw
        return
    if tag is DataTag.UTF8_STRING:
        if not isinstance(value, str):
            raise EncodeError(f"utf8-string needs text, got {value!r}")
        try:
            raw = value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise EncodeError(f"utf8-string cannot be encoded: {exc}") from None
        out += encode_length(len(raw))
        out += raw
        return
    if tag is DataTag.BOOLEAN:
        if not isinstance(value, bool):
            raise EncodeError(f"boolean needs a bool, got {value!r}")
        out.append(1 if value else 0)
        return
    if tag is DataTag.NULL_DATA or tag is DataTag.DONT_CARE:
        if value is not None:
            raise EncodeError(f"{tag.name.lower()} carries no value, got {value!r}")
        return
    if tag is DataTag.DATE:
        if not isinstance(value, CosemDate):
            raise EncodeError("date needs a CosemDate")
        out += value.to_bytes()
        return
    if tag is DataTag.TIME:
        if not isinstance(value, CosemTime):
            raise EncodeError("time needs a CosemTime")
        out += value.to_bytes()
        return
    if tag is DataTag.BIT_STRING:
        if not isinstance(value, BitString):
            raise EncodeError("bit-string needs a BitString")
        out += encode_length(value.length)
        out += value.data
        return
    if tag is DataTag.BCD:
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 99:
            raise EncodeError(f"bcd must be an integer 0..99, got {value!r}")
        out.append(_bcd_byte(value))
        return
    if tag is DataTag.COMPACT_ARRAY:
        if not isinstance(value, CompactArray):
            raise EncodeError("compact-array needs a CompactArray")
        _encode_compact(out, value, depth)
        return
    raise EncodeError(f"unknown data tag {tag!r}")


def _encode(out: bytearray, d: Data, depth: int) -> None:
    if d.__class__ is not Data:
        if isinstance(d, EncodedData):
            out += d.encoded
            return
        if not isinstance(d, Data):
            raise EncodeError(f"expected Data, got {type(d).__name__}")
    tag = d.tag
    if tag.__class__ is not DataTag:
        try:
            tag = DataTag(tag)
        except ValueError:
            raise EncodeError(f"unknown data tag {tag!r}") from None
    out.append(tag)
    _encode_value(out, tag, d.value, depth)


def encode_data(d: Data) -> bytes:
    """Encode one ``Data`` value (tag + body); ``EncodeError`` on out-of-range values."""
    out = bytearray()
    _encode(out, d, 0)
    return bytes(out)


class StructurePacker:
    """Encodes structures of one shape with a single ``struct.pack``.

    ``members`` gives each member's tag and, for an octet-string, its length (``-1`` for a
    fixed-size number). ``pack(*values)`` returns the octets ``encode_data`` gives for the
    structure of those values, without a ``Data`` per member: for profile rows served by
    the thousand. Range checks are ``struct``'s (an out-of-range number raises
    ``EncodeError``; unlike the ``Data`` constructors it takes a ``bool`` as 0/1).
    """

    __slots__ = ("_args", "_octets", "_pack", "width")

    def __init__(self, members: Sequence[tuple[DataTag, int]]) -> None:
        if not 0 < len(members) < 0x80:
            raise EncodeError(f"a packed structure has 1..127 members, got {len(members)}")
        fmt = [">"]
        args: list[object] = []
        octets: list[tuple[int, int]] = []
        head = bytes((_T_STRUCT, len(members)))
        for index, (tag, length) in enumerate(members):
            if tag is DataTag.OCTET_STRING and length >= 0:
                prefix = head + bytes((tag,)) + encode_length(length)
                value_format = f"{length}s"
                octets.append((index, length))
            elif tag in _FIXED_STRUCTS and length < 0:
                prefix = head + bytes((tag,))
                value_format = _FIXED_STRUCTS[tag].format[1:]
            else:
                raise EncodeError(f"cannot pack a {tag.name.lower()} member of length {length}")
            head = b""
            fmt.append(f"{len(prefix)}s{value_format}")
            args += (prefix, None)
        self._pack = struct.Struct("".join(fmt)).pack
        self._args = args
        self._octets = tuple(octets)
        self.width = len(members)

    def pack(self, *values: int | float | bytes) -> bytes:
        """The encoded structure of ``values``, one per member."""
        if len(values) != self.width:
            raise EncodeError(f"{len(values)} values for a structure of {self.width}")
        for index, length in self._octets:
            value = values[index]
            if not isinstance(value, bytes) or len(value) != length:
                raise EncodeError(f"member {index + 1} must be {length} octets, got {value!r}")
        args = self._args[:]
        args[1::2] = values
        try:
            return self._pack(*args)
        except struct.error as exc:
            raise EncodeError(f"cannot pack {values!r}: {exc}") from None


def _encode_description(out: bytearray, desc: TypeDescription, depth: int) -> None:
    if depth >= MAX_DEPTH:
        raise EncodeError(f"type description deeper than {MAX_DEPTH}")
    tag = desc.tag
    if tag == DataTag.COMPACT_ARRAY:
        raise EncodeError("a compact array cannot contain a compact array")
    out.append(int(tag))
    if tag == DataTag.ARRAY:
        if len(desc.children) != 1 or not 0 <= desc.count <= 0xFFFF:
            raise EncodeError("array type description needs one element type and count 0..65535")
        out += desc.count.to_bytes(2, "big")
        _encode_description(out, desc.children[0], depth + 1)
    elif tag == DataTag.STRUCTURE:
        out += encode_length(len(desc.children))
        for child in desc.children:
            _encode_description(out, child, depth + 1)
    elif desc.children:
        raise EncodeError(f"{DataTag(tag).name.lower()} type description has no children")


def _encode_typed(out: bytearray, desc: TypeDescription, d: Data, depth: int) -> None:
    """Encode ``d`` without tags, as described by ``desc``."""
    if d.tag != desc.tag:
        raise EncodeError(f"compact-array element is {d.tag!r}, description says {desc.tag!r}")
    if depth >= MAX_DEPTH:
        raise EncodeError(f"nesting deeper than {MAX_DEPTH}")
    value = d.value
    if desc.tag == DataTag.ARRAY:
        if not isinstance(value, tuple) or len(value) != desc.count:
            raise EncodeError(f"compact-array element array must have {desc.count} items")
        for item in value:
            _encode_typed(out, desc.children[0], item, depth + 1)
    elif desc.tag == DataTag.STRUCTURE:
        if not isinstance(value, tuple) or len(value) != len(desc.children):
            raise EncodeError(f"compact-array structure must have {len(desc.children)} members")
        for child, item in zip(desc.children, value, strict=True):
            _encode_typed(out, child, item, depth + 1)
    else:
        _encode_value(out, desc.tag, value, depth)


def _encode_compact(out: bytearray, ca: CompactArray, depth: int) -> None:
    _encode_description(out, ca.description, depth + 1)
    body = bytearray()
    for item in ca.values:
        _encode_typed(body, ca.description, item, depth + 1)
    out += encode_length(len(body))
    out += body


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------

_new: Final = object.__new__
_set_tag: Final[Callable[[Data, DataTag], None]] = Data.__dict__["tag"].__set__
_set_value: Final[Callable[[Data, Value], None]] = Data.__dict__["value"].__set__


def _mk(tag: DataTag, value: Value) -> Data:
    """Build a Data without the frozen-dataclass ``__init__`` (about twice as fast)."""
    d: Data = _new(Data)
    _set_tag(d, tag)
    _set_value(d, value)
    return d


# Per tag octet: (size, unpack_from, DataTag) for fixed-size numbers, else None.
_FIXED: list[tuple[int, Callable[[bytes, int], tuple[Any, ...]], DataTag] | None] = [None] * 256
for _tag, _st in _FIXED_STRUCTS.items():
    _FIXED[_tag] = (_st.size, _st.unpack_from, _tag)
_TAGS: Final[tuple[DataTag | None, ...]] = tuple(
    DataTag(i) if i in DataTag._value2member_map_ else None for i in range(256)
)

_T_NULL: Final = DataTag.NULL_DATA
_T_FLOAT32: Final = DataTag.FLOAT32
_T_FLOAT64: Final = DataTag.FLOAT64
_T_BOOL: Final = DataTag.BOOLEAN
_T_OCTET: Final = DataTag.OCTET_STRING
_TRUE: Final = Data(DataTag.BOOLEAN, True)
_FALSE: Final = Data(DataTag.BOOLEAN, False)


def _decode_datetime(buf: bytes, pos: int, end: int) -> CosemDateTime:
    if pos + 12 > end:
        raise DecodeError("truncated date-time", pos)
    return datetime_from_wire(buf, pos)


def _decode_length(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    if pos >= end:
        raise DecodeError("missing length", pos)
    n = buf[pos]
    if n < 0x80:
        return n, pos + 1
    size = n & 0x7F
    if size == 0 or size > 4:
        raise DecodeError(f"unsupported length form 0x{n:02X}", pos)
    if pos + 1 + size > end:
        raise DecodeError("truncated length", pos)
    return int.from_bytes(buf[pos + 1 : pos + 1 + size], "big"), pos + 1 + size


def _decode_other(buf: bytes, pos: int, end: int, tag: DataTag, depth: int) -> tuple[Data, int]:
    """Decode the body of a non-fixed-size value whose tag byte is at ``pos - 1``."""
    if tag is _T_STRUCT or tag is _T_ARRAY:
        return _decode_container(buf, pos, end, tag, depth)
    if tag is _T_OCTET:
        n, pos = _decode_length(buf, pos, end)
        if n > end - pos:
            raise DecodeError(f"octet-string of {n} octets overruns the buffer", pos)
        return _mk(tag, buf[pos : pos + n]), pos + n
    if tag is DataTag.VISIBLE_STRING or tag is DataTag.UTF8_STRING:
        n, pos = _decode_length(buf, pos, end)
        if n > end - pos:
            raise DecodeError(f"string of {n} octets overruns the buffer", pos)
        try:
            text = buf[pos : pos + n].decode("ascii" if tag is DataTag.VISIBLE_STRING else "utf-8")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"bad {tag.name.lower()}: {exc.reason}", pos) from None
        return _mk(tag, text), pos + n
    if tag is _T_DATETIME:
        return _mk(tag, _decode_datetime(buf, pos, end)), pos + 12
    if tag is _T_BOOL:
        if pos >= end:
            raise DecodeError("truncated boolean", pos)
        return (_TRUE if buf[pos] else _FALSE), pos + 1
    if tag is _T_NULL:
        return _NULL, pos
    if tag is DataTag.DONT_CARE:
        return _DONT_CARE, pos
    if tag is DataTag.DATE:
        if pos + 5 > end:
            raise DecodeError("truncated date", pos)
        return _mk(tag, CosemDate.from_bytes(buf, pos)), pos + 5
    if tag is DataTag.TIME:
        if pos + 4 > end:
            raise DecodeError("truncated time", pos)
        return _mk(tag, CosemTime.from_bytes(buf, pos)), pos + 4
    if tag is DataTag.BIT_STRING:
        bits, pos = _decode_length(buf, pos, end)
        nbytes = (bits + 7) >> 3
        if nbytes > end - pos:
            raise DecodeError(f"bit-string of {bits} bits overruns the buffer", pos)
        return _mk(tag, BitString(buf[pos : pos + nbytes], bits)), pos + nbytes
    if tag is DataTag.BCD:
        if pos >= end:
            raise DecodeError("truncated bcd", pos)
        b = buf[pos]
        hi, lo = b >> 4, b & 0x0F
        if hi > 9 or lo > 9:
            raise DecodeError(f"invalid bcd octet 0x{b:02X}", pos)
        return _mk(tag, hi * 10 + lo), pos + 1
    if tag is DataTag.COMPACT_ARRAY:
        return _decode_compact(buf, pos, end, depth)
    raise DecodeError(f"unexpected data tag {tag!r}", pos - 1)  # pragma: no cover


class _RowPlan(NamedTuple):
    """How to read one structure of fixed-size members in a single ``unpack_from``.

    The format alternates prefix fields (the tag octets, and the length octet of an
    octet-string) with value fields, so ``fields[0::2]`` must equal ``prefixes`` and
    ``fields[1::2]`` are the member values, whose tags are ``tags``.
    """

    size: int
    unpack: Callable[[bytes, int], tuple[Any, ...]]
    prefixes: tuple[int | bytes, ...]
    tags: tuple[DataTag, ...]


_PREFIX_FORMATS: Final = {1: "B", 2: "H", 4: "I", 8: "Q"}


@functools.lru_cache(maxsize=256)
def _row_plan(members: tuple[tuple[DataTag, int], ...]) -> _RowPlan:
    """The plan of a structure whose members are ``(tag, octet-string length or -1)``."""
    fmt = [">"]
    prefixes: list[int | bytes] = []
    head = bytes((_T_STRUCT, len(members)))
    for tag, length in members:
        if length < 0:
            prefix, value_format = head + bytes((tag,)), _FIXED_STRUCTS[tag].format[1:]
        else:
            prefix, value_format = head + bytes((tag, length)), f"{length}s"
        head = b""
        if len(prefix) in _PREFIX_FORMATS:
            fmt.append(_PREFIX_FORMATS[len(prefix)])
            prefixes.append(int.from_bytes(prefix, "big"))
        else:
            fmt.append(f"{len(prefix)}s")
            prefixes.append(prefix)
        fmt.append(value_format)
    packed = struct.Struct("".join(fmt))
    return _RowPlan(packed.size, packed.unpack_from, tuple(prefixes), tuple(t for t, _ in members))


def _plan_for(row: Data) -> _RowPlan | None:
    """A plan for structures shaped like ``row``, if it holds only numbers and short strings."""
    members = row.value
    if not isinstance(members, tuple) or not 0 < len(members) < 0x80:
        return None
    key: list[tuple[DataTag, int]] = []
    for member in members:
        tag = member.tag
        if _FIXED[tag] is not None:
            key.append((tag, -1))
        elif tag is _T_OCTET and isinstance(member.value, bytes) and len(member.value) < 0x80:
            key.append((tag, len(member.value)))
        else:
            return None
    return _row_plan(tuple(key))


def _decode_rows(buf: bytes, pos: int, end: int, n: int, depth: int, items: list[Data]) -> int:
    """Decode up to ``n`` structures of an array into ``items``; return the new offset.

    Load profiles are arrays of identically shaped structures: the first one is decoded
    generically, and while the following ones have exactly the same tag and length octets
    each is read with one precompiled ``unpack_from``. At the first structure that differs
    it stops, and the caller decodes the rest generically, so results and errors are those
    of the generic decoder.

    The rows of a profile repeat their clocks, serials, status bytes and many values: a
    ``Data`` (immutable) is built once per column and value and shared, the look-up of a
    whole row done by one ``map`` (a float column is not shared: 0.0 equals -0.0).
    """
    first, pos = _decode_container(buf, pos + 1, end, _T_STRUCT, depth)
    items.append(first)
    plan = _plan_for(first)
    if plan is None:
        return pos
    size, unpack, prefixes, tags = plan
    append = items.append
    new = _new
    set_tag = _set_tag
    set_value = _set_value
    struct_tag = _T_STRUCT
    get = dict.get
    shared: list[dict[Any, Data]] = [{} for _ in tags]
    kept = [tag is not _T_FLOAT32 and tag is not _T_FLOAT64 for tag in tags]
    for _ in range(n - 1):
        if pos + size > end:
            break
        fields = unpack(buf, pos)
        if fields[0::2] != prefixes:
            break
        pos += size
        values = fields[1::2]
        members: tuple[Any, ...] = tuple(map(get, shared, values))  # None: not seen yet
        if not all(members):
            built: list[Data] = []
            for d, cells, keep, tag, value in zip(members, shared, kept, tags, values, strict=True):
                if d is None:
                    d = new(Data)
                    set_tag(d, tag)
                    set_value(d, value)
                    if keep:
                        cells[value] = d
                built.append(d)
            members = tuple(built)
        row = new(Data)
        set_tag(row, struct_tag)
        set_value(row, members)
        append(row)
    return pos


def _decode_container(buf: bytes, pos: int, end: int, tag: DataTag, depth: int) -> tuple[Data, int]:
    if depth >= MAX_DEPTH:
        raise DecodeError(f"nesting deeper than {MAX_DEPTH}", pos)
    n, pos = _decode_length(buf, pos, end)
    if n > end - pos:  # every element takes at least its tag octet
        raise DecodeError(f"{tag.name.lower()} of {n} elements overruns the buffer", pos)
    items: list[Data] = []
    if tag is _T_ARRAY and n > 1 and buf[pos] == _T_STRUCT:
        pos = _decode_rows(buf, pos, end, n, depth + 1, items)
    append = items.append
    fixed = _FIXED
    tags = _TAGS
    child_depth = depth + 1
    for _ in range(n - len(items)):
        if pos >= end:
            raise DecodeError("truncated element", pos)
        t = buf[pos]
        fx = fixed[t]
        if fx is not None:
            size, unpack, dtag = fx
            body = pos + 1
            pos = body + size
            if pos > end:
                raise DecodeError(f"truncated {dtag.name.lower()}", body - 1)
            d = _new(Data)
            _set_tag(d, dtag)
            _set_value(d, unpack(buf, body)[0])
            append(d)
            continue
        dt = tags[t]
        if dt is None:
            raise DecodeError(f"unknown data tag {t}", pos)
        d, pos = _decode_other(buf, pos + 1, end, dt, child_depth)
        append(d)
    return _mk(tag, tuple(items)), pos


def _decode_description(buf: bytes, pos: int, end: int, depth: int) -> tuple[TypeDescription, int]:
    if depth >= MAX_DEPTH:
        raise DecodeError(f"type description deeper than {MAX_DEPTH}", pos)
    if pos >= end:
        raise DecodeError("truncated type description", pos)
    t = _TAGS[buf[pos]]
    if t is None or t is DataTag.COMPACT_ARRAY:
        raise DecodeError(f"invalid tag {buf[pos]} in type description", pos)
    pos += 1
    if t is _T_ARRAY:
        if pos + 2 > end:
            raise DecodeError("truncated array type description", pos)
        count = int.from_bytes(buf[pos : pos + 2], "big")
        child, pos = _decode_description(buf, pos + 2, end, depth + 1)
        if count and _min_size(child) == 0:
            # Elements without content would let a few octets expand into billions of values.
            raise DecodeError("compact-array type has an array of empty elements", pos)
        return TypeDescription(t, (child,), count), pos
    if t is _T_STRUCT:
        n, pos = _decode_length(buf, pos, end)
        if n > end - pos:
            raise DecodeError("structure type description overruns the buffer", pos)
        children = []
        for _ in range(n):
            child, pos = _decode_description(buf, pos, end, depth + 1)
            children.append(child)
        return TypeDescription(t, tuple(children)), pos
    return TypeDescription(t), pos


def _decode_typed(
    buf: bytes, pos: int, end: int, desc: TypeDescription, depth: int
) -> tuple[Data, int]:
    if depth >= MAX_DEPTH:
        raise DecodeError(f"nesting deeper than {MAX_DEPTH}", pos)
    tag = desc.tag
    if tag is _T_ARRAY or tag is _T_STRUCT:
        if tag is _T_ARRAY and desc.count * _min_size(desc.children[0]) > end - pos:
            raise DecodeError(f"array of {desc.count} elements overruns the buffer", pos)
        children = desc.children if tag is _T_STRUCT else desc.children * desc.count
        items = []
        for child in children:
            d, pos = _decode_typed(buf, pos, end, child, depth + 1)
            items.append(d)
        return _mk(tag, tuple(items)), pos
    fx = _FIXED[tag]
    if fx is not None:
        size, unpack, _ = fx
        if pos + size > end:
            raise DecodeError(f"truncated {tag.name.lower()}", pos)
        return _mk(tag, unpack(buf, pos)[0]), pos + size
    return _decode_other(buf, pos, end, tag, depth)


_MIN_SIZES: Final[dict[DataTag, int]] = {
    DataTag.NULL_DATA: 0,
    DataTag.DONT_CARE: 0,
    DataTag.BOOLEAN: 1,
    DataTag.BCD: 1,
    DataTag.DATE_TIME: 12,
    DataTag.DATE: 5,
    DataTag.TIME: 4,
    **{t: st.size for t, st in _FIXED_STRUCTS.items()},
}


@functools.lru_cache(maxsize=256)
def _min_size(desc: TypeDescription) -> int:
    """Fewest octets one tagless element of this type can take (strings: their length)."""
    if desc.tag is _T_ARRAY:
        return desc.count * _min_size(desc.children[0])
    if desc.tag is _T_STRUCT:
        return sum(_min_size(c) for c in desc.children)
    return _MIN_SIZES.get(desc.tag, 1)


def _decode_compact(buf: bytes, pos: int, end: int, depth: int) -> tuple[Data, int]:
    desc, pos = _decode_description(buf, pos, end, depth + 1)
    if _min_size(desc) == 0:
        raise DecodeError("compact-array element type carries no content", pos)
    n, pos = _decode_length(buf, pos, end)
    if n > end - pos:
        raise DecodeError(f"compact-array contents of {n} octets overrun the buffer", pos)
    stop = pos + n
    values: list[Data] = []
    while pos < stop:
        d, new = _decode_typed(buf, pos, stop, desc, depth + 1)
        if new == pos:
            raise DecodeError("compact-array element of zero length", pos)
        values.append(d)
        pos = new
    return _mk(DataTag.COMPACT_ARRAY, CompactArray(desc, tuple(values))), pos


def decode_data(buf: bytes | bytearray | memoryview, offset: int = 0) -> tuple[Data, int]:
    """Decode one ``Data`` at ``offset``; return it and the offset just after it.

    Raises ``DecodeError`` (and nothing else) on any malformed or truncated input. A
    ``bytearray``/``memoryview`` is copied to ``bytes`` first, so pass ``bytes`` when
    decoding many values from one large buffer by offset.
    """
    if not isinstance(buf, bytes):
        buf = bytes(buf)
    end = len(buf)
    if offset < 0 or offset >= end:
        raise DecodeError("no data to decode", offset)
    t = buf[offset]
    fx = _FIXED[t]
    try:
        if fx is not None:
            size, unpack, dtag = fx
            if offset + 1 + size > end:
                raise DecodeError(f"truncated {dtag.name.lower()}", offset)
            return _mk(dtag, unpack(buf, offset + 1)[0]), offset + 1 + size
        dt = _TAGS[t]
        if dt is None:
            raise DecodeError(f"unknown data tag {t}", offset)
        return _decode_other(buf, offset + 1, end, dt, 0)
    except RecursionError:  # pragma: no cover - MAX_DEPTH keeps us far from the limit
        raise DecodeError("nesting too deep", offset) from None
