"""Call records that survive the disk: a real locked SQLite file (and PostgreSQL table), a real journal, a real
file-size limit.

`CallRecords` retries a save the store refuses, journals what it still cannot store, reports itself
degraded, and stores everything once the store takes writes again; a journal left by a dead process is
replayed at start, its live calls marked interrupted.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import textwrap
from dataclasses import asdict
from pathlib import Path

import asyncpg
import pytest

from orchestrator.call.records import CallRecords, default_journal
from orchestrator.call.session import CallSession
from orchestrator.call.store import CallStore, SqliteCallStore, StoredCall, open_call_store
from orchestrator.testing import run_scripted_call
from tests.flows import SCRIPTS


def stored_call(call_sid: str, **changes: object) -> StoredCall:
    values: dict[str, object] = {
        "call_sid": call_sid,
        "caller_masked": None,
        "flow": "order_status",
        "outcome": "resolved",
        "final_state": "ended",
        "started_at": "2026-03-04T09:00:00.000+00:00",
        "duration_s": 3.0,
        "turns": 1,
        "barge_ins": 0,
        "escalation": None,
        "transcript_text": "text",
        "transcript_json": "{}",
    }
    values.update(changes)
    return StoredCall(**values)  # type: ignore[arg-type]


def _fast(store: CallStore, journal: Path) -> CallRecords:
    return CallRecords(
        store, flow_name="order_status", journal=journal, attempts=2, retry_s=0.01, recover_s=0.1
    )


async def test_records_locked_database_degrades_journals_then_stores_everything(tmp_path):
    """While another connection holds the write lock: degraded, journalled; once released: all stored."""
    db, journal = tmp_path / "calls.sqlite3", tmp_path / "calls.journal"
    store = SqliteCallStore(db, busy_timeout_s=0.05)
    await store.open()
    records = _fast(store, journal)
    await records.start()
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        for n in range(5):
            records.keep(stored_call(f"HD_{n}"))
        async with asyncio.timeout(10):
            while not records.health().degraded or not journal.exists():  # noqa: ASYNC110 - a monitor's view
                await asyncio.sleep(0.02)
        assert records.health().pending == 5
        assert len([line for line in journal.read_text().splitlines() if line]) == 5
    finally:
        blocker.execute("COMMIT")
        blocker.close()

    assert await records.flush(10)
    health = records.health()
    assert (health.degraded, health.pending) == (False, 0)
    assert health.failures >= 1
    assert not journal.exists()
    assert await store.summary() == {"resolved": 5}
    await records.close(1)
    await store.close()


async def test_records_close_while_locked_journals_and_the_next_start_replays(tmp_path):
    """A record the store refuses until shut-down waits in the journal; the next start stores it."""
    db, journal = tmp_path / "calls.sqlite3", tmp_path / "calls.journal"
    store = SqliteCallStore(db, busy_timeout_s=0.05)
    await store.open()
    records = _fast(store, journal)
    await records.start()
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    records.keep(stored_call("HD_late", outcome="live", revision=1))
    await records.close(0.2)
    await store.close()
    blocker.execute("COMMIT")
    blocker.close()
    assert journal.exists()

    store = SqliteCallStore(db)
    records = _fast(store, journal)
    await records.start()
    assert await records.flush(10)
    kept = await store.get("HD_late")
    await records.close(1)
    await store.close()

    assert kept is not None
    assert kept.outcome == "interrupted"  # the process that left it live is gone
    assert not journal.exists()


async def test_records_start_replays_a_journal_newest_revision_first_and_skips_torn_lines(tmp_path):
    """Of several journalled revisions the newest wins; a line torn by a crash is skipped, not fatal."""
    journal = tmp_path / "calls.journal"
    lines = [
        json.dumps(asdict(stored_call("HD_a", record_id="r1", revision=1, outcome="live"))),
        json.dumps(asdict(stored_call("HD_a", record_id="r1", revision=3, outcome="resolved"))),
        json.dumps(asdict(stored_call("HD_a", record_id="r1", revision=2, outcome="live"))),
        '{"call_sid": "HD_torn", "flo',
    ]
    journal.write_text("\n".join(lines) + "\n")
    store = await open_call_store(tmp_path / "calls.sqlite3")
    records = CallRecords(store, flow_name="order_status", journal=journal)
    await records.start()
    assert await records.flush(10)
    await records.close(1)
    kept = await store.get("HD_a")
    summary = await store.summary()
    await store.close()

    assert kept is not None
    assert (kept.revision, kept.outcome) == (3, "resolved")
    assert summary == {"resolved": 1}


_FILE_SIZE_LIMIT = textwrap.dedent(
    """
    import asyncio, json, resource, sys
    from pathlib import Path
    from orchestrator.call.records import CallRecords
    from orchestrator.call.store import SqliteCallStore, StoredCall

    def call(n):
        return StoredCall(call_sid=f"HD_{n}", caller_masked=None, flow="f", outcome="resolved",
            final_state="ended", started_at="2026-03-04T09:00:00.000+00:00", duration_s=1.0, turns=1,
            barge_ins=0, escalation=None, transcript_text="x" * 4000, transcript_json="{}")

    async def main(folder):
        store = SqliteCallStore(folder / "calls.sqlite3")
        await store.open()
        records = CallRecords(store, flow_name="f", journal=folder / "calls.journal",
                              attempts=2, retry_s=0.01, recover_s=0.1)
        await records.start()
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1, hard))  # no file may grow: the disk is full
        for n in range(20):
            records.keep(call(n))
        while not records.health().degraded:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
        full = records.health()
        stored_while_full = len(await store.recent(limit=100))
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space freed
        flushed = await records.flush(20)
        freed = records.health()
        stored = len(await store.recent(limit=100))
        await records.close(1)
        await store.close()
        print(json.dumps({"full": [full.degraded, full.pending], "stored_while_full": stored_while_full,
                          "flushed": flushed, "freed": [freed.degraded, freed.pending],
                          "stored": stored, "journal_left": (folder / "calls.journal").exists()}))

    asyncio.run(main(Path(sys.argv[1])))
    """
)


def test_records_file_size_limit_holds_records_in_memory_until_space_is_freed(tmp_path):
    """Under a real RLIMIT_FSIZE (a full disk) neither the database nor the journal takes a write:
    the records wait in memory, degraded; once the limit is lifted all 20 are stored."""
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", _FILE_SIZE_LIMIT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])

    assert figures["full"] == [True, 20]
    assert figures["stored_while_full"] == 0
    assert figures["flushed"] is True
    assert figures["freed"] == [False, 0]
    assert figures["stored"] == 20
    assert figures["journal_left"] is False


@pytest.mark.looptime
async def test_records_a_call_written_interrupted_never_goes_back_to_live(tmp_path):
    """Shut-down marks a live call `interrupted`; a stream edge logged after that must not undo it.

    Regression: under load, the media socket's last transcript line came after the clean-up's
    `interrupted` write, and the record was stored `live` again.
    """
    store = await open_call_store(tmp_path / "calls.sqlite3")
    records = CallRecords(store, flow_name="order_status")
    await records.start()

    def cut_off_at_start(session: CallSession) -> None:
        records.write(session)  # the webhook's first, live record
        records.write(session, outcome="interrupted")  # the shut-down's
        records.write(session)  # a stream edge afterwards

    await run_scripted_call(
        SCRIPTS / "returning_caller_by_phone.yaml", on_call_started=cut_off_at_start
    )
    assert await records.flush(5)
    assert await store.summary() == {"interrupted": 1}
    await records.close(1)
    await store.close()


# --- the same against PostgreSQL (several hosts' store) ---------------------------------------------


async def test_records_start_replays_a_journal_into_postgres_and_marks_its_live_calls(
    tmp_path, postgres_url
):
    """A dead process's journal reaches the PostgreSQL store at start: its live call as interrupted,
    its finished call as it ended; records it left live in the store are marked too; the journal goes."""
    journal = tmp_path / "calls.journal"
    lines = [
        json.dumps(asdict(stored_call("HD_live", record_id="r1", revision=2, outcome="live"))),
        json.dumps(asdict(stored_call("HD_done", record_id="r2", revision=4, outcome="resolved"))),
    ]
    journal.write_text("\n".join(lines) + "\n")
    store = await open_call_store(postgres_url)
    await store.save(stored_call("HD_stored_live", record_id="r3", revision=1, outcome="live"))
    records = CallRecords(store, flow_name="order_status", journal=journal)
    await records.start()
    assert await records.flush(10)
    await records.close(1)
    live = await store.get("HD_live")
    summary = await store.summary()
    await store.close()

    assert live is not None
    assert (live.outcome, live.revision) == ("interrupted", 3)
    assert summary == {"interrupted": 2, "resolved": 1}
    assert not journal.exists()


async def test_records_of_two_hosts_on_postgres_each_start_marks_only_its_own_live_calls(postgres_url):
    """Host A and host B write one store; each record names its writer. B restarting marks B's leftover,
    not A's call still going, whose next write A makes as usual."""
    store_a, store_b = await open_call_store(postgres_url), await open_call_store(postgres_url)
    host_a = CallRecords(store_a, flow_name="order_status", owner="host-a")
    await host_a.start()
    host_a.keep(stored_call("HD_on_a", record_id="a1", revision=1, outcome="live"))
    await store_b.save(stored_call("HD_b_left", record_id="b1", revision=5, outcome="live", owner="host-b"))
    assert await host_a.flush(10)

    host_b = CallRecords(store_b, flow_name="order_status", owner="host-b")
    await host_b.start()  # B again, after a crash
    on_a, left_by_b = await store_a.get("HD_on_a"), await store_a.get("HD_b_left")
    await host_a.close(1)
    await host_b.close(1)
    await store_a.close()
    await store_b.close()

    assert on_a is not None
    assert left_by_b is not None
    assert (on_a.outcome, on_a.owner) == ("live", "host-a")
    assert (left_by_b.outcome, left_by_b.revision) == ("interrupted", 6)


