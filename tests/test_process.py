"""The long-running services' heap settings (`smmc.process`)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from smmc.process import YOUNG_COLLECTION_THRESHOLD, settle_heap


@pytest.fixture
def collector_restored() -> Iterator[None]:
    threshold = gc.get_threshold()
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)


@pytest.mark.usefixtures("collector_restored")
def test_settling_freezes_what_exists_and_spaces_young_collections() -> None:
    older = gc.get_threshold()[1:]
    survivor = [object()]
    assert any(o is survivor for o in gc.get_objects())
    settle_heap()
    assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == (YOUNG_COLLECTION_THRESHOLD, *older)
    assert not any(o is survivor for o in gc.get_objects())


@pytest.mark.usefixtures("collector_restored")
def test_cycles_made_after_settling_are_still_collected() -> None:
    settle_heap()

    class Node:
        partner: object

    first, second = Node(), Node()
    first.partner, second.partner = second, first
    del first, second
    assert gc.collect() >= 2
