"""Change detection: a rising condition opens, a clearing one closes, repeats change nothing."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from smmc.domain.concentrator_status import LETTERS
from smmc.domain.events import CONCENTRATOR_WORD, METER_WORDS, detect_changes, load_catalog

CATALOG = load_catalog()
WORD = st.integers(0, 0xFFFF)
METER = st.fixed_dictionaries(dict.fromkeys(METER_WORDS, WORD))


def _active(words: dict[str, int] | None) -> set[str]:
    return {
        entry.key
        for entry in CATALOG.bits.values()
        if entry.word in METER_WORDS and entry.active(words)
    }


@given(METER, METER)
def test_changes_are_exactly_the_difference_of_active_sets(
    previous: dict[str, int], current: dict[str, int]
) -> None:
    changes = detect_changes(CATALOG, previous, current)
    opened = {c.entry.key for c in changes if c.opened}
    closed = {c.entry.key for c in changes if not c.opened}
    assert opened == _active(current) - _active(previous)
    assert closed == _active(previous) - _active(current)


@given(METER)
def test_a_repeated_report_is_no_new_event(words: dict[str, int]) -> None:
    assert detect_changes(CATALOG, words, dict(words)) == []


@given(METER)
def test_first_report_opens_every_set_bit(words: dict[str, int]) -> None:
    changes = detect_changes(CATALOG, None, words)
    assert all(c.opened for c in changes)
    expected = sum(bin(value).count("1") for value in words.values())
    assert len(changes) == expected


@given(METER, METER, METER)
def test_replaying_a_sequence_keeps_one_open_event_per_condition(
    first: dict[str, int], second: dict[str, int], third: dict[str, int]
) -> None:
    open_keys: set[str] = set()
    previous: dict[str, int] | None = None
    for words in (first, second, third, second):
        for change in detect_changes(CATALOG, previous, words):
            if change.opened:
                assert change.entry.key not in open_keys
                open_keys.add(change.entry.key)
            else:
                open_keys.remove(change.entry.key)
        previous = words
    assert open_keys == _active(second)


def test_pup_rises_then_clears() -> None:
    opened = detect_changes(CATALOG, {"normal1": 0}, {"normal1": 1})
    assert [(c.entry.acronym, c.opened) for c in opened] == [("PUP", True)]
    closed = detect_changes(CATALOG, {"normal1": 1}, {"normal1": 0})
    assert [(c.entry.acronym, c.opened) for c in closed] == [("PUP", False)]


def test_a_word_not_reported_is_left_alone() -> None:
    assert detect_changes(CATALOG, {"normal1": 1, "extended1": 8}, {"normal1": 1}) == []


def test_healthy_letters_alarm_when_they_clear() -> None:
    healthy = 0x08001E  # B O E G C: the seed's report value
    first = detect_changes(CATALOG, None, {CONCENTRATOR_WORD: healthy})
    assert all(c.opened for c in first)
    assert {c.entry.key for c in first} == {"concentrator.B", "concentrator.G", "concentrator.C"}
    lost_sync = healthy & ~(1 << LETTERS["O"].bit)
    changes = detect_changes(CATALOG, {CONCENTRATOR_WORD: healthy}, {CONCENTRATOR_WORD: lost_sync})
    assert [(c.entry.key, c.opened) for c in changes] == [("concentrator.O", True)]
