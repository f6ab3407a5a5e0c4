"""`orchestrator test` runs in-process here, and the CLI configures logging process-wide: undo it after each test.

Otherwise structlog keeps writing to the stream pytest captured for that test, closed by the next one.
"""

import logging
from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)
