"""Calls, kept and queryable from their webhook on: the `CallStore` protocol, in memory and in SQLite
(PostgreSQL, for several hosts, is in postgres_store.py; `open_call_store` picks one by URL or path).

    store = await open_call_store("calls.sqlite3")
    now = datetime.now(UTC)
    await store.save(StoredCall.from_session(session, flow_name=flow.name, stored_at=now))
    escalated = await store.recent(limit=10, outcome="escalated")
    await store.close()

A `StoredCall` is a flat, frozen summary of one call plus its whole transcript (text and JSON), so a
store knows nothing of sessions and a row reads the same whichever store wrote it. A call is written
first at its webhook (outcome `live`), again as it goes, and last when it ends; each write carries a
higher `revision`, and a store never lets an older revision replace a newer one (a journal replayed
late cannot undo a call's end). Each call has its own `record_id`, so a platform that reuses a call
id gets a second record, not the first one overwritten. Each record names its `owner`, the host (or
host/worker) that wrote it last: records of this owner still `live` when a service starts belonged to
its process that died, and `mark_interrupted(owner=...)` says so without touching other hosts' calls;
`heartbeat()` marks those of an owner that has fallen silent (a host gone for good). SQLite is the default (durable, no
server); every SQLite call runs in a worker thread so the event loop never waits on the disk. Phone
numbers are masked before they are stored.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import astuple, dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

from orchestrator.errors import OrchestratorError
from orchestrator.logging import mask_phone

if TYPE_CHECKING:
    from orchestrator.call.postgres_store import PostgresCallStore
    from orchestrator.call.session import CallSession

__all__ = [
    "INTERRUPTED",
    "LIVE",
    "CallStore",
    "CallStoreError",
    "MemoryCallStore",
    "SqliteCallStore",
    "StoredCall",
    "describe_store",
    "is_server_url",
    "masked_url",
    "open_call_store",
    "sqlite_path",
]

T = TypeVar("T")

# How long a write waits for another process's lock on the file (SQLite's busy timeout).
BUSY_TIMEOUT_S = 5.0
SCHEMA_VERSION = 4  # 2: record_id and revision; 3: first_prompt_ms; 4: owner, calls_hosts
LIVE = "live"  # the outcome of a call still in progress
INTERRUPTED = "interrupted"  # the outcome of a call whose service stopped without finishing it


class CallStoreError(OrchestratorError):
    """The call store can't be read or written (not a database, newer schema, closed)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredCall:
    """One call as kept: what happened, what it cost, and the full transcript."""

    call_sid: str
    caller_masked: str | None  # None when the caller withheld their number
    flow: str
    outcome: str
    final_state: str
    started_at: str  # ISO 8601, UTC
    duration_s: float  # from the webhook to the transcript's last entry
    turns: int  # caller utterances
    barge_ins: int  # times the caller cut the agent off
    escalation: str | None  # dialled, supervised, callback, failed; None when not escalated
    platform_status: str | None = None  # from Sautikit's call record, when it was fetched
    platform_cost_minor: int | None = None
    platform_currency: str | None = None
    first_prompt_ms: int | None = None  # the stream connecting -> the agent's first audio
    transcript_text: str
    transcript_json: str
    record_id: str = ""  # this call's own record (a reused call id gets another); empty: the call id
    revision: int = 0  # writes of one record count up; an older revision never replaces a newer one
    owner: str | None = None  # the host (host/worker) that wrote it; None: written before owners were kept

    def __post_init__(self) -> None:
        if not self.record_id:
            object.__setattr__(self, "record_id", self.call_sid)

    @classmethod
    def from_session(
        cls,
        session: CallSession,
        *,
        flow_name: str,
        stored_at: datetime,
        started_at: datetime | None = None,
        outcome: str | None = None,
        record_id: str = "",
        revision: int = 0,
    ) -> StoredCall:
        """Summarise a session; `stored_at` is the wall clock now (aware or UTC).

        `started_at` is the webhook's wall time when known; `outcome` overrides the transcript's
        (`live` while the call goes on).
        """
        transcript = session.transcript
        entries = transcript.entries
        duration_s = entries[-1].at_ms / 1000 if entries else 0.0
        record = session.call_record
        if record is not None and record.started_at is not None:
            started = record.started_at
        elif started_at is not None:
            started = started_at
        else:
            # The transcript's clock starts at the webhook: step back from now by the call's length.
            started = stored_at - timedelta(seconds=duration_s)
        return cls(
            call_sid=session.call_sid,
            record_id=record_id,
            revision=revision,
            caller_masked=mask_phone(session.caller) if session.caller else None,
            flow=flow_name,
            outcome=outcome or transcript.outcome,
            final_state=session.machine.state,
            started_at=_iso_utc(started),
            duration_s=duration_s,
            turns=sum(1 for entry in entries if entry.kind == "caller"),
            barge_ins=sum(1 for b in session.barge_ins if b.outcome == "interrupted"),
            escalation=session.escalation_result,
            platform_status=record.status if record is not None else None,
            platform_cost_minor=record.cost_minor if record is not None else None,
            platform_currency=record.cost_currency if record is not None else None,
            first_prompt_ms=transcript.first_prompt_ms,
            transcript_text=transcript.render(),
            transcript_json=transcript.to_json(),
        )


