"""Calls in PostgreSQL, for several hosts writing one store: `ORCHESTRATOR_CALLS_DB=postgresql://...`.

    store = await open_call_store("postgresql://orchestrator@db.internal:5432/calls")

The same `CallStore` as SQLite (orchestrator/call/store.py), over asyncpg: every query is a coroutine on
a small connection pool, so nothing waits on the network inside the event loop. What several workers on
several hosts writing at once need is in the SQL itself:

- the schema is created under a transaction-scoped advisory lock, so workers starting together do not
  race `CREATE TABLE IF NOT EXISTS` into a duplicate-key error on PostgreSQL's own catalogue;
- a save is one `INSERT ... ON CONFLICT (record_id) DO UPDATE ... WHERE calls.revision <= excluded.revision`,
  atomic on the row: the newest revision wins whichever worker's write lands last;
- `mark_interrupted` is one `UPDATE`, so a record is marked once however many workers see it orphaned;
- a heartbeat is an upsert of the owner's row in `calls_hosts` stamped with the server's clock (hosts'
  clocks may disagree), and the sweep of silent owners one statement that deletes their rows and marks
  their live calls: two survivors sweeping at once mark each call once.

Connections: a worker holds one to `pool_size` (`ORCHESTRATOR_CALLS_DB_POOL_SIZE`, default 4), so many
workers on one server (default max_connections 100) want a smaller pool, or PgBouncer in front. Behind
PgBouncer's transaction pooling a connection's prepared statements vanish between transactions: put
`statement_cache_size=0` in the URL (taken by the store, not sent to the server), and asyncpg prepares
none to keep.

The table lives in the connection's `search_path`: `?search_path=calls_eu` in the URL (asyncpg passes
unknown URL parameters on as server settings) keeps several deployments, or parallel test runs, apart in
one database, each in a schema of its own. `started_at` stays ISO text, as in SQLite, compared
byte-wise (`COLLATE "C"`) so that both stores list calls in the same order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from dataclasses import astuple
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]  # no stubs; every call is wrapped here

from orchestrator.call.store import (
    BUSY_TIMEOUT_S,
    COLUMNS,
    INTERRUPTED,
    LIVE,
    SCHEMA_VERSION,
    CallStoreError,
    StoredCall,
    from_row,
    masked_url,
)

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy  # type: ignore[import-untyped]

__all__ = ["PostgresCallStore"]

T = TypeVar("T")

POOL_SIZE = 4  # a worker's writes are one at a time (CallRecords); the rest serve the console and metrics
# Any fixed pair: (this, hash of the schema) names the lock that serialises schema creation per schema.
_SCHEMA_LOCK = 0x5CA115
# calls_schema.version is the oldest schema that reads and writes the table correctly, not the newest
# that touched it: version 4 only added a nullable column and a table that version 3 ignores, so the row
# still says 3 and hosts not yet upgraded keep starting during a rolling upgrade.
_WRITABLE_FROM = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    record_id TEXT PRIMARY KEY,
    call_sid TEXT NOT NULL,
    caller_masked TEXT,
    flow TEXT NOT NULL,
    outcome TEXT NOT NULL,
    final_state TEXT NOT NULL,
    started_at TEXT COLLATE "C" NOT NULL,
    duration_s DOUBLE PRECISION NOT NULL,
    turns INTEGER NOT NULL,
    barge_ins INTEGER NOT NULL,
    escalation TEXT,
    platform_status TEXT,
    platform_cost_minor BIGINT,
    platform_currency TEXT,
    first_prompt_ms INTEGER,
    transcript_text TEXT NOT NULL,
    transcript_json TEXT NOT NULL,
    revision INTEGER NOT NULL DEFAULT 0,
    -- The order of first saves (SQLite's rowid): calls that started in the same millisecond list the
    -- later one first in both stores.
    saved BIGINT GENERATED ALWAYS AS IDENTITY,
    owner TEXT
);
-- Each owner's last heartbeat, on the server's clock: one silent too long has gone for good.
CREATE TABLE IF NOT EXISTS calls_hosts (owner TEXT PRIMARY KEY, seen_at TIMESTAMPTZ NOT NULL);
CREATE INDEX IF NOT EXISTS calls_by_time ON calls (started_at);
CREATE INDEX IF NOT EXISTS calls_by_outcome ON calls (outcome, started_at);
CREATE INDEX IF NOT EXISTS calls_by_sid ON calls (call_sid, started_at);
CREATE TABLE IF NOT EXISTS calls_schema (version INTEGER NOT NULL);
"""
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM calls"  # noqa: S608 - column names are our own constants
_UPSERT = (
    f"INSERT INTO calls ({', '.join(COLUMNS)}) "  # noqa: S608 - column names are our own constants
    f"VALUES ({', '.join(f'${n}' for n in range(1, len(COLUMNS) + 1))}) "
    "ON CONFLICT (record_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c != "record_id")
    + " WHERE excluded.revision >= calls.revision"
)
# A version-3 table gains the owner column (old rows: NULL). Only when missing: ALTER TABLE takes an
# exclusive lock on the table, which every worker's start should not.
_OWNER_KNOWN = (
    "SELECT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = current_schema() "
    "AND table_name = 'calls' AND column_name = 'owner')"
)
_MARK = "UPDATE calls SET outcome = $1, revision = revision + 1 WHERE outcome = $2"
_BEAT = (
    "INSERT INTO calls_hosts (owner, seen_at) VALUES ($1, now()) "
    "ON CONFLICT (owner) DO UPDATE SET seen_at = excluded.seen_at"
)
_SWEEP = (
    "WITH silent AS (DELETE FROM calls_hosts WHERE seen_at < now() - make_interval(secs => $3) "
    f"RETURNING owner) {_MARK} AND owner IN (SELECT owner FROM silent)"
)
# What the driver raises for a store it cannot reach or that refuses the statement. InternalClientError:
# a connection the server terminated mid-statement can leave the driver's protocol state confused
# ("cannot switch to state 12; another operation is in progress"); the pool replaces it.
_FAILURES = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.InternalClientError,
    OSError,
    TimeoutError,
    ValueError,
)


