"""Idle TCP connections to concentrators, kept between consecutive sessions.

A concentrator accepts a new association on a connection whose previous one was released
(docs/protocol/concentrator.md), so the head-end need not open and close a TCP connection
per meter operation. The rules that keep this safe:

* a connection is taken from the pool only by a session that holds the concentrator's
  permit (the drivers take it inside `SessionManager.session`), so the DC never carries
  more associations than permits, and a connection carries one association at a time;
* it comes back only after a clean release (`DlmsClient.over` closes it after any error,
  timeout or abort), and at most ``keep`` idle ones per concentrator stay;
* an idle connection is closed after ``idle_timeout`` seconds (keep it below the DC's
  own idle timeout), and one found dead when taken — closed by the DC, reset, or with
  bytes nobody asked for — is closed and replaced by a new one before anything is sent.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from smmc.dlms.client import Link

__all__ = ["LinkPool"]

Endpoint = tuple[str, int]


@dataclass(slots=True)
class _Idle:
    link: Link
    expiry: asyncio.TimerHandle


@dataclass(slots=True)
class LinkPool:
    """Idle links per endpoint, newest last (taken first: least likely to have expired)."""

    idle_timeout: float
    _idle: dict[Endpoint, list[_Idle]] = field(default_factory=dict, init=False)
    opened: int = field(default=0, init=False)  # new connections
    reused: int = field(default=0, init=False)  # idle ones taken again
    replaced: int = field(default=0, init=False)  # idle ones found dead when taken

    async def take(self, endpoint: Endpoint, connect_timeout: float) -> Link:
        """An idle link to ``endpoint`` found alive, else a new one."""
        idle = self._idle.get(endpoint)
        while idle:
            kept = idle.pop()
            kept.expiry.cancel()
            if kept.link.idle:
                self.reused += 1
                return kept.link
            kept.link.close()
            self.replaced += 1
        self.opened += 1
        return await Link.open(*endpoint, connect_timeout)

    def give_back(self, endpoint: Endpoint, link: Link, keep: int) -> None:
        """Keep ``link`` for the next session if it is open and fewer than ``keep`` idle
        links to ``endpoint`` are kept; close it otherwise (whether it is still fit is
        checked when it is taken)."""
        if link.closed or len(self._idle.get(endpoint, ())) >= keep:
            link.close()
            return
        expiry = asyncio.get_running_loop().call_later(
            self.idle_timeout, self._expire, endpoint, link
        )
        self._idle.setdefault(endpoint, []).append(_Idle(link, expiry))

    def _expire(self, endpoint: Endpoint, link: Link) -> None:
        idle = self._idle.get(endpoint, [])
        for position, kept in enumerate(idle):
            if kept.link is link:
                del idle[position]
                break
        if not idle:
            self._idle.pop(endpoint, None)
        link.close()

    def idle_count(self, endpoint: Endpoint) -> int:
        return len(self._idle.get(endpoint, ()))

    def close(self) -> None:
        """Close every idle link (the worker is stopping)."""
        for idle in self._idle.values():
            for kept in idle:
                kept.expiry.cancel()
                kept.link.close()
        self._idle.clear()
