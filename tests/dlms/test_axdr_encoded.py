"""Values served already encoded: ``StructurePacker`` and ``EncodedData`` against the
generic encoder (the same octets, always)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_axdr import data_values

from smmc.dlms.axdr import Data, DataTag, EncodedData, StructurePacker, decode_data, encode_data
from smmc.dlms.errors import DecodeError, EncodeError

NUMBERS = {
    DataTag.INTEGER: (st.integers(-(2**7), 2**7 - 1), Data.integer),
    DataTag.LONG: (st.integers(-(2**15), 2**15 - 1), Data.long),
    DataTag.DOUBLE_LONG: (st.integers(-(2**31), 2**31 - 1), Data.double_long),
    DataTag.LONG64: (st.integers(-(2**63), 2**63 - 1), Data.long64),
    DataTag.UNSIGNED: (st.integers(0, 2**8 - 1), Data.unsigned),
    DataTag.LONG_UNSIGNED: (st.integers(0, 2**16 - 1), Data.long_unsigned),
    DataTag.DOUBLE_LONG_UNSIGNED: (st.integers(0, 2**32 - 1), Data.double_long_unsigned),
    DataTag.LONG64_UNSIGNED: (st.integers(0, 2**64 - 1), Data.long64_unsigned),
    DataTag.ENUM: (st.integers(0, 255), Data.enum),
    DataTag.FLOAT32: (st.floats(width=32, allow_nan=False), Data.float32),
    DataTag.FLOAT64: (st.floats(allow_nan=False), Data.float64),
}
members = st.one_of(
    st.sampled_from(sorted(NUMBERS)).map(lambda tag: (tag, -1)),
    st.tuples(st.just(DataTag.OCTET_STRING), st.sampled_from([0, 1, 12, 127, 128, 300])),
)


@st.composite
def shaped_rows(
    draw: st.DrawFn,
) -> tuple[list[tuple[DataTag, int]], list[list[int | float | bytes]]]:
    """A shape and a few rows of values for it."""
    shape = draw(st.lists(members, min_size=1, max_size=30))
    rows = []
    for _ in range(draw(st.integers(1, 4))):
        row: list[int | float | bytes] = []
        for tag, length in shape:
            if tag is DataTag.OCTET_STRING:
                row.append(draw(st.binary(min_size=length, max_size=length)))
            else:
                row.append(draw(NUMBERS[tag][0]))
        rows.append(row)
    return shape, rows


def _generic(shape: list[tuple[DataTag, int]], row: list[int | float | bytes]) -> Data:
    cells = []
    for (tag, _), value in zip(shape, row, strict=True):
        if isinstance(value, bytes):
            cells.append(Data.octet_string(value))
        else:
            cells.append(NUMBERS[tag][1](value))  # type: ignore[arg-type]
    return Data.structure(cells)


@given(shaped_rows())
def test_packed_structures_are_the_generic_encoding(
    case: tuple[list[tuple[DataTag, int]], list[list[int | float | bytes]]],
) -> None:
    shape, rows = case
    packer = StructurePacker(shape)
    packed = [packer.pack(*row) for row in rows]
    generic = [_generic(shape, row) for row in rows]
    assert packed == [encode_data(d) for d in generic]
    assert encode_data(EncodedData.array_of(packed)) == encode_data(Data.array(generic))
    assert EncodedData.array_of(packed) == Data.array(generic)


@given(data_values)
def test_encoded_data_is_copied_and_equals_its_value(value: Data) -> None:
    raw = encode_data(value)
    encoded = EncodedData(raw)
    assert encoded.tag is value.tag
    assert encode_data(encoded) == raw
    assert encode_data(Data.array([encoded, value])) == encode_data(Data.array([value, value]))
    assert encode_data(Data.structure([Data.null(), encoded])) == encode_data(
        Data.structure([Data.null(), value])
    )
    assert encoded.value == decode_data(raw)[0].value
    assert encoded == decode_data(raw)[0] == encoded
    assert hash(encoded) == hash(decode_data(raw)[0])


@pytest.mark.parametrize(
    ("shape", "values"),
    [
        ([(DataTag.UNSIGNED, -1)], (256,)),
        ([(DataTag.DOUBLE_LONG_UNSIGNED, -1)], (-1,)),
        ([(DataTag.LONG, -1)], (1.5,)),
        ([(DataTag.OCTET_STRING, 12)], (b"short",)),
        ([(DataTag.OCTET_STRING, 2)], ("ab",)),
        ([(DataTag.UNSIGNED, -1), (DataTag.UNSIGNED, -1)], (1,)),
    ],
)
def test_packer_rejects_what_the_encoder_rejects(
    shape: list[tuple[DataTag, int]], values: tuple[object, ...]
) -> None:
    with pytest.raises(EncodeError):
        StructurePacker(shape).pack(*values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "shape",
    [
        [],
        [(DataTag.BOOLEAN, -1)],
        [(DataTag.VISIBLE_STRING, 3)],
        [(DataTag.UNSIGNED, 1)],
        [(DataTag.UNSIGNED, -1)] * 128,
    ],
)
def test_packer_shapes_it_cannot_pack(shape: list[tuple[DataTag, int]]) -> None:
    with pytest.raises(EncodeError):
        StructurePacker(shape)


def test_encoded_data_checks_its_tag_and_its_end() -> None:
    for bad in (b"", b"\x07", b"\xfe\x00"):
        with pytest.raises(EncodeError):
            EncodedData(bad)
    trailing = EncodedData(encode_data(Data.unsigned(5)) + b"\x00")
    with pytest.raises(DecodeError):
        _ = trailing.value