def _iso_utc(moment: datetime) -> str:
    # One fixed format, so ISO strings sort by time in SQL and in memory alike.
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


class CallStore(Protocol):
    """Where calls go; newest first when listed."""

    async def save(self, call: StoredCall) -> None:
        """Keep `call`, replacing an earlier save of the same record unless that one's revision is higher."""
        ...

    async def get(self, call_sid: str) -> StoredCall | None:
        """The latest record of `call_sid` (a reused id has several), or None."""
        ...

    async def mark_interrupted(
        self, call_sids: Collection[str] | None = None, *, owner: str | None = None
    ) -> int:
        """Mark `live` records `interrupted` (their service stopped): every one, or those of
        `call_sids` only (a dead worker's calls), or those `owner` wrote (and any written before owners
        were kept: nobody else will claim them) when a host starts again; return how many."""
        ...

    async def heartbeat(self, owner: str, silent_after_s: float) -> int:
        """Note that `owner` is alive now; mark `interrupted` the live records of every owner silent for
        longer than `silent_after_s` (its host is gone) and forget that owner; return how many records."""
        ...

    async def recent(self, limit: int = 20, outcome: str | None = None) -> list[StoredCall]:
        """Up to `limit` calls, newest `started_at` first, optionally only those with `outcome`."""
        ...

    async def summary(self) -> dict[str, int]:
        """How many calls ended with each outcome."""
        ...

    async def close(self) -> None: ...


