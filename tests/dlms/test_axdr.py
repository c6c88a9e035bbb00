"""A-XDR codec: known encodings, range checks, bounded decoding and property tests."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smmc.dlms.axdr import (
    MAX_DEPTH,
    BitString,
    CompactArray,
    Data,
    DataTag,
    TypeDescription,
    decode_data,
    decode_length,
    encode_data,
    encode_length,
)
from smmc.dlms.cosem_time import ClockStatus, CosemDate, CosemDateTime, CosemTime
from smmc.dlms.errors import DecodeError, EncodeError

h = bytes.fromhex


# --------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------

byte = st.integers(0, 255)
datetimes = st.builds(
    CosemDateTime,
    st.integers(0, 0xFFFF),
    byte,
    byte,
    byte,
    byte,
    byte,
    byte,
    byte,
    st.one_of(st.none(), st.integers(-0x7FFF, 0x7FFF)),
    st.one_of(st.none(), st.integers(0, 254).map(ClockStatus)),
)
dates = st.builds(CosemDate, st.integers(0, 0xFFFF), byte, byte, byte)
times = st.builds(CosemTime, byte, byte, byte, byte)
bitstrings = st.lists(st.booleans(), max_size=80).map(BitString.from_bits)

leaves = st.one_of(
    st.just(Data.null()),
    st.just(Data.dont_care()),
    st.booleans().map(Data.boolean),
    st.integers(-(2**7), 2**7 - 1).map(Data.integer),
    st.integers(-(2**15), 2**15 - 1).map(Data.long),
    st.integers(-(2**31), 2**31 - 1).map(Data.double_long),
    st.integers(-(2**63), 2**63 - 1).map(Data.long64),
    st.integers(0, 2**8 - 1).map(Data.unsigned),
    st.integers(0, 2**16 - 1).map(Data.long_unsigned),
    st.integers(0, 2**32 - 1).map(Data.double_long_unsigned),
    st.integers(0, 2**64 - 1).map(Data.long64_unsigned),
    st.integers(0, 255).map(Data.enum),
    st.integers(0, 99).map(Data.bcd),
    st.floats(width=32, allow_nan=False).map(Data.float32),
    st.floats(allow_nan=False).map(Data.float64),
    st.binary(max_size=300).map(Data.octet_string),
    st.text(st.characters(max_codepoint=127), max_size=40).map(Data.visible_string),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=40).map(Data.utf8_string),
    bitstrings.map(Data.bit_string),
    datetimes.map(Data.date_time),
    dates.map(Data.date),
    times.map(Data.time),
)

data_values = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=8).map(Data.array),
        st.lists(children, max_size=8).map(Data.structure),
    ),
    max_leaves=60,
)


@st.composite
def compact_arrays(draw: st.DrawFn) -> Data:
    """A compact array of structures of fixed-size numbers and octet strings."""
    members = draw(
        st.lists(
            st.sampled_from(
                [
                    DataTag.UNSIGNED,
                    DataTag.LONG,
                    DataTag.DOUBLE_LONG_UNSIGNED,
                    DataTag.OCTET_STRING,
                    DataTag.BOOLEAN,
                    DataTag.DATE_TIME,
                ]
            ),
            min_size=1,
            max_size=5,
        )
    )
    makers = {
        DataTag.UNSIGNED: st.integers(0, 255).map(Data.unsigned),
        DataTag.LONG: st.integers(-(2**15), 2**15 - 1).map(Data.long),
        DataTag.DOUBLE_LONG_UNSIGNED: st.integers(0, 2**32 - 1).map(Data.double_long_unsigned),
        DataTag.OCTET_STRING: st.binary(max_size=10).map(Data.octet_string),
        DataTag.BOOLEAN: st.booleans().map(Data.boolean),
        DataTag.DATE_TIME: datetimes.map(Data.date_time),
    }
    desc = TypeDescription(DataTag.STRUCTURE, tuple(TypeDescription(m) for m in members))
    rows = draw(st.lists(st.tuples(*(makers[m] for m in members)).map(Data.structure), max_size=10))
    return Data.compact_array(CompactArray(desc, tuple(rows)))


# --------------------------------------------------------------------------------------------
# Known encodings
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (Data.null(), "00"),
        (Data.dont_care(), "ff"),
        (Data.boolean(True), "0301"),
        (Data.boolean(False), "0300"),
        (Data.integer(-1), "0fff"),
        (Data.long(-2), "10fffe"),
        (Data.unsigned(200), "11c8"),
        (Data.long_unsigned(0x1234), "121234"),
        (Data.double_long(-(2**31)), "0580000000"),
        (Data.double_long_unsigned(0xDEADBEEF), "06deadbeef"),
        (Data.long64(-1), "14ffffffffffffffff"),
        (Data.long64_unsigned(2**64 - 1), "15ffffffffffffffff"),
        (Data.enum(3), "1603"),
        (Data.bcd(42), "0d42"),
        (Data.float32(1.5), "173fc00000"),
        (Data.float64(-2.0), "18c000000000000000"),
        (Data.octet_string(b"\x00\x00\x01\x00\x00\xff"), "0906000001000 0ff".replace(" ", "")),
        (Data.visible_string("ABC"), "0a03414243"),
        (Data.utf8_string("ñ"), "0c02c3b1"),
        (Data.bit_string(BitString.from_bits("1010000011")), "040aa0c0"),
        (Data.array([Data.unsigned(1), Data.unsigned(2)]), "0102110111 02".replace(" ", "")),
        (Data.structure([]), "0200"),
        (
            Data.date_time(CosemDateTime(2024, 3, 1, 5, 12, 30, 0, 0, 180, ClockStatus.OK)),
            "1907e8030105 0c1e0000 00b400".replace(" ", ""),
        ),
        (Data.date(CosemDate(0xFFFF, 12, 24, 0xFF)), "1affff0c18ff"),
        (Data.time(CosemTime(23, 59, 59, 0xFF)), "1b173b3bff"),
    ],
)
def test_known_encodings(value: Data, encoded: str) -> None:
    raw = h(encoded)
    assert encode_data(value) == raw
    decoded, end = decode_data(raw)
    assert end == len(raw)
    assert decoded == value


def test_long_octet_string_uses_long_length_forms() -> None:
    assert encode_data(Data.octet_string(b"x" * 0x80))[:3] == h("098180")
    assert encode_data(Data.octet_string(b"x" * 0x100))[:4] == h("09820100")


def test_decode_at_offset_and_from_memoryview() -> None:
    buf = h("aabb") + encode_data(Data.long_unsigned(7)) + h("cc")
    value, end = decode_data(memoryview(buf), 2)
    assert value == Data.long_unsigned(7)
    assert end == 5
    value, end = decode_data(bytearray(buf), 2)
    assert value == Data.long_unsigned(7)


def test_to_python() -> None:
    d = Data.structure(
        [Data.unsigned(1), Data.array([Data.boolean(True)]), Data.octet_string(b"\x01")]
    )
    assert d.to_python() == [1, [True], b"\x01"]


def test_compact_array_known_encoding() -> None:
    desc = TypeDescription(
        DataTag.STRUCTURE, (TypeDescription(DataTag.UNSIGNED), TypeDescription(DataTag.LONG))
    )
    rows = (
        Data.structure([Data.unsigned(1), Data.long(-1)]),
        Data.structure([Data.unsigned(2), Data.long(2)]),
    )
    value = Data.compact_array(CompactArray(desc, rows))
    raw = encode_data(value)
    assert raw == h("13 02 02 11 10 06 01 ffff 02 0002".replace(" ", ""))
    assert decode_data(raw) == (value, len(raw))
    assert value.to_python() == [[1, -1], [2, 2]]


def test_compact_array_of_arrays() -> None:
    desc = TypeDescription(DataTag.ARRAY, (TypeDescription(DataTag.UNSIGNED),), 3)
    rows = (Data.array([Data.unsigned(i) for i in range(3)]),)
    value = Data.compact_array(CompactArray(desc, rows))
    raw = encode_data(value)
    assert raw == h("13 01 0003 11 03 000102".replace(" ", ""))
    assert decode_data(raw)[0] == value


# --------------------------------------------------------------------------------------------
# Lengths
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "encoded"),
    [(0, "00"), (0x7F, "7f"), (0x80, "8180"), (0xFF, "81ff"), (0x100, "820100"),
     (0xFFFF, "82ffff"), (0x10000, "8400010000")],
)  # fmt: skip
def test_length_forms(n: int, encoded: str) -> None:
    assert encode_length(n) == h(encoded)
    assert decode_length(h(encoded), 0) == (n, len(h(encoded)))


@pytest.mark.parametrize("raw", ["", "80", "85", "81", "8201", "840000"])
def test_bad_lengths(raw: str) -> None:
    with pytest.raises(DecodeError):
        decode_length(h(raw), 0)


def test_length_encode_errors() -> None:
    with pytest.raises(EncodeError):
        encode_length(-1)
    with pytest.raises(EncodeError):
        encode_length(2**32)


# --------------------------------------------------------------------------------------------
# Range validation
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ctor", "bad"),
    [
        (Data.integer, 128),
        (Data.integer, -129),
        (Data.long, 2**15),
        (Data.unsigned, -1),
        (Data.unsigned, 256),
        (Data.long_unsigned, 2**16),
        (Data.double_long, 2**31),
        (Data.double_long_unsigned, 2**32),
        (Data.long64, 2**63),
        (Data.long64_unsigned, -1),
        (Data.enum, 256),
        (Data.bcd, 100),
        (Data.unsigned, True),
    ],
)
def test_constructors_check_ranges(ctor: object, bad: int) -> None:
    with pytest.raises(EncodeError):
        ctor(bad)  # type: ignore[operator]


@pytest.mark.parametrize(
    "value",
    [
        Data(DataTag.UNSIGNED, 256),
        Data(DataTag.LONG, "1"),
        Data(DataTag.BOOLEAN, 1),
        Data(DataTag.NULL_DATA, 0),
        Data(DataTag.FLOAT32, 1e300),
        Data(DataTag.OCTET_STRING, "text"),
        Data(DataTag.VISIBLE_STRING, "ñ"),
        Data(DataTag.STRUCTURE, [Data.null()]),  # type: ignore[arg-type]
        Data(DataTag.ARRAY, (1, 2)),  # type: ignore[arg-type]
        Data(DataTag.DATE_TIME, b"\x00" * 12),
        Data(DataTag.DATE_TIME, CosemDateTime(2024, 13, 1, hour=300)),
    ],
)
def test_encode_rejects_bad_values(value: Data) -> None:
    with pytest.raises(EncodeError):
        encode_data(value)


def test_visible_string_must_be_ascii() -> None:
    with pytest.raises(EncodeError):
        Data.visible_string("ñ")


def test_encode_depth_limit() -> None:
    d = Data.null()
    for _ in range(MAX_DEPTH + 1):
        d = Data.structure([d])
    with pytest.raises(EncodeError):
        encode_data(d)


# --------------------------------------------------------------------------------------------
# Bounded decoding
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "07",  # unknown tag
        "11",  # truncated unsigned
        "06 0102 03",
        "09 05 0102",  # octet string longer than the buffer
        "09 84 ffffffff",  # huge declared length
        "01 84 ffffffff 00",  # huge declared element count
        "02 03 11 01",  # structure missing elements
        "0a 01 ff",  # non-ASCII visible string
        "0c 02 c3 28",  # invalid UTF-8
        "04 84 ffffffff",  # bit string longer than the buffer
        "0d 4a",  # invalid BCD digit
        "19 07e8 01",  # truncated date-time
        "13 01 ffff 00 00",  # compact array of nulls (no content per element)
        "13 01 ffff 11 02 0102",  # compact array count beyond its contents
        "13 13",  # compact array inside a type description
        "13 02 02 01ffff 00 11 04 01020304",  # array of 65535 nulls per 1-octet element
        "13 02 02 01ffff 01ffff 00 11 02 0102",  # nested: billions of nulls per element
        "13 02 01 11 05 0102",  # contents length beyond the buffer
    ],
)
def test_malformed_input_raises_decode_error(raw: str) -> None:
    with pytest.raises(DecodeError):
        decode_data(h(raw.replace(" ", "")))


def test_nesting_limit() -> None:
    raw = b"\x02\x01" * (MAX_DEPTH + 5) + b"\x00"
    with pytest.raises(DecodeError, match="nesting"):
        decode_data(raw)
    ok = b"\x02\x01" * (MAX_DEPTH - 1) + b"\x00"
    assert decode_data(ok)[1] == len(ok)


def test_deep_nesting_never_hits_recursion_limit() -> None:
    raw = b"\x01\x01" * 100_000 + b"\x00"
    with pytest.raises(DecodeError):
        decode_data(raw)


def test_bad_offset() -> None:
    with pytest.raises(DecodeError):
        decode_data(b"\x00", 5)
    with pytest.raises(DecodeError):
        decode_data(b"\x00", -1)


def test_decode_error_carries_offset() -> None:
    with pytest.raises(DecodeError) as info:
        decode_data(h("0202 1101 07"))
    assert info.value.offset == 4


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(data_values)
def test_round_trip(value: Data) -> None:
    raw = encode_data(value)
    decoded, end = decode_data(raw)
    assert end == len(raw)
    assert decoded == value
    assert encode_data(decoded) == raw


@settings(max_examples=100)
@given(compact_arrays())
def test_compact_array_round_trip(value: Data) -> None:
    raw = encode_data(value)
    assert decode_data(raw) == (value, len(raw))


@settings(max_examples=200)
@given(data_values, st.data())
def test_every_truncation_is_a_decode_error(value: Data, data: st.DataObject) -> None:
    raw = encode_data(value)
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(DecodeError):
        decode_data(raw[:cut])


def _check_garbage(raw: bytes) -> None:
    try:
        value, end = decode_data(raw)
    except DecodeError:
        return
    assert 0 < end <= len(raw)
    again = encode_data(value)  # whatever decodes must re-encode and decode identically
    redecoded, _ = decode_data(again)
    assert encode_data(redecoded) == again


@settings(max_examples=2000)
@given(st.binary(max_size=64))
def test_garbage_yields_value_or_decode_error(raw: bytes) -> None:
    _check_garbage(raw)


@settings(max_examples=1000)
@given(st.sampled_from([b"\x01", b"\x02", b"\x13", b"\x01\x81", b"\x02\x82"]), st.binary())
def test_garbage_after_container_tags(prefix: bytes, rest: bytes) -> None:
    _check_garbage(prefix + rest)


@settings(max_examples=200)
@given(data_values, st.data())
def test_mutated_encodings_never_escape(value: Data, data: st.DataObject) -> None:
    raw = bytearray(encode_data(value))
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(byte)
    _check_garbage(bytes(raw))


def test_float_specials_survive() -> None:
    for v in (math.inf, -math.inf, -0.0):
        assert decode_data(encode_data(Data.float64(v)))[0].value == v
    nan = decode_data(encode_data(Data.float32(math.nan)))[0].value
    assert isinstance(nan, float)
    assert math.isnan(nan)


def test_float32_rounds_like_ieee_single() -> None:
    value = decode_data(encode_data(Data.float32(0.1)))[0].value
    assert value == struct.unpack(">f", struct.pack(">f", 0.1))[0]


def test_profile_like_array() -> None:
    rows = [
        Data.structure(
            [
                Data.date_time(CosemDateTime(2024, 1, 1, 1, i // 4, (i % 4) * 15, 0, 0, 180)),
                Data.unsigned(0),
                Data.double_long_unsigned(i * 100),
                Data.double_long_unsigned(i * 7),
                Data.long_unsigned(i),
                Data.long(-i),
            ]
        )
        for i in range(96)
    ]
    raw = encode_data(Data.array(rows))
    decoded, end = decode_data(raw)
    assert end == len(raw)
    assert decoded == Data.array(rows)
    assert isinstance(decoded.value, tuple)
    assert decoded.value[5].to_python()[2] == 500
