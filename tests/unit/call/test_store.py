"""The call store: finished calls kept, listed newest first and counted by outcome.

The store tests run against every implementation (memory, SQLite, PostgreSQL in a schema of the test's
own: tests/postgres.py); `from_session` is tested on real sessions from scripted calls through the
service and the fake Sautikit, on a fast-forwarded clock. PostgreSQL's own tests (several workers
creating, writing and marking one store at once) are in test_postgres_store.py.
"""

import asyncio
import contextlib
import json
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.call.session import CallSession
from orchestrator.call.store import (
    SCHEMA_VERSION,
    CallStore,
    CallStoreError,
    MemoryCallStore,
    SqliteCallStore,
    StoredCall,
    open_call_store,
)
from orchestrator.settings import Settings
from orchestrator.simulator import SimulatorOptions
from orchestrator.simulator.rest_api import FakeSautikitState, sautikit_rest_app
from orchestrator.testing import run_scripted_call
from tests.flows import SCRIPTS
from tests.postgres import postgres_schema

CALLS = SCRIPTS
STORED_AT = datetime(2026, 3, 4, 10, 0, 0, tzinfo=UTC)

OpenStore = Callable[[], Awaitable[CallStore]]


def stored_call(call_sid: str, **changes: object) -> StoredCall:
    """A plausible finished call; `changes` override any field."""
    call = StoredCall(
        call_sid=call_sid,
        caller_masked="+2547*****678",
        flow="order_status",
        outcome="resolved",
        final_state="ended",
        started_at="2026-03-04T09:00:00.000+00:00",
        duration_s=22.88,
        turns=2,
        barge_ins=0,
        escalation=None,
        platform_status="completed",
        platform_cost_minor=150,
        platform_currency="KES",
        transcript_text=f"[00:00.001] call      {call_sid}\n",
        transcript_json=json.dumps({"call_sid": call_sid, "outcome": "resolved", "entries": []}),
    )
    return replace(call, **changes)


def at_minute(minute: int) -> str:
    return f"2026-03-04T09:{minute:02d}:00.000+00:00"


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def open_store(request, tmp_path):
    """Opens the store under test; every store opened is closed after the test."""
    opened: list[CallStore] = []
    async with contextlib.AsyncExitStack() as stack:
        if request.param == "postgres":
            location = await stack.enter_async_context(postgres_schema())
        else:
            location = str(tmp_path / "calls.sqlite3")

        async def open_() -> CallStore:
            store: CallStore
            if request.param == "memory":
                # "Reopening" memory is the same dict: close() must not drop the calls.
                store = opened[0] if opened else MemoryCallStore()
            else:
                store = await open_call_store(location)
            opened.append(store)
            return store

        yield open_
        for store in opened:
            await store.close()


# --- both stores --------------------------------------------------------------------------------


async def test_store_get_returns_the_call_saved(open_store):
    """A saved call comes back field for field, None fields included."""
    store = await open_store()
    call = stored_call("HD_a", caller_masked=None, platform_cost_minor=None, escalation="dialled")
    await store.save(call)
    assert await store.get("HD_a") == call


async def test_store_get_unknown_call_is_none(open_store):
    """Asking for a call never stored gives None, not an error."""
    store = await open_store()
    assert await store.get("HD_nobody") is None


async def test_store_recent_lists_newest_first_up_to_the_limit(open_store):
    """`recent` lists by start time, newest first, whatever the order of saving, up to `limit`."""
    store = await open_store()
    for sid, minute in (("HD_b", 2), ("HD_c", 3), ("HD_a", 1), ("HD_d", 4)):
        await store.save(stored_call(sid, started_at=at_minute(minute)))
    assert [c.call_sid for c in await store.recent()] == ["HD_d", "HD_c", "HD_b", "HD_a"]
    assert [c.call_sid for c in await store.recent(limit=2)] == ["HD_d", "HD_c"]
    assert await store.recent(limit=0) == []