class MemoryCallStore:
    """A store for tests and demos: a dict, gone with the process."""

    def __init__(self) -> None:
        self._calls: dict[str, StoredCall] = {}  # by record_id, in order of first save
        self._seen: dict[str, float] = {}  # owner -> its last heartbeat (wall clock)

    async def save(self, call: StoredCall) -> None:
        kept = self._calls.get(call.record_id)
        if kept is None or call.revision >= kept.revision:
            self._calls[call.record_id] = call

    async def get(self, call_sid: str) -> StoredCall | None:
        return next(iter(await self._of(call_sid)), None)

    async def _of(self, call_sid: str) -> list[StoredCall]:
        calls = [c for c in reversed(self._calls.values()) if c.call_sid == call_sid]
        calls.sort(key=lambda c: c.started_at, reverse=True)
        return calls

    async def mark_interrupted(
        self, call_sids: Collection[str] | None = None, *, owner: str | None = None
    ) -> int:
        wanted = None if call_sids is None else set(call_sids)
        return self._mark(
            lambda c: (wanted is None or c.call_sid in wanted)
            and (owner is None or c.owner in (owner, None))
        )

    async def heartbeat(self, owner: str, silent_after_s: float) -> int:
        now = time.time()
        self._seen[owner] = now
        silent = {o for o, seen in self._seen.items() if seen < now - silent_after_s}
        for gone in silent:
            del self._seen[gone]
        return self._mark(lambda c: c.owner in silent)

    def _mark(self, chosen: Callable[[StoredCall], bool]) -> int:
        live = [c for c in self._calls.values() if c.outcome == LIVE and chosen(c)]
        for call in live:
            self._calls[call.record_id] = replace(call, outcome=INTERRUPTED, revision=call.revision + 1)
        return len(live)

    async def recent(self, limit: int = 20, outcome: str | None = None) -> list[StoredCall]:
        # Latest saved first, then a stable sort by time: ties come out as SQLite's rowid DESC.
        calls = [c for c in reversed(self._calls.values()) if outcome in (None, c.outcome)]
        calls.sort(key=lambda c: c.started_at, reverse=True)
        return calls[: max(limit, 0)]

    async def summary(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for call in self._calls.values():
            counts[call.outcome] = counts.get(call.outcome, 0) + 1
        return dict(sorted(counts.items()))

    async def close(self) -> None:
        """Nothing to release; the calls stay readable."""


COLUMNS = tuple(f.name for f in fields(StoredCall))
_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    record_id TEXT PRIMARY KEY,
    call_sid TEXT NOT NULL,
    caller_masked TEXT,
    flow TEXT NOT NULL,
    outcome TEXT NOT NULL,
    final_state TEXT NOT NULL,
    started_at TEXT NOT NULL,
    duration_s REAL NOT NULL,
    turns INTEGER NOT NULL,
    barge_ins INTEGER NOT NULL,
    escalation TEXT,
    platform_status TEXT,
    platform_cost_minor INTEGER,
    platform_currency TEXT,
    first_prompt_ms INTEGER,
    transcript_text TEXT NOT NULL,
    transcript_json TEXT NOT NULL,
    revision INTEGER NOT NULL DEFAULT 0,
    owner TEXT
);
CREATE INDEX IF NOT EXISTS calls_by_time ON calls (started_at);
CREATE INDEX IF NOT EXISTS calls_by_outcome ON calls (outcome, started_at);
CREATE INDEX IF NOT EXISTS calls_by_sid ON calls (call_sid, started_at);
-- Each owner's last heartbeat (seconds since the epoch): one silent too long has gone for good.
CREATE TABLE IF NOT EXISTS calls_hosts (owner TEXT PRIMARY KEY, seen_at REAL NOT NULL);
"""
# Version 1 keyed calls by call_sid: each becomes its own record, under its call id.
_V1_COLUMNS = tuple(
    c for c in COLUMNS if c not in ("record_id", "revision", "first_prompt_ms", "owner")
)
_MIGRATE_FROM_V1 = f"""
ALTER TABLE calls RENAME TO calls_v1;
DROP INDEX IF EXISTS calls_by_time;
DROP INDEX IF EXISTS calls_by_outcome;
{_SCHEMA}
INSERT INTO calls (record_id, {', '.join(_V1_COLUMNS)}) SELECT call_sid, {', '.join(_V1_COLUMNS)} FROM calls_v1;
DROP TABLE calls_v1;
"""  # noqa: S608 - column names are our own constants
# Columns added since version 2, each by ALTER TABLE on a file that lacks it (first_prompt_ms: a call's
# dead air before the first prompt, version 3; owner: who wrote the record, version 4).
_ADDED_COLUMNS = (("first_prompt_ms", "INTEGER"), ("owner", "TEXT"))
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM calls"  # noqa: S608 - column names are our own constants
_UPSERT = (
    f"INSERT INTO calls ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)}) "  # noqa: S608
    f"ON CONFLICT (record_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c != "record_id")
    + " WHERE excluded.revision >= calls.revision"
)
_MARK = "UPDATE calls SET outcome = ?, revision = revision + 1 WHERE outcome = ?"
_BEAT = (
    "INSERT INTO calls_hosts (owner, seen_at) VALUES (?, ?) "
    "ON CONFLICT (owner) DO UPDATE SET seen_at = excluded.seen_at"
)


class SqliteCallStore:
    """Calls in one SQLite file (WAL mode, so the CLI can read while the service writes).

    One connection, used by one worker thread at a time under a lock; it opens on first use (or
    `await store.open()`), creating the file and its schema.
    """

    def __init__(self, path: str | Path, *, busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.path = Path(path)
        self._busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._closed = False

    async def open(self) -> None:
        """Open the file and create the schema now: a bad path fails at start-up, not mid-call."""
        await self._run(lambda connection: None)

    async def save(self, call: StoredCall) -> None:
        row = astuple(call)

        def write(connection: sqlite3.Connection) -> None:
            with connection:
                connection.execute(_UPSERT, row)

        await self._run(write)

    async def get(self, call_sid: str) -> StoredCall | None:
        def read(connection: sqlite3.Connection) -> StoredCall | None:
            row = connection.execute(
                f"{_SELECT} WHERE call_sid = ? ORDER BY started_at DESC, rowid DESC LIMIT 1",
                (call_sid,),
            ).fetchone()
            return from_row(row) if row is not None else None

        return await self._run(read)

    async def mark_interrupted(
        self, call_sids: Collection[str] | None = None, *, owner: str | None = None
    ) -> int:
        where, params = "", []
        if call_sids is not None:
            sids = sorted(set(call_sids))
            if not sids:
                return 0
            where, params = f" AND call_sid IN ({', '.join('?' for _ in sids)})", sids
        if owner is not None:
            where, params = f"{where} AND (owner = ? OR owner IS NULL)", [*params, owner]

        def write(connection: sqlite3.Connection) -> int:
            with connection:
                return connection.execute(f"{_MARK}{where}", (INTERRUPTED, LIVE, *params)).rowcount

        return await self._run(write)

    async def heartbeat(self, owner: str, silent_after_s: float) -> int:
        # One host writes a SQLite file, so its own clock serves every owner's heartbeat.
        def write(connection: sqlite3.Connection) -> int:
            now = time.time()
            with connection:
                connection.execute(_BEAT, (owner, now))
                cutoff = now - silent_after_s
                marked = connection.execute(
                    f"{_MARK} AND owner IN (SELECT owner FROM calls_hosts WHERE seen_at < ?)",
                    (INTERRUPTED, LIVE, cutoff),
                ).rowcount
                connection.execute("DELETE FROM calls_hosts WHERE seen_at < ?", (cutoff,))
                return marked

        return await self._run(write)

    async def recent(self, limit: int = 20, outcome: str | None = None) -> list[StoredCall]:
        where, params = ("WHERE outcome = ?", (outcome,)) if outcome is not None else ("", ())

        def read(connection: sqlite3.Connection) -> list[StoredCall]:
            rows = connection.execute(
                f"{_SELECT} {where} ORDER BY started_at DESC, rowid DESC LIMIT ?",
                (*params, max(limit, 0)),
            ).fetchall()
            return [from_row(row) for row in rows]

        return await self._run(read)

    async def summary(self) -> dict[str, int]:
        def read(connection: sqlite3.Connection) -> dict[str, int]:
            rows = connection.execute(
                "SELECT outcome, COUNT(*) FROM calls GROUP BY outcome ORDER BY outcome"
            ).fetchall()
            return {str(outcome): int(count) for outcome, count in rows}

        return await self._run(read)

    async def close(self) -> None:
        def shut() -> None:
            with self._lock:
                self._closed = True
                if self._connection is not None:
                    self._connection.close()
                    self._connection = None

        await asyncio.to_thread(shut)

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        def in_thread() -> T:
            with self._lock:
                try:
                    return work(self._connect())
                except (sqlite3.Error, OSError) as exc:  # OSError: the file's folder cannot be made
                    raise CallStoreError(f"call store {self.path}: {exc}") from exc

        return await asyncio.to_thread(in_thread)

    def _connect(self) -> sqlite3.Connection:
        """The connection, opened (file, WAL, schema) on first use. Called with the lock held."""
        if self._closed:
            raise CallStoreError(f"call store {self.path} is closed")
        if self._connection is not None:
            return self._connection
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Worker threads take turns under the lock, so the connection may cross threads.
        connection = sqlite3.connect(
            self.path, timeout=self._busy_timeout_s, check_same_thread=False
        )
        try:
            (version,) = connection.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                raise CallStoreError(
                    f"call store {self.path} has schema version {version}; "
                    f"this orchestrator reads up to {SCHEMA_VERSION}"
                )
            self._prepare_file(connection, version)
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        return connection

    def _prepare_file(self, connection: sqlite3.Connection, version: int) -> None:
        """WAL mode and the schema. Switching a new file to WAL while another worker opens it can be
        refused at once, "database is locked", without the busy timeout's wait (seen once in 20 runs of
        four stores opening one file): it is tried again until the busy timeout has passed."""
        deadline = time.monotonic() + self._busy_timeout_s
        while True:
            try:
                connection.execute("PRAGMA journal_mode = WAL")
                # One explicit transaction. IMMEDIATE takes the write lock first, waiting out the busy
                # timeout: workers opening one file at once would otherwise fail upgrading a read to a
                # write. The file is looked at again under the lock: a worker that got there first may
                # have upgraded it (an ALTER TABLE run twice fails).
                connection.execute("BEGIN IMMEDIATE")
                (version,) = connection.execute("PRAGMA user_version").fetchone()
                for statement in _migration(connection, version).split(";"):
                    if statement.strip():
                        connection.execute(statement)
                connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                connection.commit()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                if connection.in_transaction:
                    connection.rollback()
                time.sleep(0.05)  # a worker thread: the event loop runs meanwhile
                (version,) = connection.execute("PRAGMA user_version").fetchone()


def _migration(connection: sqlite3.Connection, version: int) -> str:
    """The script that brings a file at `version` to the current schema."""
    if version == 1:
        return _MIGRATE_FROM_V1
    columns = {row[1] for row in connection.execute("PRAGMA table_info(calls)")}
    added = "".join(
        f"ALTER TABLE calls ADD COLUMN {name} {kind};"
        for name, kind in _ADDED_COLUMNS
        if columns and name not in columns  # no columns: a new file, made whole by the schema
    )
    return added + _SCHEMA


def from_row(row: tuple[object, ...]) -> StoredCall:
    values = dict(zip(COLUMNS, row, strict=True))
    return StoredCall(**values)  # type: ignore[arg-type]  # columns mirror the dataclass's fields


def is_server_url(target: str | Path | None) -> bool:
    """A PostgreSQL URL: a store on a server, shared by several hosts (orchestrator/call/postgres_store.py)."""
    return str(target).startswith(("postgresql://", "postgres://"))


def sqlite_path(target: str | Path | None) -> Path | None:
    """The SQLite file a call-store setting names; None for memory or a server."""
    if target is None or str(target) in ("", "memory:") or is_server_url(target):
        return None
    return Path(str(target).removeprefix("sqlite://"))


def describe_store(target: str | Path | None) -> str:
    """The store for a message: its path, or its URL with any password starred."""
    if is_server_url(target):
        return masked_url(str(target))
    return str(sqlite_path(target) or "memory")


def masked_url(url: str) -> str:
    """The URL with its password starred: fit for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


