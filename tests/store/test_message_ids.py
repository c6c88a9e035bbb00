"""Message ids: RFC 9562 version 7 UUIDs, increasing, so the unique indexes of `events` and
`outbox` grow at their right edge."""

from __future__ import annotations

import time
import uuid

from hypothesis import given
from hypothesis import strategies as st

from smmc.store.events import _TimeOrderedIds, new_ids


@given(st.lists(st.integers(min_value=1, max_value=600), min_size=1, max_size=8))
def test_ids_are_version_7_and_increase_across_calls(counts: list[int]) -> None:
    before = time.time_ns() // 1_000_000
    ids = [found for count in counts for found in new_ids(count)]
    after = time.time_ns() // 1_000_000
    assert len(ids) == sum(counts)
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    for text in ids:
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        assert before <= parsed.int >> 80 <= after + 1


def test_a_full_counter_moves_to_the_next_millisecond_and_keeps_increasing() -> None:
    ids = _TimeOrderedIds()
    ahead = time.time_ns() // 1_000_000 + 60_000  # a clock ahead: no new millisecond starts
    ids._start(ahead)
    ids._counter = (1 << _TimeOrderedIds._COUNTER_BITS) - 2
    rolled = ids.take(5)
    assert rolled == sorted(rolled)
    assert [uuid.UUID(text).int >> 80 for text in rolled] == [ahead + 1] * 5
    assert all(uuid.UUID(text).version == 7 for text in rolled)


def test_separate_generators_draw_different_ids_in_one_millisecond() -> None:
    """Two processes (two workers, a listener) share the tables: the random bits and the
    random counter seed keep their ids apart."""
    now = time.time_ns() // 1_000_000
    first, second = _TimeOrderedIds(), _TimeOrderedIds()
    first._start(now)
    second._start(now)
    assert not set(first.take(1000)) & set(second.take(1000))