async def test_store_recent_same_start_lists_the_later_save_first(open_store):
    """Calls that started in the same millisecond list the one saved last first, in both stores."""
    store = await open_store()
    for sid in ("HD_1", "HD_2", "HD_3"):
        await store.save(stored_call(sid))
    assert [c.call_sid for c in await store.recent()] == ["HD_3", "HD_2", "HD_1"]


async def test_store_recent_filters_by_outcome(open_store):
    """With `outcome`, only the calls that ended that way are listed."""
    store = await open_store()
    await store.save(stored_call("HD_r1", outcome="resolved", started_at=at_minute(1)))
    await store.save(stored_call("HD_e1", outcome="escalated", started_at=at_minute(2)))
    await store.save(stored_call("HD_e2", outcome="escalated", started_at=at_minute(3)))
    escalated = await store.recent(outcome="escalated")
    assert [c.call_sid for c in escalated] == ["HD_e2", "HD_e1"]
    assert await store.recent(outcome="failed") == []


async def test_store_summary_counts_calls_per_outcome(open_store):
    """`summary` counts every stored call under its outcome, outcomes in alphabetical order."""
    store = await open_store()
    assert await store.summary() == {}
    outcomes = ["resolved", "escalated", "resolved", "abandoned", "resolved"]
    for n, outcome in enumerate(outcomes):
        await store.save(stored_call(f"HD_{n}", outcome=outcome))
    summary = await store.summary()
    assert summary == {"abandoned": 1, "escalated": 1, "resolved": 3}
    assert list(summary) == ["abandoned", "escalated", "resolved"]


async def test_store_saving_a_call_again_replaces_it(open_store):
    """A re-save of a call_sid (its call record came later) replaces the row, not adds one."""
    store = await open_store()
    await store.save(stored_call("HD_a", platform_status=None, outcome="unfinished"))
    await store.save(stored_call("HD_b", started_at=at_minute(5)))
    updated = stored_call("HD_a", platform_status="completed")
    await store.save(updated)
    assert await store.get("HD_a") == updated
    assert [c.call_sid for c in await store.recent()] == ["HD_b", "HD_a"]
    assert await store.summary() == {"resolved": 2}


async def test_store_calls_survive_reopening(open_store):
    """Calls saved before a close are there after opening the store again."""
    store = await open_store()
    call = stored_call("HD_kept")
    await store.save(call)
    await store.close()
    again = await open_store()
    assert await again.get("HD_kept") == call
    assert await again.summary() == {"resolved": 1}


# --- SQLite -------------------------------------------------------------------------------------


async def test_sqlite_store_creates_the_file_in_wal_mode(tmp_path):
    """Opening makes the file and its folder, in WAL mode so readers don't block the writer."""
    path = tmp_path / "data" / "calls.sqlite3"
    store = await open_call_store(path)
    await store.close()
    connection = sqlite3.connect(path)
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert connection.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    finally:
        connection.close()


async def test_sqlite_store_two_stores_on_one_file_see_each_others_calls(tmp_path):
    """The service writing and the CLI reading the same file at once both work."""
    path = tmp_path / "calls.sqlite3"
    writer = SqliteCallStore(path)
    reader = SqliteCallStore(path)
    try:
        await writer.save(stored_call("HD_live"))
        assert (await reader.get("HD_live")) == stored_call("HD_live")
    finally:
        await writer.close()
        await reader.close()


async def test_sqlite_store_a_file_that_is_not_a_database_is_a_store_error(tmp_path):
    """A file that isn't SQLite raises CallStoreError naming the path, not sqlite3's own error."""
    path = tmp_path / "calls.sqlite3"
    path.write_bytes(b"this is not a database, just some text long enough to have a header" * 4)
    store = SqliteCallStore(path)
    with pytest.raises(CallStoreError, match=r"calls\.sqlite3"):
        await store.open()
    await store.close()


async def test_sqlite_store_a_newer_schema_is_refused(tmp_path):
    """A file from a newer orchestrator (higher user_version) isn't read with the old schema."""
    path = tmp_path / "calls.sqlite3"
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA user_version = 99")
    connection.close()
    store = SqliteCallStore(path)
    with pytest.raises(CallStoreError, match="schema version 99"):
        await store.get("HD_a")
    await store.close()