async def open_call_store(
    url_or_path: str | Path | None,
    *,
    busy_timeout_s: float = BUSY_TIMEOUT_S,
    pool_size: int | None = None,
) -> CallStore:
    """None (or "memory:") keeps calls in memory; a path or `sqlite:///path` opens a SQLite file; a
    `postgresql://` URL opens a PostgreSQL store that several hosts share, on at most `pool_size`
    connections (default 4). Opened now: a wrong path or an unreachable server is a `CallStoreError` at
    start-up."""
    target = str(url_or_path) if url_or_path is not None else None
    store: SqliteCallStore | PostgresCallStore
    if target is not None and is_server_url(target):
        # Imported here: asyncpg is loaded only by services that store calls in PostgreSQL.
        from orchestrator.call.postgres_store import PostgresCallStore

        if pool_size is None:
            store = PostgresCallStore(target, busy_timeout_s=busy_timeout_s)
        else:
            store = PostgresCallStore(target, busy_timeout_s=busy_timeout_s, pool_size=pool_size)
    elif target is not None and "://" in target and not target.startswith("sqlite://"):
        scheme = target.split("://", 1)[0]
        raise CallStoreError(
            f"no call store for {scheme}:// URLs; give a SQLite file path or a postgresql:// URL"
        )
    elif (path := sqlite_path(target)) is None:
        return MemoryCallStore()
    else:
        store = SqliteCallStore(path, busy_timeout_s=busy_timeout_s)
    try:
        await store.open()
    except BaseException:
        await store.close()
        raise
    return store
