"""Every call written down from its webhook on, whatever the disk does: retried, journalled.

`CallRecords` sits between the service and a `CallStore`. The service hands it a session whenever
something worth keeping happened (the webhook, a state change, the end) and never waits: one writer
task takes the latest revision of each record, oldest first, and saves it. A save the store refuses
(database locked past its busy timeout, disk full, file-size limit) is retried; still refused, every
record not yet stored is appended to a local journal (JSON lines, fsynced), the records count as
degraded, and the writer tries again every few seconds until the store takes them all. A journal
that cannot be written either (the same full disk) leaves the records in memory, still retried. On
start, a journal left by an earlier process is replayed, and records that process left `live` are
marked `interrupted`. On close, what could not be stored in time goes to the journal.

    records = CallRecords(store, journal=Path("calls.sqlite3.journal"), flow_name="order_status")
    await records.start()
    records.write(session)            # live, then updated, then finished
    records.keep(stored_call)         # or a record made elsewhere
    records.health()                  # RecordsHealth(degraded=..., failures=..., pending=...)
    await records.close(timeout_s=5)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from orchestrator.call.store import (
    INTERRUPTED,
    LIVE,
    CallStore,
    CallStoreError,
    StoredCall,
    is_server_url,
    sqlite_path,
)

if TYPE_CHECKING:
    from orchestrator.call.session import CallSession

__all__ = ["SERVER_JOURNAL", "CallRecords", "RecordsHealth", "default_journal"]

log = structlog.get_logger(__name__)

SAVE_ATTEMPTS = 3
RETRY_S = 0.5  # between attempts at one save; doubles
RECOVER_S = 2.0  # while degraded, how often the store is tried again
_FIELDS = frozenset(f.name for f in fields(StoredCall))
# With PostgreSQL, refused records wait on this host, in the service's working folder.
SERVER_JOURNAL = Path("calls.journal")


def default_journal(calls_db: str | Path | None) -> Path | None:
    """Where refused records wait unless told: beside a SQLite file, `./calls.journal` for a
    PostgreSQL store (the journal is each host's own), None for calls kept in memory."""
    if calls_db is not None and is_server_url(calls_db):
        return SERVER_JOURNAL
    path = sqlite_path(calls_db)
    return None if path is None else Path(f"{path}.journal")


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordsHealth:
    """Whether records are reaching the store, for /healthz."""

    degraded: bool  # the store refused a record and has not taken everything since
    failures: int  # saves refused after every retry, since start (only grows: a metric)
    pending: int  # records not in the store yet (journalled, or only in memory)


@dataclass(slots=True)
class _Ref:
    record_id: str
    started_at: datetime
    revision: int = 0
    settled: str | None = None  # the outcome once written with one: a record never goes back to live


class CallRecords:
    """The service's one way to write calls down. See the module docstring."""

    def __init__(
        self,
        store: CallStore,
        *,
        flow_name: str,
        journal: Path | None = None,
        attempts: int = SAVE_ATTEMPTS,
        retry_s: float = RETRY_S,
        recover_s: float = RECOVER_S,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_save_failed: Callable[[], None] = lambda: None,
        mark_interrupted_at_start: bool = True,
        owner: str | None = None,
    ) -> None:
        self.store = store
        # Written into every record; at start only this owner's leftovers are marked (other hosts
        # writing the same store keep their live calls). None: every live record is this process's.
        self.owner = owner
        self._on_save_failed = on_save_failed  # each refused write (metrics count them)
        # False when workers share the store: a live record may be another worker's live call (the
        # workers mark a dead one's calls themselves, orchestrator/cluster/).
        self._mark_interrupted_at_start = mark_interrupted_at_start
        self._flow_name = flow_name
        self._journal = journal
        self._attempts = attempts
        self._retry_s = retry_s
        self._recover_s = recover_s
        self._clock = clock
        self._refs: weakref.WeakKeyDictionary[CallSession, _Ref] = weakref.WeakKeyDictionary()
        self._pending: dict[str, StoredCall] = {}  # record_id -> newest revision not stored yet
        self._journalled: dict[str, int] = {}  # record_id -> revision already in the journal
        self._journal_dirty = False
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._writer: asyncio.Task[None] | None = None
        self._degraded = False
        self._failures = 0

    # --- the service's side -----------------------------------------------------------------

    async def start(self) -> None:
        """Replay an earlier journal, mark calls a dead process left live as interrupted, start writing."""
        replayed = await asyncio.to_thread(self._read_journal)
        for call in replayed:
            if call.outcome == LIVE:  # that process is gone: its live calls were cut off
                call = replace(call, outcome=INTERRUPTED, revision=call.revision + 1)
            self._queue(call)
        if replayed:
            self._journal_dirty = True
            log.warning("records_journal_replayed", records=len(replayed))
        if not self._mark_interrupted_at_start:
            self._writer = asyncio.get_running_loop().create_task(self._write_all())
            return
        try:
            interrupted = await self.store.mark_interrupted(owner=self.owner)
        except CallStoreError as exc:
            log.error("records_not_marked_interrupted", error=str(exc))
        else:
            if interrupted:
                log.warning("records_interrupted", records=interrupted)
        self._writer = asyncio.get_running_loop().create_task(self._write_all())

    def write(self, session: CallSession, *, outcome: str | None = None) -> None:
        """Queue the session as it is now: `live` until it has finished, unless `outcome` says."""
        ref = self._refs.get(session)
        if ref is None:
            ref = self._refs[session] = _Ref(uuid.uuid4().hex, self._clock())
        ref.revision += 1
        if outcome is None and not session.finished.is_set():
            # A stream edge logged while shut-down cancels the call must not undo its `interrupted`.
            outcome = ref.settled or LIVE
        elif outcome is not None and outcome != LIVE:
            ref.settled = outcome
        call = StoredCall.from_session(
            session,
            flow_name=self._flow_name,
            stored_at=self._clock(),
            started_at=ref.started_at,
            outcome=outcome,
            record_id=ref.record_id,
            revision=ref.revision,
        )
        self.keep(call)

    def record_id(self, session: CallSession) -> str:
        """The session's own record, named now if it has not been written yet."""
        ref = self._refs.get(session)
        if ref is None:
            ref = self._refs[session] = _Ref(uuid.uuid4().hex, self._clock())
        return ref.record_id

    def adopt(self, session: CallSession, *, record_id: str, started_at: datetime) -> None:
        """Write `session` into a record another worker began (the call's webhook was answered there).

        The first worker wrote the record once, at the webhook; this one's writes come after it."""
        self._refs[session] = _Ref(record_id, started_at, revision=1)

    def keep(self, call: StoredCall) -> None:
        """Queue one record as it is (a newer revision of the same record supersedes it), as this owner's."""
        if self.owner is not None and call.owner != self.owner:
            call = replace(call, owner=self.owner)
        self._queue(call)

    def health(self) -> RecordsHealth:
        return RecordsHealth(
            degraded=self._degraded, failures=self._failures, pending=len(self._pending)
        )

    async def flush(self, timeout_s: float) -> bool:
        """Wait until every queued record is in the store; False if `timeout_s` passed first."""
        try:
            async with asyncio.timeout(timeout_s):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def close(self, timeout_s: float) -> None:
        """Store what can be stored in `timeout_s`; journal the rest; stop writing."""
        flushed = await self.flush(timeout_s)
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        if not flushed and self._pending:
            kept = await asyncio.to_thread(self._append_journal, list(self._pending.values()))
            log.error(
                "records_left_in_journal" if kept else "records_lost",
                records=len(self._pending),
                journal=str(self._journal),
            )

    # --- the writer -------------------------------------------------------------------------

    def _queue(self, call: StoredCall) -> None:
        queued = self._pending.pop(call.record_id, None)
        if queued is not None and queued.revision > call.revision:
            call = queued
        self._pending[call.record_id] = call  # moved to the end: records are saved oldest first
        self._idle.clear()
        self._wake.set()

    async def _write_all(self) -> None:
        while True:
            try:
                await self._write_pending()
            except Exception:  # the only writer must outlive anything but cancellation
                # Even a log line can fail (a full disk under a file-backed stderr): count it, try again.
                self._failures += 1
                self._degraded = True
                await asyncio.sleep(self._recover_s)
                self._wake.set()

    async def _write_pending(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                record_id, call = next(iter(self._pending.items()))
                if await self._save(call):
                    if self._pending.get(record_id) is call:
                        del self._pending[record_id]
                    continue
                self._failures += 1
                if not self._degraded:
                    self._degraded = True
                    log.error("records_degraded", pending=len(self._pending))
                await asyncio.to_thread(self._append_journal, list(self._pending.values()))
                await asyncio.sleep(self._recover_s)
            if self._journal_dirty and not self._pending:
                await asyncio.to_thread(self._clear_journal)
            if self._degraded and not self._pending:
                self._degraded = False
                log.warning("records_recovered", failures=self._failures)
            if not self._pending:
                self._idle.set()

    async def _save(self, call: StoredCall) -> bool:
        delay = self._retry_s
        for attempt in range(1, self._attempts + 1):
            try:
                await self.store.save(call)
            except CallStoreError as exc:
                log.warning(
                    "record_save_failed", call_sid=call.call_sid, attempt=attempt, error=str(exc)
                )
                self._on_save_failed()
                if attempt < self._attempts:
                    await asyncio.sleep(delay)
                    delay *= 2
            else:
                return True
        return False

    # --- the journal (worker threads only) ------------------------------------------------------

    def _append_journal(self, calls: list[StoredCall]) -> bool:
        """Append the records the journal lacks; False if the journal cannot be written either."""
        if self._journal is None:
            return False
        fresh = [c for c in calls if self._journalled.get(c.record_id, -1) < c.revision]
        if not fresh:
            return True
        # A leading newline ends any line a failed append left torn, so no record is glued to it.
        lines = "\n" + "".join(json.dumps(asdict(c), ensure_ascii=False) + "\n" for c in fresh)
        try:
            self._journal.parent.mkdir(parents=True, exist_ok=True)
            with self._journal.open("a", encoding="utf-8") as journal:
                journal.write(lines)
                journal.flush()
                os.fsync(journal.fileno())
        except OSError as exc:
            self._journal_dirty = True  # it may hold a torn line now: clear it once all is stored
            log.error("records_journal_failed", error=str(exc), held_in_memory=len(calls))
            return False
        self._journal_dirty = True
        for call in fresh:
            self._journalled[call.record_id] = call.revision
        return True

    def _read_journal(self) -> list[StoredCall]:
        if self._journal is None or not self._journal.exists():
            return []
        newest: dict[str, StoredCall] = {}
        with self._journal.open(encoding="utf-8", errors="replace") as journal:
            for number, line in enumerate(journal, start=1):
                if not line.strip():
                    continue
                try:
                    values = json.loads(line)
                    call = StoredCall(**{k: v for k, v in values.items() if k in _FIELDS})
                except (ValueError, TypeError) as exc:  # a line torn by the crash that left it
                    log.warning("records_journal_line_skipped", line=number, error=str(exc))
                    continue
                kept = newest.get(call.record_id)
                if kept is None or call.revision >= kept.revision:
                    newest[call.record_id] = call
        return list(newest.values())

    def _clear_journal(self) -> None:
        if self._journal is None:
            return
        try:
            self._journal.unlink(missing_ok=True)
        except OSError as exc:
            log.error("records_journal_not_cleared", error=str(exc))
            return
        self._journal_dirty = False
        self._journalled.clear()