async def test_sqlite_store_use_after_close_is_a_store_error(tmp_path):
    """A closed store says so instead of quietly reopening the file."""
    store = await open_call_store(tmp_path / "calls.sqlite3")
    await store.close()
    with pytest.raises(CallStoreError, match="closed"):
        await store.save(stored_call("HD_late"))


# --- open_call_store ----------------------------------------------------------------------------


async def test_open_call_store_without_a_location_keeps_calls_in_memory():
    """None (no database configured) gives the in-memory store."""
    store = await open_call_store(None)
    assert isinstance(store, MemoryCallStore)


async def test_open_call_store_accepts_a_sqlite_url(tmp_path):
    """`sqlite:///abs/path` opens that file."""
    path = tmp_path / "by-url.sqlite3"
    store = await open_call_store(f"sqlite://{path}")
    await store.save(stored_call("HD_url"))
    await store.close()
    assert isinstance(store, SqliteCallStore)
    assert path.is_file()


async def test_open_call_store_other_urls_are_refused():
    """A URL for a store that doesn't exist here is a clear error, not a file named 'redis:'."""
    with pytest.raises(CallStoreError, match="redis://"):
        await open_call_store("redis://cache:6379/0")


# --- from_session -------------------------------------------------------------------------------


async def _finished_session(script: str, **options: object) -> CallSession:
    sessions: list[CallSession] = []
    await run_scripted_call(CALLS / script, on_call_started=sessions.append, **options)
    [session] = sessions
    return session


@pytest.mark.looptime
async def test_stored_call_from_session_summarises_a_resolved_call():
    """A returning caller's call is stored resolved, with its turns, length and masked number."""
    session = await _finished_session("returning_caller_by_phone.yaml")
    call = StoredCall.from_session(session, flow_name="order_status", stored_at=STORED_AT)
    last_ms = session.transcript.entries[-1].at_ms
    assert call.call_sid == "HD_test0001"
    assert call.caller_masked == "+2547*****678"
    assert (call.flow, call.outcome, call.final_state) == ("order_status", "resolved", "ended")
    assert call.duration_s == last_ms / 1000
    assert call.started_at == (STORED_AT - timedelta(milliseconds=last_ms)).isoformat(
        timespec="milliseconds"
    )
    assert (call.turns, call.barge_ins, call.escalation) == (2, 0, None)
    assert (call.platform_status, call.platform_cost_minor, call.platform_currency) == (None,) * 3
    assert call.transcript_text == session.transcript.render()
    assert json.loads(call.transcript_json) == session.transcript.as_dict()
    assert "+254712345678" not in call.transcript_text
    assert call.first_prompt_ms is not None
    assert call.first_prompt_ms == session.transcript.first_prompt_ms


@pytest.mark.looptime
async def test_stored_call_from_session_counts_interruptions_only():
    """A caller who cut the agent off counts one barge-in; backchannels and coughs don't count."""
    session = await _finished_session("barge_in_during_narration.yaml")
    call = StoredCall.from_session(session, flow_name="order_status", stored_at=STORED_AT)
    assert call.barge_ins == 1
    assert call.outcome == "resolved"


@pytest.mark.looptime
async def test_stored_call_from_session_takes_cost_and_start_from_the_call_record(
    aiohttp_server, tmp_path
):
    """With Sautikit's call record fetched, the call keeps its status, cost and start time."""
    state = FakeSautikitState()
    server = await aiohttp_server(sautikit_rest_app(state))
    session = await _finished_session(
        "returning_caller_by_phone.yaml",
        settings=Settings(
            sautikit_api_key="sk_test_sautikit",
            sautikit_base_url=str(server.make_url("")).rstrip("/"),
        ),
        simulator=SimulatorOptions(rest=state),
    )
    record = session.call_record
    assert record is not None
    assert record.started_at is not None
    call = StoredCall.from_session(session, flow_name="order_status", stored_at=STORED_AT)
    assert call.platform_status == "completed"
    assert call.platform_cost_minor == record.cost_minor
    assert call.platform_cost_minor is not None
    assert call.platform_cost_minor > 0
    assert call.platform_currency == "KES"
    assert call.started_at == record.started_at.astimezone(UTC).isoformat(timespec="milliseconds")

    store = await open_call_store(tmp_path / "calls.sqlite3")
    await store.save(call)
    assert await store.get(call.call_sid) == call
    await store.close()


