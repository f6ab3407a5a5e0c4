"""Points every test at the pinned flow; works around a looptime leak that fails tests under filterwarnings=error.

For every test, sync ones included, looptime's `pytest_pyfunc_call` asks the event-loop policy for
its loop; on Python 3.11 with no loop set, that call creates one and nobody closes it. When a later
async test installs its own loop, the stray one is garbage-collected and raises ResourceWarning
("unclosed event loop"). After each sync test we close whatever loop the policy holds and unset it.
It lives at the root so that every test directory gets it.

Every `Settings()` made in a test (and every command a test runs) reads its default flow from
ORCHESTRATOR_FLOW: the pinned copy in tests/flows/, so editing the shipped flow breaks no engine test.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import warnings
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.flows import ORDER_STATUS
from tests.postgres import postgres_schema

os.environ["ORCHESTRATOR_FLOW"] = str(ORDER_STATUS)
# The service refuses to start without an orders API unless told to use the demo one; the tests' apps
# answer from the embedded demo backend (tests/wire/test_add_routes_checks.py checks the refusal itself).
os.environ.setdefault("ORCHESTRATOR_ORDERS", "demo")


@pytest.fixture(autouse=True)
def _close_stray_event_loop(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if inspect.iscoroutinefunction(request.function):
        return  # pytest-asyncio owns and closes the loop of async tests
    policy = asyncio.get_event_loop_policy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            loop = policy.get_event_loop()
        except RuntimeError:
            return
    if not loop.is_running():
        loop.close()
        policy.set_event_loop(None)


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A call-store URL in a PostgreSQL schema of this test's own, dropped after it (tests/postgres.py)."""
    async with postgres_schema() as url:
        yield url
