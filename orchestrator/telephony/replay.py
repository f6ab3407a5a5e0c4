"""What the service has already seen, for as long as it matters: accepted signatures and call ids.

A signed webhook verifies again if it is sent again, so each accepted signature is remembered until
it goes stale; a second sighting is a replay. Call ids are remembered too, so a first webhook for an
id the service has already answered never starts a second call. `ReplayCache` is the plug point: the
in-process `MemoryReplayCache` serves one worker; several workers behind one number need a shared
store (Redis, `SET key 1 NX EXAT until`) behind the same two-line protocol.

>>> import asyncio
>>> cache = MemoryReplayCache(clock=lambda: 1000.0)
>>> asyncio.run(cache.first_sighting("sig:ab12", until=1300.0))
True
>>> asyncio.run(cache.first_sighting("sig:ab12", until=1300.0))
False
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["MemoryReplayCache", "ReplayCache"]

DEFAULT_MAX_ENTRIES = 200_000


class ReplayCache(Protocol):
    """Remembers keys until a Unix time; says whether a key is new."""

    async def first_sighting(self, key: str, *, until: float) -> bool:
        """Remember `key` until `until` and return True; False if it is remembered already."""
        ...


class MemoryReplayCache:
    """One process's memory of keys, bounded: past `max_entries`, the soonest to expire go first."""

    def __init__(
        self, *, max_entries: int = DEFAULT_MAX_ENTRIES, clock: Callable[[], float] = time.time
    ) -> None:
        self._until: dict[str, float] = {}
        self._expiries: list[tuple[float, str]] = []  # a heap; stale pairs are skipped when popped
        self._max_entries = max_entries
        self._clock = clock

    def __len__(self) -> int:
        return len(self._until)

    async def first_sighting(self, key: str, *, until: float) -> bool:
        now = self._clock()
        self._forget_expired(now)
        known = self._until.get(key)
        if known is not None and known >= now:
            return False
        self._until[key] = until
        heapq.heappush(self._expiries, (until, key))
        while len(self._until) > self._max_entries:
            self._pop_soonest()
        return True

    def _forget_expired(self, now: float) -> None:
        while self._expiries and self._expiries[0][0] < now:
            self._pop_soonest()

    def _pop_soonest(self) -> None:
        until, key = heapq.heappop(self._expiries)
        if self._until.get(key) == until:
            del self._until[key]