# --- records from the webhook on: revisions, reused ids, interrupted calls ---------------------------


async def test_store_a_reused_call_id_gets_its_own_record(open_store):
    """Two calls under one call id are two records; `get` gives the later one, `recent` lists both."""
    store = await open_store()
    first = stored_call("HD_reused", record_id="r1", started_at=at_minute(1), outcome="resolved")
    second = stored_call("HD_reused", record_id="r2", started_at=at_minute(9), outcome="abandoned")
    await store.save(first)
    await store.save(second)
    assert await store.get("HD_reused") == second
    assert [c.record_id for c in await store.recent()] == ["r2", "r1"]
    assert await store.summary() == {"abandoned": 1, "resolved": 1}


async def test_store_an_older_revision_never_replaces_a_newer_one(open_store):
    """A live record replayed late (revision 2) cannot undo the call's end (revision 5)."""
    store = await open_store()
    finished = stored_call("HD_a", record_id="r1", revision=5, outcome="resolved")
    await store.save(finished)
    await store.save(stored_call("HD_a", record_id="r1", revision=2, outcome="live"))
    assert await store.get("HD_a") == finished


async def test_store_mark_interrupted_marks_only_live_records(open_store):
    """At start, records a dead process left `live` become `interrupted`; finished ones stay."""
    store = await open_store()
    await store.save(stored_call("HD_live1", outcome="live", revision=3))
    await store.save(stored_call("HD_live2", outcome="live"))
    await store.save(stored_call("HD_done", outcome="resolved"))
    assert await store.mark_interrupted() == 2
    assert await store.summary() == {"interrupted": 2, "resolved": 1}
    marked = await store.get("HD_live1")
    assert marked is not None
    assert marked.revision == 4  # so the dead process's journal cannot turn it live again
    assert await store.mark_interrupted() == 0


async def test_store_mark_interrupted_of_named_calls_leaves_the_others_live(open_store):
    """A dead worker's calls are marked; another worker's live calls in the same store are not."""
    store = await open_store()
    await store.save(stored_call("HD_dead1", outcome="live"))
    await store.save(stored_call("HD_other", outcome="live"))
    assert await store.mark_interrupted(["HD_dead1", "HD_gone"]) == 1
    assert await store.mark_interrupted([]) == 0
    assert await store.summary() == {"interrupted": 1, "live": 1}


async def test_store_a_host_starting_again_marks_its_own_live_calls_not_another_hosts(open_store):
    """Two hosts on one store: host A's start marks A's leftovers and records from before owners were
    kept, and leaves host B's live call alone."""
    host_a, host_b = await open_store(), await open_store()
    await host_a.save(stored_call("HD_a_left", record_id="a1", outcome="live", owner="host-a"))
    await host_a.save(stored_call("HD_a_done", record_id="a2", outcome="resolved", owner="host-a"))
    await host_b.save(stored_call("HD_b_live", record_id="b1", outcome="live", owner="host-b"))
    await host_b.save(stored_call("HD_old", record_id="o1", outcome="live"))  # owner None: an old row

    assert await host_a.mark_interrupted(owner="host-a") == 2
    outcomes = {c.call_sid: (c.outcome, c.owner) for c in await host_b.recent()}
    assert outcomes == {
        "HD_a_left": ("interrupted", "host-a"),
        "HD_a_done": ("resolved", "host-a"),
        "HD_b_live": ("live", "host-b"),
        "HD_old": ("interrupted", None),
    }


