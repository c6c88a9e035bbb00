"""OBIS codes: parsing of the usual spellings, formatting and the 6-byte form."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smmc.dlms.errors import DecodeError, EncodeError
from smmc.dlms.obis import Obis


@pytest.mark.parametrize(
    "text",
    [
        "1.0.1.8.0.255",
        "1-0:1.8.0*255",
        "1-0:1.8.0.255",
        "1-0:1.8.0",
        " 1.0.1.8.0.255 ",
        "0100010800FF",
    ],
)
def test_parse_forms(text: str) -> None:
    assert Obis.parse(text) == Obis(1, 0, 1, 8, 0, 255)


def test_format_and_bytes() -> None:
    clock = Obis.parse("0.0.1.0.0.255")
    assert str(clock) == "0.0.1.0.0.255"
    assert clock.to_iec() == "0-0:1.0.0*255"
    assert clock.to_bytes() == bytes.fromhex("0000010000ff")
    assert Obis.from_bytes(bytes.fromhex("aa0000010000ff"), 1) == clock


@pytest.mark.parametrize(
    "text",
    ["", "1.0.1.8", "1.0.1.8.0.256", "a.b.c.d.e.f", "1.0.1.8.0.255.1", "١.0.1.8.0.255", 17, None],
)
def test_parse_errors(text: object) -> None:
    with pytest.raises(DecodeError):
        Obis.parse(text)  # type: ignore[arg-type]


def test_range_and_truncation() -> None:
    with pytest.raises(EncodeError):
        Obis(1, 0, 1, 8, 0, 300)
    with pytest.raises(DecodeError):
        Obis.from_bytes(b"\x01\x00")


def test_hashable_and_ordered() -> None:
    a, b = Obis(1, 0, 1, 8, 0), Obis(1, 0, 2, 8, 0)
    assert len({a, b, Obis.parse("1.0.1.8.0.255")}) == 2
    assert a < b


@given(st.binary(min_size=6, max_size=6))
def test_round_trip(raw: bytes) -> None:
    obis = Obis.from_bytes(raw)
    assert obis.to_bytes() == raw
    assert Obis.parse(str(obis)) == obis
    assert Obis.parse(obis.to_iec()) == obis
