"""The array-of-structures fast path of ``decode_data`` against the generic decoder.

The fast path only serves arrays; a structure of the same rows takes the generic path. So
the same bytes with the outer tag 0x01 (array) and 0x02 (structure) must decode to the
same members, or fail at the same offset.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from smmc.dlms.axdr import Data, DataTag, decode_data, encode_data
from smmc.dlms.errors import DecodeError

MEMBERS = {
    DataTag.INTEGER: st.integers(-(2**7), 2**7 - 1).map(Data.integer),
    DataTag.LONG: st.integers(-(2**15), 2**15 - 1).map(Data.long),
    DataTag.DOUBLE_LONG: st.integers(-(2**31), 2**31 - 1).map(Data.double_long),
    DataTag.LONG64: st.integers(-(2**63), 2**63 - 1).map(Data.long64),
    DataTag.UNSIGNED: st.integers(0, 2**8 - 1).map(Data.unsigned),
    DataTag.LONG_UNSIGNED: st.integers(0, 2**16 - 1).map(Data.long_unsigned),
    DataTag.DOUBLE_LONG_UNSIGNED: st.integers(0, 2**32 - 1).map(Data.double_long_unsigned),
    DataTag.LONG64_UNSIGNED: st.integers(0, 2**64 - 1).map(Data.long64_unsigned),
    DataTag.ENUM: st.integers(0, 255).map(Data.enum),
    DataTag.FLOAT32: st.floats(width=32, allow_nan=False).map(Data.float32),
    DataTag.FLOAT64: st.floats(allow_nan=False).map(Data.float64),
    DataTag.BOOLEAN: st.booleans().map(Data.boolean),
    DataTag.NULL_DATA: st.just(Data.null()),
}
SHAPE_MEMBERS = st.one_of(
    st.sampled_from(sorted(MEMBERS)).map(lambda tag: (tag, 0)),
    st.tuples(st.just(DataTag.OCTET_STRING), st.sampled_from([0, 1, 5, 12, 127, 128])),
)
shapes = st.lists(SHAPE_MEMBERS, min_size=1, max_size=8).map(tuple)


def _member(shape: tuple[DataTag, int]) -> st.SearchStrategy[Data]:
    tag, length = shape
    if tag is DataTag.OCTET_STRING:
        return st.binary(min_size=length, max_size=length).map(Data.octet_string)
    return MEMBERS[tag]


@st.composite
def profiles(draw: st.DrawFn) -> Data:
    """An array of structures from one to three shapes, so rows mostly repeat a shape."""
    palette = draw(st.lists(shapes, min_size=1, max_size=3))
    rows = []
    for _ in range(draw(st.integers(0, 12))):
        shape = draw(st.sampled_from(palette))
        rows.append(Data.structure([draw(_member(m)) for m in shape]))
    return Data.array(rows)


def _outcome(raw: bytes) -> tuple[str, object, object]:
    """The members decoded, as the octets they encode to (a mutated float may be a NaN, not
    equal to itself, and ``==`` takes -0.0 for 0.0)."""
    try:
        value, end = decode_data(raw)
    except DecodeError as exc:
        return "error", exc.offset, None
    assert isinstance(value.value, tuple)
    return "value", end, [encode_data(member) for member in value.value]


def _assert_same_as_generic(raw: bytes) -> None:
    if not raw or raw[0] != DataTag.ARRAY:
        return
    assert _outcome(raw) == _outcome(bytes((DataTag.STRUCTURE,)) + raw[1:])


@given(profiles())
def test_round_trip(value: Data) -> None:
    raw = encode_data(value)
    assert decode_data(raw) == (value, len(raw))


@settings(max_examples=300)
@given(profiles(), st.data())
def test_truncations_fail_where_the_generic_decoder_fails(value: Data, data: st.DataObject) -> None:
    raw = encode_data(value)
    cut = data.draw(st.integers(1, len(raw) - 1)) if len(raw) > 1 else 1
    if cut < len(raw):
        with pytest.raises(DecodeError):
            decode_data(raw[:cut])
    _assert_same_as_generic(raw[:cut])


@settings(max_examples=500)
@given(profiles(), st.data())
def test_mutations_decode_like_the_generic_decoder(value: Data, data: st.DataObject) -> None:
    raw = bytearray(encode_data(value))
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(1, len(raw) - 1)) if len(raw) > 1 else 0] = data.draw(
            st.integers(0, 255)
        )
    _assert_same_as_generic(bytes(raw))


@st.composite
def repeating_profiles(draw: st.DrawFn) -> Data:
    """Rows of one shape whose columns take one to three values (±0.0 among the floats), as
    a load profile repeats its clocks, serials and values: the decoder shares those cells."""
    shape = draw(shapes)
    choices = [
        draw(st.lists(_member(m), min_size=1, max_size=3))
        + ([Data(m[0], 0.0), Data(m[0], -0.0)] if m[0] in FLOATS else [])
        for m in shape
    ]
    rows = [
        Data.structure([draw(st.sampled_from(column)) for column in choices])
        for _ in range(draw(st.integers(2, 30)))
    ]
    return Data.array(rows)


FLOATS = {DataTag.FLOAT32, DataTag.FLOAT64}


@settings(max_examples=300)
@given(st.one_of(profiles(), repeating_profiles()))
def test_decoded_rows_encode_to_the_same_octets(value: Data) -> None:
    """Byte for byte (``==`` would take -0.0 for 0.0): shared cells are the cells sent."""
    raw = encode_data(value)
    decoded, end = decode_data(raw)
    assert end == len(raw)
    assert encode_data(decoded) == raw


def test_rows_after_a_differently_encoded_row() -> None:
    """A long-form length in a later row (legal, not canonical) ends the fast run cleanly."""
    row = bytes.fromhex("0202 0903 414243 1107")
    odd = bytes.fromhex("0202 098103 444546 1108")
    raw = bytes.fromhex("0104") + row + row + odd + row
    value, end = decode_data(raw)
    assert end == len(raw)
    expected = [(b"ABC", 7), (b"ABC", 7), (b"DEF", 8), (b"ABC", 7)]
    assert value.to_python() == [list(r) for r in expected]
    assert isinstance(value.value, tuple)
    for entry in value.value:
        assert isinstance(entry.value, tuple)
        assert [m.tag for m in entry.value] == [DataTag.OCTET_STRING, DataTag.UNSIGNED]


def test_wrong_tag_in_a_later_row_is_reported_at_its_offset() -> None:
    row = bytes.fromhex("0201 0600000001")
    raw = bytes.fromhex("0103") + row + row + bytes.fromhex("0201 0700000001")
    with pytest.raises(DecodeError) as caught:
        decode_data(raw)
    assert caught.value.offset == 2 + 2 * len(row) + 2


def test_decoded_rows_are_ordinary_frozen_data() -> None:
    raw = encode_data(
        Data.array([Data.structure([Data.unsigned(i), Data.octet_string(b"x")]) for i in range(3)])
    )
    value, _ = decode_data(raw)
    assert isinstance(value.value, tuple)
    last = value.value[2]
    assert last == Data.structure([Data.unsigned(2), Data.octet_string(b"x")])
    assert hash(last) == hash(Data.structure([Data.unsigned(2), Data.octet_string(b"x")]))
    with pytest.raises(AttributeError):
        last.value = ()  # type: ignore[misc]