async def test_store_heartbeat_marks_the_live_calls_of_a_host_gone_silent(open_store):
    """Host A beats, then falls silent; host B's next beat past the silence marks A's live calls (once)
    and none of its own. A host still beating keeps its calls live."""
    host_a, host_b = await open_store(), await open_store()
    assert await host_a.heartbeat("host-a", 60) == 0
    assert await host_b.heartbeat("host-b", 60) == 0
    await host_a.save(stored_call("HD_a_live", record_id="a1", outcome="live", owner="host-a"))
    await host_b.save(stored_call("HD_b_live", record_id="b1", outcome="live", owner="host-b"))
    assert await host_b.heartbeat("host-b", 60) == 0  # A beat moments ago: alive

    await asyncio.sleep(0.3)  # A says nothing for longer than the silence allowed below
    assert await host_b.heartbeat("host-b", 0.2) == 1
    assert await host_b.heartbeat("host-b", 0.2) == 0  # A is forgotten: nothing marked twice
    a_call, b_call = await host_b.get("HD_a_live"), await host_b.get("HD_b_live")
    assert a_call is not None
    assert b_call is not None
    assert (a_call.outcome, a_call.revision) == ("interrupted", 1)
    assert b_call.outcome == "live"


async def test_store_a_host_back_from_silence_puts_its_call_right_with_its_next_write(open_store):
    """A host paused past the silence (a partition) finds its call marked; its next write (the same
    revision as the mark) is taken, and its beats make it known again."""
    host_a, host_b = await open_store(), await open_store()
    await host_a.heartbeat("host-a", 60)
    await host_a.save(stored_call("HD_a", record_id="a1", outcome="live", owner="host-a", revision=1))
    await asyncio.sleep(0.3)
    assert await host_b.heartbeat("host-b", 0.2) == 1

    assert await host_a.heartbeat("host-a", 60) == 0
    await host_a.save(stored_call("HD_a", record_id="a1", outcome="live", owner="host-a", revision=2))
    call = await host_b.get("HD_a")
    assert call is not None
    assert call.outcome == "live"
    assert await host_b.heartbeat("host-b", 60) == 0


async def save_100_from_each(stores: list[CallStore]) -> None:
    """Every store (as one worker each) saves 100 records of its own, all at the same time."""
    await asyncio.gather(
        *(
            store.save(stored_call(f"HD_w{worker}_{n:03d}", started_at=at_minute(n % 60)))
            for n in range(100)
            for worker, store in enumerate(stores)
        )
    )


async def open_old_store_from_four_workers(stores: list[CallStore]) -> StoredCall:
    """Four workers open a store from before owners were kept, at once; the old live call "HD_old" (owner
    unknown) is marked by the first host to start again, and a new record keeps its owner. The old record,
    as read after the upgrade, is returned for the dialect's own checks."""
    await asyncio.gather(*(store.open() for store in stores))
    kept = await stores[1].get("HD_old")
    assert kept is not None
    assert kept.owner is None
    assert await stores[2].mark_interrupted(owner="host-a") == 1
    await stores[3].save(stored_call("HD_new", owner="host-a"))
    new = await stores[0].get("HD_new")
    assert new is not None
    assert new.owner == "host-a"
    return kept


async def test_sqlite_store_workers_writing_one_file_at_once_lose_no_record(tmp_path):
    """Four stores (as four worker processes) save 100 records each at the same time: all 400 kept."""
    path = tmp_path / "calls.sqlite3"
    stores: list[CallStore] = [SqliteCallStore(path, busy_timeout_s=10) for _ in range(4)]
    try:
        await save_100_from_each(stores)
        assert await stores[0].summary() == {"resolved": 400}
    finally:
        for store in stores:
            await store.close()


