"""IEC 62056-47 wrapper frames and stream reassembly."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smmc.dlms.errors import DecodeError, EncodeError
from smmc.dlms.framing.wrapper import WrapperDecoder, WrapperFrame

h = bytes.fromhex


def test_known_frame() -> None:
    # client SAP 16 → public server 1, a GET request
    apdu = h("C001C100080000010000FF0200")
    frame = WrapperFrame(source_wport=16, destination_wport=1, payload=apdu)
    raw = frame.to_bytes()
    assert raw == h("0001 0010 0001 000D".replace(" ", "")) + apdu
    assert WrapperFrame.from_bytes(raw) == frame
    assert WrapperFrame(1, 16, 1, apdu) == frame  # positional: version first


@pytest.mark.parametrize(
    "raw",
    ["0001001000", "0002001000010000", "00010010000100020aa", "000100100001000211"],
)
def test_from_bytes_errors(raw: str) -> None:
    with pytest.raises((DecodeError, ValueError)):
        WrapperFrame.from_bytes(h(raw))


def test_encode_errors() -> None:
    with pytest.raises(EncodeError):
        WrapperFrame(source_wport=70000)
    with pytest.raises(EncodeError):
        WrapperFrame(payload=b"x" * 70000)


def test_decoder_multiple_frames_in_one_chunk() -> None:
    frames = [WrapperFrame(1, 16, 1, bytes([i]) * i) for i in range(5)]
    dec = WrapperDecoder()
    assert dec.feed(b"".join(f.to_bytes() for f in frames)) == frames
    assert dec.buffered == 0


def test_decoder_byte_by_byte() -> None:
    frame = WrapperFrame(1, 1, 16, b"hello")
    dec = WrapperDecoder()
    out: list[WrapperFrame] = []
    for b in frame.to_bytes():
        out += dec.feed(bytes([b]))
    assert out == [frame]


def test_decoder_rejects_bad_version_and_stays_failed() -> None:
    dec = WrapperDecoder()
    with pytest.raises(DecodeError, match="version"):
        dec.feed(h("0002 0010 0001 0000".replace(" ", "")))
    with pytest.raises(DecodeError):
        dec.feed(WrapperFrame(1, 16, 1, b"").to_bytes())


def test_decoder_rejects_oversized_length_before_buffering_it() -> None:
    dec = WrapperDecoder(max_length=100)
    assert dec.feed(WrapperFrame(1, 16, 1, b"x" * 100).to_bytes())
    with pytest.raises(DecodeError, match="exceeds"):
        dec.feed(h("0001 0010 0001 0065".replace(" ", "")))


@given(
    st.lists(
        st.builds(
            WrapperFrame,
            st.just(1),
            st.integers(0, 0xFFFF),
            st.integers(0, 0xFFFF),
            st.binary(max_size=300),
        ),
        max_size=8,
    ),
    st.lists(st.integers(0, 4000), max_size=20),
)
def test_reassembly_across_arbitrary_chunks(frames: list[WrapperFrame], cuts: list[int]) -> None:
    stream = b"".join(f.to_bytes() for f in frames)
    points = sorted({c for c in cuts if c <= len(stream)} | {0, len(stream)})
    dec = WrapperDecoder()
    out: list[WrapperFrame] = []
    for start, stop in itertools.pairwise(points):
        out += dec.feed(stream[start:stop])
    assert out == frames
    assert dec.buffered == 0


@given(st.binary(max_size=200))
def test_garbage_gives_frames_or_decode_error(raw: bytes) -> None:
    dec = WrapperDecoder(max_length=1000)
    try:
        frames = dec.feed(raw)
    except DecodeError:
        return
    assert b"".join(f.to_bytes() for f in frames) == raw[: len(raw) - dec.buffered]
