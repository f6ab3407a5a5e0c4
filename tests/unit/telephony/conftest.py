"""Test set-up for the telephony unit tests."""

from __future__ import annotations

import asyncio

import pytest


def pytest_configure(config: pytest.Config) -> None:
    """Mark the main thread as having no event loop, so nothing creates one implicitly.

    looptime's plugin asks the policy for the current loop even in sync tests; on Python 3.11,
    when no loop was ever set, that call creates one that is never closed, and
    filterwarnings=error turns its ResourceWarning into a session failure. This belongs in
    tests/conftest.py for the whole suite.
    """
    asyncio.set_event_loop(None)
