"""A served offline brain on the grammar recogniser (ORCHESTRATOR_ASR=grammar) builds its decoders while the
service starts, not when callers speak."""

import asyncio

from aiohttp import web
from aiohttp.pytest_plugin import AiohttpClient

from orchestrator.app import add_routes
from orchestrator.brain_choice import make_brain_factory
from orchestrator.brains.cascade import OfflineBrains
from orchestrator.flow import load_flow
from orchestrator.settings import Settings
from tests.flows import ORDER_STATUS


async def _decoders_once_settled(brains: OfflineBrains, expected: int) -> int:
    for _ in range(600):  # each decoder is a process loading its models: seconds on a busy machine
        if brains.decoders >= expected:
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.3)  # and no more than asked for come after
    return brains.decoders


async def test_served_offline_brain_builds_its_decoders_before_the_first_call(
    aiohttp_client: AiohttpClient,
) -> None:
    """With ORCHESTRATOR_ASR_DECODERS_AT_START=2 the pool holds two decoders with no call placed."""
    settings = Settings(orders="demo", asr="grammar", asr_decoders_at_start=2)
    brains = make_brain_factory(settings, load_flow(ORDER_STATUS))
    assert isinstance(brains, OfflineBrains)
    app = web.Application()
    add_routes(app, settings=settings, brain_factory=brains)
    client = await aiohttp_client(app)
    assert (await client.get("/healthz")).status == 200  # answering while the decoders load
    assert await _decoders_once_settled(brains, 2) == 2


async def test_no_decoders_are_built_ahead_when_none_are_asked_for(aiohttp_client: AiohttpClient) -> None:
    """ORCHESTRATOR_ASR_DECODERS_AT_START=0 leaves the first caller's speech to build one."""
    settings = Settings(orders="demo", asr="grammar", asr_decoders_at_start=0)
    brains = make_brain_factory(settings, load_flow(ORDER_STATUS))
    assert isinstance(brains, OfflineBrains)
    app = web.Application()
    add_routes(app, settings=settings, brain_factory=brains)
    await aiohttp_client(app)
    await asyncio.sleep(0.5)
    assert brains.decoders == 0
