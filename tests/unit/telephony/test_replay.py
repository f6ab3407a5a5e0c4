"""The replay cache: a key is new once, remembered until its time, and the memory stays bounded."""

from __future__ import annotations

from orchestrator.telephony import MemoryReplayCache


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_replay_cache_a_key_is_new_only_once():
    """The first sighting is True, every later one within its time False."""
    cache = MemoryReplayCache(clock=_Clock())
    assert await cache.first_sighting("sig:1", until=1300.0)
    assert not await cache.first_sighting("sig:1", until=1300.0)
    assert await cache.first_sighting("sig:2", until=1300.0)


async def test_replay_cache_forgets_a_key_after_its_time():
    """Past its `until`, a key is forgotten (the signature is stale by then anyway)."""
    clock = _Clock()
    cache = MemoryReplayCache(clock=clock)
    await cache.first_sighting("sig:1", until=1300.0)
    clock.now = 1301.0
    assert len(cache) == 1
    assert await cache.first_sighting("sig:2", until=1600.0)
    assert len(cache) == 1  # sig:1 went when sig:2 came
    assert await cache.first_sighting("sig:1", until=1600.0)


async def test_replay_cache_is_bounded_dropping_the_soonest_to_expire():
    """Past `max_entries`, the key closest to expiry goes first."""
    cache = MemoryReplayCache(max_entries=2, clock=_Clock())
    await cache.first_sighting("late", until=5000.0)
    await cache.first_sighting("soon", until=1100.0)
    await cache.first_sighting("middle", until=3000.0)
    assert len(cache) == 2
    assert not await cache.first_sighting("late", until=5000.0)
    assert await cache.first_sighting("soon", until=1100.0)
