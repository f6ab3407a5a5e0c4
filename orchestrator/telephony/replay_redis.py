"""The replay cache on Redis: every worker behind a number shares what the service has already seen.

With several workers (processes or hosts) a webhook, its retry and a replayed copy may land on
different ones. `RedisReplayCache` keeps the `ReplayCache` protocol of `replay.py` on one Redis: a
key is new when `SET key 1 NX PXAT until` sets it, so exactly one worker sees any key first,
atomically. Accepted webhook signatures, answered call ids and event ids all go through it
(`ORCHESTRATOR_REDIS_URL`).

Redis is an outside service, so every call has a deadline. When Redis does not answer in time the
cache fails open — the key counts as new and the error is logged — because refusing every webhook
while Redis is away would drop every call, while a replay inside the signature's few-minute window
is the lesser harm.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

import redis.asyncio as redis
import structlog

from orchestrator.redis_connection import REDIS_ERRORS, connected_redis

__all__ = ["RedisReplayCache", "open_redis_replay"]

log = structlog.get_logger(__name__)

DEFAULT_PREFIX = "orchestrator:seen:"


class RedisReplayCache:
    """Keys remembered on Redis until a Unix time; `first_sighting` is true for one caller only."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        timeout_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._timeout_s = timeout_s
        self._clock = clock

    async def first_sighting(self, key: str, *, until: float) -> bool:
        if until <= self._clock():
            return True  # already stale: nothing to remember, and nothing to compare against
        try:
            async with asyncio.timeout(self._timeout_s):
                created = await self._client.set(
                    self._prefix + key, b"1", nx=True, pxat=round(until * 1000)
                )
        except REDIS_ERRORS as exc:
            log.error("replay_cache_unavailable", error=repr(exc), key_kind=key.split(":", 1)[0])
            return True
        return bool(created)


@contextlib.asynccontextmanager
async def open_redis_replay(
    url: str, *, prefix: str = DEFAULT_PREFIX, timeout_s: float = 5.0
) -> AsyncIterator[RedisReplayCache]:
    """Connect to `url` (checked at start-up: a wrong URL is a ConfigError, not a failure on the
    first call), yield the cache, close the connections on exit."""
    async with connected_redis(url, timeout_s=timeout_s) as client:
        yield RedisReplayCache(client, prefix=prefix)
