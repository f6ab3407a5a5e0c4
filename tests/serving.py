"""Helpers for tests that start `orchestrator serve` as a real process."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest


async def wait_until_serving(http: aiohttp.ClientSession, base: str, *, attempts: int) -> None:
    """Poll `/healthz` every 0.1 s until it answers 200; fail the test after `attempts` polls."""
    for _ in range(attempts):
        try:
            async with http.get(f"{base}/healthz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.1)
    pytest.fail("the service did not start")