class PostgresCallStore:
    """Calls in one PostgreSQL table, shared by every worker that names the same URL.

    The pool opens on first use (or `await store.open()`), creating the schema; a connection the server
    dropped is replaced by the pool on the next query, so a refused save is retried by `CallRecords`.
    """

    def __init__(
        self, url: str, *, busy_timeout_s: float = BUSY_TIMEOUT_S, pool_size: int = POOL_SIZE
    ) -> None:
        if pool_size < 1:
            raise CallStoreError(f"call store {masked_url(url)}: a pool of {pool_size} connections")
        self.url = url
        self._connect_url, self._statement_cache_size = _statement_cache(url)
        self._pool_size = pool_size
        self._timeout_s = busy_timeout_s
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._closed = False

    def __str__(self) -> str:
        return masked_url(self.url)

    async def open(self) -> None:
        """Connect and create the schema now: a wrong host or database fails at start-up, not mid-call."""
        await self._run(lambda connection: asyncio.sleep(0))

    async def save(self, call: StoredCall) -> None:
        row = astuple(call)
        await self._run(lambda connection: connection.execute(_UPSERT, *row))

    async def get(self, call_sid: str) -> StoredCall | None:
        row = await self._run(
            lambda connection: connection.fetchrow(
                f"{_SELECT} WHERE call_sid = $1 ORDER BY started_at DESC, saved DESC LIMIT 1", call_sid
            )
        )
        return from_row(tuple(row)) if row is not None else None

    async def mark_interrupted(
        self, call_sids: Collection[str] | None = None, *, owner: str | None = None
    ) -> int:
        query, params = _MARK, [INTERRUPTED, LIVE]
        if call_sids is not None:
            sids = sorted(set(call_sids))
            if not sids:
                return 0
            params.append(sids)
            query += f" AND call_sid = ANY(${len(params)}::text[])"
        if owner is not None:
            params.append(owner)
            query += f" AND (owner = ${len(params)} OR owner IS NULL)"
        status = await self._run(lambda connection: connection.execute(query, *params))
        return _updated(status)

    async def heartbeat(self, owner: str, silent_after_s: float) -> int:
        async def beat(connection: PoolConnectionProxy) -> str:
            await connection.execute(_BEAT, owner)
            return str(await connection.execute(_SWEEP, INTERRUPTED, LIVE, float(silent_after_s)))

        return _updated(await self._run(beat))

    async def recent(self, limit: int = 20, outcome: str | None = None) -> list[StoredCall]:
        order = "ORDER BY started_at DESC, saved DESC"
        params: tuple[object, ...] = (max(limit, 0),)
        query = f"{_SELECT} {order} LIMIT $1"
        if outcome is not None:
            params, query = (outcome, *params), f"{_SELECT} WHERE outcome = $1 {order} LIMIT $2"
        rows = await self._run(lambda connection: connection.fetch(query, *params))
        return [from_row(tuple(row)) for row in rows]

    async def summary(self) -> dict[str, int]:
        rows = await self._run(
            lambda connection: connection.fetch("SELECT outcome, COUNT(*) FROM calls GROUP BY outcome")
        )
        return {str(outcome): int(count) for outcome, count in sorted(tuple(row) for row in rows)}

    async def close(self) -> None:
        self._closed = True
        async with self._opening:
            pool, self._pool = self._pool, None
        if pool is not None:
            try:
                # A server gone silent (a partition) must not hold the service's exit: then drop the sockets.
                await asyncio.wait_for(pool.close(), timeout=self._timeout_s)
            except (TimeoutError, *_FAILURES):
                pool.terminate()

    async def _run(self, work: Callable[[PoolConnectionProxy], Awaitable[T]]) -> T:
        pool = await self._connected()
        try:
            async with pool.acquire(timeout=self._timeout_s) as connection:
                return await work(connection)
        except _FAILURES as exc:
            raise CallStoreError(f"call store {self}: {exc}") from exc

    async def _connected(self) -> asyncpg.Pool:
        """The pool, made (and the schema created) on first use; a failed attempt is tried again next time."""
        async with self._opening:
            if self._closed:
                raise CallStoreError(f"call store {self} is closed")
            if self._pool is not None:
                return self._pool
            try:
                pool = await asyncpg.create_pool(
                    self._connect_url,
                    min_size=1,
                    max_size=self._pool_size,
                    statement_cache_size=self._statement_cache_size,
                    timeout=self._timeout_s,  # connecting
                    command_timeout=self._timeout_s,  # each statement, waits on row locks included
                )
            except _FAILURES as exc:
                raise CallStoreError(f"call store {self}: {exc}") from exc
            try:
                async with pool.acquire() as connection:
                    await _create_schema(connection, self)
            except BaseException as exc:
                pool.terminate()  # nothing of ours runs on it yet; a failing server must not hold the close
                if isinstance(exc, _FAILURES):
                    raise CallStoreError(f"call store {self}: {exc}") from exc
                raise
            self._pool = pool
            return pool


