"""Finished calls, kept and queryable: the `CallStore` protocol, in memory and in SQLite.

    store = await open_call_store("calls.sqlite3")
    now = datetime.now(UTC)
    await store.save(StoredCall.from_session(session, flow_name=flow.name, stored_at=now))
    escalated = await store.recent(limit=10, outcome="escalated")
    await store.close()

A `StoredCall` is a flat, frozen summary of one finished call plus its whole transcript (text and
JSON), so a store knows nothing of sessions and a row reads the same whichever store wrote it.
SQLite is the default (durable, no server); every SQLite call runs in a worker thread so the event
loop never waits on the disk. Phone numbers are masked before they are stored.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import astuple, dataclass, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from orchestrator.errors import OrchestratorError
from orchestrator.logging import mask_phone

if TYPE_CHECKING:
    from orchestrator.call.session import CallSession

__all__ = [
    "CallStore",
    "CallStoreError",
    "MemoryCallStore",
    "SqliteCallStore",
    "StoredCall",
    "open_call_store",
]

T = TypeVar("T")

# How long a write waits for another process's lock on the file (SQLite's busy timeout).
BUSY_TIMEOUT_S = 5.0
SCHEMA_VERSION = 1


class CallStoreError(OrchestratorError):
    """The call store can't be read or written (not a database, newer schema, closed)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredCall:
    """One finished call as kept: what happened, what it cost, and the full transcript."""

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
    transcript_text: str
    transcript_json: str

    @classmethod
    def from_session(
        cls, session: CallSession, *, flow_name: str, stored_at: datetime
    ) -> StoredCall:
        """Summarise a finished session; `stored_at` is the wall clock now (aware or UTC)."""
        transcript = session.transcript
        entries = transcript.entries
        duration_s = entries[-1].at_ms / 1000 if entries else 0.0
        record = session.call_record
        if record is not None and record.started_at is not None:
            started = record.started_at
        else:
            # The transcript's clock starts at the webhook: step back from now by the call's length.
            started = stored_at - timedelta(seconds=duration_s)
        return cls(
            call_sid=session.call_sid,
            caller_masked=mask_phone(session.caller) if session.caller else None,
            flow=flow_name,
            outcome=transcript.outcome,
            final_state=session.machine.state,
            started_at=_iso_utc(started),
            duration_s=duration_s,
            turns=sum(1 for entry in entries if entry.kind == "caller"),
            barge_ins=sum(1 for b in session.barge_ins if b.outcome == "interrupted"),
            escalation=session.escalation_result,
            platform_status=record.status if record is not None else None,
            platform_cost_minor=record.cost_minor if record is not None else None,
            platform_currency=record.cost_currency if record is not None else None,
            transcript_text=transcript.render(),
            transcript_json=transcript.to_json(),
        )


def _iso_utc(moment: datetime) -> str:
    # One fixed format, so ISO strings sort by time in SQL and in memory alike.
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


class CallStore(Protocol):
    """Where finished calls go; newest first when listed."""

    async def save(self, call: StoredCall) -> None:
        """Keep `call`, replacing any earlier save of the same call_sid."""
        ...

    async def get(self, call_sid: str) -> StoredCall | None: ...

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
        self._calls: dict[str, StoredCall] = {}

    async def save(self, call: StoredCall) -> None:
        self._calls[call.call_sid] = call

    async def get(self, call_sid: str) -> StoredCall | None:
        return self._calls.get(call_sid)

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


_COLUMNS = tuple(f.name for f in fields(StoredCall))
_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    call_sid TEXT PRIMARY KEY,
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
    transcript_text TEXT NOT NULL,
    transcript_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS calls_by_time ON calls (started_at);
CREATE INDEX IF NOT EXISTS calls_by_outcome ON calls (outcome, started_at);
"""
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM calls"  # noqa: S608 - column names are our own constants
_UPSERT = (
    f"INSERT INTO calls ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)}) "  # noqa: S608
    f"ON CONFLICT (call_sid) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c != "call_sid")
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
            row = connection.execute(f"{_SELECT} WHERE call_sid = ?", (call_sid,)).fetchone()
            return _from_row(row) if row is not None else None

        return await self._run(read)

    async def recent(self, limit: int = 20, outcome: str | None = None) -> list[StoredCall]:
        where, params = ("WHERE outcome = ?", (outcome,)) if outcome is not None else ("", ())

        def read(connection: sqlite3.Connection) -> list[StoredCall]:
            rows = connection.execute(
                f"{_SELECT} {where} ORDER BY started_at DESC, rowid DESC LIMIT ?",
                (*params, max(limit, 0)),
            ).fetchall()
            return [_from_row(row) for row in rows]

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
                except sqlite3.Error as exc:
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
            connection.execute("PRAGMA journal_mode = WAL")
            with connection:
                connection.executescript(_SCHEMA)
                connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            connection.close()
            raise
        self._connection = connection
        return connection


def _from_row(row: tuple[object, ...]) -> StoredCall:
    values = dict(zip(_COLUMNS, row, strict=True))
    return StoredCall(**values)  # type: ignore[arg-type]  # columns mirror the dataclass's fields


async def open_call_store(url_or_path: str | Path | None) -> CallStore:
    """None (or "memory:") keeps calls in memory; a path or `sqlite:///path` opens a SQLite file."""
    if url_or_path is None or str(url_or_path) in ("", "memory:"):
        return MemoryCallStore()
    target = str(url_or_path)
    if target.startswith("sqlite://"):
        target = target.removeprefix("sqlite://")
    elif "://" in target:
        scheme = target.split("://", 1)[0]
        raise CallStoreError(f"no call store for {scheme}:// URLs; give a SQLite file path")
    store = SqliteCallStore(target)
    await store.open()
    return store
