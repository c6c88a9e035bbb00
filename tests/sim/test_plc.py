"""The PLC medium: one exchange at a time, in arrival order, freed on errors."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from smmc.sim.plc import LinkBusy, LinkSettings, PlcLink


async def test_exchanges_never_overlap_and_keep_arrival_order() -> None:
    link = PlcLink(LinkSettings(latency_s=0.005, bytes_per_s=1e6))
    answers = await asyncio.gather(
        *(link.exchange(node, bytes([node]), lambda req: [req * 2]) for node in range(6))
    )
    assert answers == [[bytes([n]) * 2] for n in range(6)]
    history = list(link.history)
    assert [e.node_address for e in history] == list(range(6))
    assert all(b.started >= a.finished for a, b in itertools.pairwise(history))
    assert [(e.request_bytes, e.response_bytes) for e in history] == [(1, 2)] * 6


async def test_a_negligible_medium_time_is_not_waited() -> None:
    """Below 0.1 ms an exchange ends in the caller's loop turn (a zero-latency link costs
    no loop turns); the history still records it."""
    link = PlcLink(LinkSettings(latency_s=0.0, bytes_per_s=1e9))
    ran: list[bool] = []
    asyncio.get_running_loop().call_soon(ran.append, True)
    assert await link.exchange(7, b"x", lambda _: [b"yz"]) == [b"yz"]
    assert ran == []
    assert [(e.node_address, e.request_bytes, e.response_bytes) for e in link.history] == [
        (7, 1, 2)
    ]


async def test_a_failing_answer_frees_the_medium() -> None:
    link = PlcLink(LinkSettings(latency_s=0.0, bytes_per_s=1e6, max_wait_s=0.5))

    def fail(_: bytes) -> list[bytes]:
        raise RuntimeError("meter crashed")

    with pytest.raises(RuntimeError):
        await link.exchange(1, b"x", fail)
    assert await link.exchange(2, b"y", lambda _: [b"z"]) == [b"z"]


async def test_waiting_longer_than_max_wait_raises_link_busy() -> None:
    link = PlcLink(LinkSettings(latency_s=0.2, bytes_per_s=1e6, max_wait_s=0.01))
    holder = asyncio.create_task(link.attempt(1, b"x", hops=1))
    await asyncio.sleep(0.01)
    with pytest.raises(LinkBusy):
        await link.exchange(2, b"y", lambda _: [b"z"])
    await holder
    assert [e.node_address for e in link.history] == [1]


@pytest.mark.parametrize(
    "settings",
    [
        {"latency_s": -0.1},
        {"bytes_per_s": 0.0},
        {"max_wait_s": -1.0},
    ],
)
def test_invalid_settings_are_refused(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        LinkSettings(**settings)
