"""Ciphered APDU containers (service-specific glo/ded tags and general-glo-ciphering)."""

from __future__ import annotations

import pytest
from apdu_strategies import protected_contents
from hypothesis import given
from hypothesis import strategies as st

from smmc.dlms.apdu.ciphered import (
    CipheredApdu,
    CipheredTag,
    GeneralDedCiphering,
    GeneralGloCiphering,
)
from smmc.dlms.errors import DecodeError, EncodeError

CONTENT = bytes.fromhex("30 0000002A") + bytes.fromhex("C0010000080000010000FF0200") + bytes(12)


def test_glo_get_request_framing() -> None:
    apdu = CipheredApdu(CipheredTag.GLO_GET_REQUEST, CONTENT)
    encoded = apdu.to_bytes()
    assert encoded == bytes([0xC8, len(CONTENT)]) + CONTENT
    assert apdu.security_control == 0x30
    assert apdu.invocation_counter == 42
    assert CipheredApdu.from_bytes(encoded) == apdu


def test_general_glo_ciphering_framing() -> None:
    apdu = GeneralGloCiphering(b"ABCDEFGH", CONTENT)
    encoded = apdu.to_bytes()
    assert encoded == b"\xdb\x08ABCDEFGH" + bytes([len(CONTENT)]) + CONTENT
    assert GeneralGloCiphering.from_bytes(encoded) == apdu
    with pytest.raises(DecodeError):
        GeneralDedCiphering.from_bytes(encoded)


def test_long_content_uses_long_length_form() -> None:
    content = b"\x30" + bytes(299)
    encoded = CipheredApdu(CipheredTag.GLO_ACTION_RESPONSE, content).to_bytes()
    assert encoded[:4] == bytes.fromhex("CF82012C")


@given(st.sampled_from(CipheredTag), protected_contents)
def test_round_trip(tag: CipheredTag, content: bytes) -> None:
    apdu = CipheredApdu(tag, content)
    assert CipheredApdu.from_bytes(apdu.to_bytes()) == apdu


@given(st.binary(max_size=16), protected_contents, st.booleans())
def test_general_round_trip(title: bytes, content: bytes, dedicated: bool) -> None:
    cls = GeneralDedCiphering if dedicated else GeneralGloCiphering
    apdu = cls(title, content)
    assert cls.from_bytes(apdu.to_bytes()) == apdu


@pytest.mark.parametrize(
    "bad",
    [
        "C8",  # no length
        "C80430000000",  # content shorter than SC + IC
        "C8063000000001",  # declared length beyond the buffer
        "C805300000000100",  # trailing byte
        "C7053000000001",  # not a ciphered tag
        "DB0841424344454647",  # system title truncated
        "DB02414205300000",  # content truncated
    ],
)
def test_malformed_raises(bad: str) -> None:
    decode = GeneralGloCiphering.from_bytes if bad.startswith("DB") else CipheredApdu.from_bytes
    with pytest.raises(DecodeError):
        decode(bytes.fromhex(bad))


def test_short_content_refuses_to_encode() -> None:
    with pytest.raises(EncodeError):
        CipheredApdu(CipheredTag.GLO_GET_RESPONSE, b"\x30\x00").to_bytes()
    with pytest.raises(EncodeError):
        GeneralGloCiphering(b"ABCDEFGH", b"").to_bytes()