async def _create_schema(connection: PoolConnectionProxy, store: PostgresCallStore) -> None:
    """Create the tables once, whoever gets there first; refuse a schema from a newer orchestrator."""
    async with connection.transaction():
        # Workers starting at once would otherwise race CREATE TABLE IF NOT EXISTS into a duplicate key.
        await connection.execute(
            "SELECT pg_advisory_xact_lock($1, hashtext(coalesce(current_schema(), '')))", _SCHEMA_LOCK
        )
        await connection.execute(_SCHEMA)
        if not await connection.fetchval(_OWNER_KNOWN):
            await connection.execute("ALTER TABLE calls ADD COLUMN owner TEXT")
        version = await connection.fetchval("SELECT max(version) FROM calls_schema")
        if version is None:
            await connection.execute("INSERT INTO calls_schema (version) VALUES ($1)", _WRITABLE_FROM)
        elif version > SCHEMA_VERSION:
            raise CallStoreError(
                f"call store {store} has schema version {version}; "
                f"this orchestrator reads up to {SCHEMA_VERSION}"
            )


def _updated(status: str) -> int:
    """How many rows an UPDATE's status names ("UPDATE 3")."""
    return int(status.rsplit(" ", 1)[-1])


def _statement_cache(url: str) -> tuple[str, int]:
    """The URL asyncpg connects with, and its statement cache size: `statement_cache_size` in the URL is
    ours (asyncpg would send an unknown parameter to the server as a setting, which it refuses)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = [value for key, value in query if key == "statement_cache_size"]
    if not ours:
        return url, 100  # asyncpg's default
    try:
        size = int(ours[-1])
    except ValueError:
        raise CallStoreError(
            f"call store {masked_url(url)}: statement_cache_size={ours[-1]!r} is not a number"
        ) from None
    rest = urlencode([(key, value) for key, value in query if key != "statement_cache_size"])
    return urlunsplit(parts._replace(query=rest)), max(size, 0)
