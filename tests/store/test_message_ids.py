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
    first = ids.take(1)
    ids._counter = (1 << _TimeOrderedIds._COUNTER_BITS) - 2
    rolled = ids.take(5)
    assert first + rolled == sorted(first + rolled)
    assert uuid.UUID(rolled[-1]).int >> 80 == (uuid.UUID(first[0]).int >> 80) + 1


def test_ids_stay_increasing_where_the_counter_carries_into_its_high_bits() -> None:
    ids = _TimeOrderedIds()
    ids._ms = time.time_ns() // 1_000_000 + 60_000  # a clock ahead: the counter is not reseeded
    ids._counter = (1 << 30) - 2
    crossing = ids.take(4)
    assert crossing == sorted(crossing)
    assert [uuid.UUID(text).int >> 64 & 0xFFF for text in crossing] == [0, 0, 1, 1]
    assert all(uuid.UUID(text).version == 7 for text in crossing)
