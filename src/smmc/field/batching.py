"""Coalescing of blocking store calls made by many concurrent sessions.

Dozens of sessions of one worker each need a small store write or read at about the same
moment (the replay guard at a session's end, a counter block at its start). One thread hop
and one transaction per call costs more CPU than the work itself; a `Coalescer` hands every
call made in the same event-loop turn (and those made while the previous batch was in the
store) to one blocking batch function, run in one thread, and gives each caller its own
result or the batch's exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["Coalescer"]

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    """``await coalescer.submit(item)`` → ``run(items)[i]`` for the item's position ``i``;
    ``run`` is blocking (it runs in a thread), takes at most ``max_batch`` items and returns
    one result per item, in order."""

    def __init__(self, run: Callable[[list[T]], Sequence[R]], max_batch: int = 200) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._run = run
        self.max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.batches = 0

    async def submit(self, item: T) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # let the callers of this loop turn join the batch
        while self._pending:
            batch = self._pending[: self.max_batch]
            del self._pending[: self.max_batch]
            self.batches += 1
            try:
                results = await asyncio.to_thread(self._run, [item for item, _ in batch])
                if len(results) != len(batch):
                    raise RuntimeError(f"{len(results)} results for a batch of {len(batch)}")
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)
