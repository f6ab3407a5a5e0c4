"""A PostgreSQL schema of its own for each test: the call store's tables there, dropped afterwards.

The server is ORCHESTRATOR_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test: trust
auth, as on the project's machines); `.ci/run` starts a throwaway one when nothing answers there. Each
test gets `?search_path=<its schema>` on that URL, so parallel runs and other tests never meet.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator

import asyncpg  # type: ignore[import-untyped]

__all__ = ["POSTGRES_URL", "postgres_schema"]

POSTGRES_URL = os.environ.get(
    "ORCHESTRATOR_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@contextlib.asynccontextmanager
async def postgres_schema() -> AsyncIterator[str]:
    """A fresh schema on the test server; yields the URL that puts the call store in it."""
    schema = f"test_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        joiner = "&" if "?" in POSTGRES_URL else "?"
        yield f"{POSTGRES_URL}{joiner}search_path={schema}"
    finally:
        await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()