async def test_records_postgres_table_locked_degrades_journals_then_stores_everything(
    tmp_path, postgres_url
):
    """Another session holds the calls table locked past the statement timeout: saves are refused,
    records wait in the journal, and all reach PostgreSQL once the lock goes."""
    journal = tmp_path / "calls.journal"
    store = await open_call_store(postgres_url, busy_timeout_s=0.3)
    records = _fast(store, journal)
    await records.start()
    blocker = await asyncpg.connect(postgres_url)
    try:
        locked = blocker.transaction()
        await locked.start()
        await blocker.execute("LOCK TABLE calls IN ACCESS EXCLUSIVE MODE")
        for n in range(5):
            records.keep(stored_call(f"HD_{n}"))
        for _ in range(200):
            if records.health().degraded and journal.exists():
                break
            await asyncio.sleep(0.05)
        degraded = records.health()
        await locked.rollback()
    finally:
        await blocker.close()
    assert await records.flush(20)
    recovered = records.health()
    await records.close(1)
    summary = await store.summary()
    await store.close()

    assert degraded.degraded
    assert degraded.pending == 5
    assert (recovered.degraded, recovered.pending) == (False, 0)
    assert summary == {"resolved": 5}
    assert not journal.exists()


def test_records_journal_sits_beside_a_sqlite_file_and_in_the_working_folder_for_postgres():
    """Refused records wait on the host that holds them: beside its SQLite file, or ./calls.journal when the
    store is a PostgreSQL server elsewhere; calls kept in memory have no journal."""
    assert default_journal("/var/lib/orchestrator/calls.sqlite3") == Path(
        "/var/lib/orchestrator/calls.sqlite3.journal"
    )
    assert default_journal("sqlite:///srv/calls.db") == Path("/srv/calls.db.journal")
    assert default_journal("postgresql://orchestrator@db/calls") == Path("calls.journal")
    assert default_journal("postgres://orchestrator@db/calls") == Path("calls.journal")
    assert default_journal(None) is None
    assert default_journal("memory:") is None