async def test_sqlite_store_a_version_1_database_is_migrated(tmp_path):
    """A database written before records had ids keeps every call, each as its own record."""
    path = tmp_path / "calls.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE calls (call_sid TEXT PRIMARY KEY, caller_masked TEXT, flow TEXT NOT NULL,
            outcome TEXT NOT NULL, final_state TEXT NOT NULL, started_at TEXT NOT NULL,
            duration_s REAL NOT NULL, turns INTEGER NOT NULL, barge_ins INTEGER NOT NULL,
            escalation TEXT, platform_status TEXT, platform_cost_minor INTEGER, platform_currency TEXT,
            transcript_text TEXT NOT NULL, transcript_json TEXT NOT NULL);
        CREATE INDEX calls_by_time ON calls (started_at);
        INSERT INTO calls VALUES ('HD_old', NULL, 'order_status', 'resolved', 'ended',
            '2026-03-04T09:00:00.000+00:00', 12.5, 1, 0, NULL, NULL, NULL, NULL, 'text', '{}');
        PRAGMA user_version = 1;
        """
    )
    old.close()

    store = await open_call_store(path)
    try:
        call = await store.get("HD_old")
        await store.save(stored_call("HD_old", record_id="new", started_at=at_minute(30)))
        kept = await store.recent()
    finally:
        await store.close()

    assert call is not None
    assert (call.record_id, call.outcome, call.revision) == ("HD_old", "resolved", 0)
    assert [c.record_id for c in kept] == ["new", "HD_old"]


async def test_sqlite_store_adds_first_prompt_ms_to_a_version_2_database(tmp_path):
    """A file written before first_prompt_ms was kept is upgraded in place and keeps its calls."""
    path = tmp_path / "calls.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE calls (record_id TEXT PRIMARY KEY, call_sid TEXT NOT NULL, caller_masked TEXT,
            flow TEXT NOT NULL, outcome TEXT NOT NULL, final_state TEXT NOT NULL,
            started_at TEXT NOT NULL, duration_s REAL NOT NULL, turns INTEGER NOT NULL,
            barge_ins INTEGER NOT NULL, escalation TEXT, platform_status TEXT,
            platform_cost_minor INTEGER, platform_currency TEXT, transcript_text TEXT NOT NULL,
            transcript_json TEXT NOT NULL, revision INTEGER NOT NULL DEFAULT 0);
        INSERT INTO calls VALUES ('HD_old', 'HD_old', NULL, 'order_status', 'resolved', 'ended',
            '2026-03-04T09:00:00.000+00:00', 10.0, 1, 0, NULL, NULL, NULL, NULL, '', '{}', 0);
        PRAGMA user_version = 2;
        """
    )
    old.close()
    store = await open_call_store(path)
    try:
        kept = await store.get("HD_old")
        assert kept is not None
        assert kept.first_prompt_ms is None
        await store.save(stored_call("HD_new", first_prompt_ms=120))
        new = await store.get("HD_new")
        assert new is not None
        assert new.first_prompt_ms == 120
    finally:
        await store.close()


async def test_sqlite_store_adds_owners_to_a_version_3_database_opened_by_four_workers_at_once(tmp_path):
    """A file from before owners were kept is upgraded once (four workers opening it together must not
    add the column twice); its live call, owner unknown, is marked by the first host to start again."""
    path = tmp_path / "calls.sqlite3"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE calls (record_id TEXT PRIMARY KEY, call_sid TEXT NOT NULL, caller_masked TEXT,
            flow TEXT NOT NULL, outcome TEXT NOT NULL, final_state TEXT NOT NULL,
            started_at TEXT NOT NULL, duration_s REAL NOT NULL, turns INTEGER NOT NULL,
            barge_ins INTEGER NOT NULL, escalation TEXT, platform_status TEXT,
            platform_cost_minor INTEGER, platform_currency TEXT, first_prompt_ms INTEGER,
            transcript_text TEXT NOT NULL, transcript_json TEXT NOT NULL,
            revision INTEGER NOT NULL DEFAULT 0);
        INSERT INTO calls VALUES ('HD_old', 'HD_old', NULL, 'order_status', 'live', 'greeting',
            '2026-03-04T09:00:00.000+00:00', 10.0, 1, 0, NULL, NULL, NULL, NULL, 80, '', '{}', 3);
        PRAGMA user_version = 3;
        """
    )
    old.close()
    stores = [SqliteCallStore(path) for _ in range(4)]
    try:
        kept = await open_old_store_from_four_workers(stores)
        assert kept.first_prompt_ms == 80
    finally:
        await asyncio.gather(*(store.close() for store in stores))
    connection = sqlite3.connect(path)
    try:
        assert connection.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    finally:
        connection.close()
