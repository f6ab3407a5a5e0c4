"""One checked connection to the Redis that several workers share (`ORCHESTRATOR_REDIS_URL`).

Checked at start-up, so a wrong URL is a ConfigError then, not a failure on the first call; the password
never appears in the message.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as redis
from redis.exceptions import RedisError

from orchestrator.errors import ConfigError

__all__ = ["REDIS_ERRORS", "connected_redis", "without_password"]

# What a Redis call may raise when the server is away or slow (a deadline is the caller's own timeout).
REDIS_ERRORS = (RedisError, OSError, TimeoutError)


@contextlib.asynccontextmanager
async def connected_redis(url: str, *, timeout_s: float = 5.0) -> AsyncIterator[redis.Redis]:
    """Connect to `url`, check it answers PING within `timeout_s`, close every connection on exit."""
    client = redis.Redis.from_url(url)
    try:
        async with asyncio.timeout(timeout_s):
            await client.ping()
    except REDIS_ERRORS as exc:
        await client.aclose()
        raise ConfigError(f"Redis at {without_password(url)} does not answer: {exc!r}") from exc
    try:
        yield client
    finally:
        await client.aclose()


def without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
