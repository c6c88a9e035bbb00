import pytest
from hypothesis import given
from hypothesis import strategies as st

from smmc.domain.concentrator_status import (
    LETTERS,
    STATUS_WORD_BITS,
    ConcentratorStatusError,
    decode_status_word,
    encode_status_word,
    format_status_word,
    parse_status_word,
)

# Every letter of the LVM status word named in ID-001.
SEED_LETTERS = "ASTLFUCMIJKYZBOEGR"


def test_every_seed_letter_has_one_distinct_bit_inside_the_word() -> None:
    assert set(LETTERS) == set(SEED_LETTERS)
    bits = [entry.bit for entry in LETTERS.values()]
    assert len(set(bits)) == len(bits)
    assert all(0 <= bit < STATUS_WORD_BITS for bit in bits)


def test_seed_report_values_read_as_a_healthy_concentrator() -> None:
    assert decode_status_word(parse_status_word("00001E")) == {"B", "O", "E", "G"}
    assert decode_status_word(parse_status_word("08001E")) == {"B", "O", "E", "G", "C"}


def test_encode_matches_the_report_format() -> None:
    assert format_status_word(encode_status_word("BOEGC")) == "08001E"
    assert format_status_word(encode_status_word(["b", "o", "e", "g"])) == "00001E"
    assert encode_status_word("") == 0


@pytest.mark.parametrize(("letter", "bit"), [("A", 0), ("I", 10), ("J", 11), ("K", 12), ("C", 19)])
def test_documented_positions(letter: str, bit: int) -> None:
    assert encode_status_word(letter) == 1 << bit


def test_unknown_letter_is_refused() -> None:
    with pytest.raises(ConcentratorStatusError, match="'X'"):
        encode_status_word("BX")


@pytest.mark.parametrize("word", [1 << 17, 1 << 23, 1 << 24, -1])
def test_reserved_or_oversized_words_are_refused(word: int) -> None:
    with pytest.raises(ConcentratorStatusError):
        decode_status_word(word)


@pytest.mark.parametrize("text", ["", "0x1E", "1000000", "GG", "08 001E"])
def test_malformed_hex_is_refused(text: str) -> None:
    with pytest.raises(ConcentratorStatusError):
        parse_status_word(text)


@given(st.sets(st.sampled_from(SEED_LETTERS)))
def test_letters_round_trip_through_the_hex_word(letters: set[str]) -> None:
    word = encode_status_word(letters)
    text = format_status_word(word)
    assert len(text) == 6
    assert decode_status_word(parse_status_word(text)) == letters


@given(st.text(max_size=10))
def test_parse_raises_only_the_typed_error(text: str) -> None:
    try:
        word = parse_status_word(text)
    except ConcentratorStatusError:
        return
    assert format_status_word(word) == f"{int(text.strip(), 16):06X}"
