"""Test set-up shared by the orders tests."""

from __future__ import annotations

import asyncio

import pytest


@pytest.fixture(scope="session", autouse=True)
def _no_implicit_event_loop() -> None:
    """Stop looptime 0.9 from creating (and leaking) an event loop for a sync test that runs first.

    Its pytest_pyfunc_call hook calls `policy.get_event_loop()` for every test; before any async
    test has run, that builds a new loop nobody closes, and the ResourceWarning fails the run under
    filterwarnings=error. With the loop explicitly unset, the call raises and looptime steps aside.
    The same fix belongs in tests/conftest.py for the whole suite.
    """
    asyncio.get_event_loop_policy().set_event_loop(None)
