"""The PostgreSQL call store as several workers on several hosts use it: all at once, on one server.

Every test has a schema of its own on the test server (tests/postgres.py); the behaviour every store
shares (get, recent, summary, revisions, mark_interrupted) is tested for PostgreSQL in test_store.py.
"""

import asyncio
import random

import asyncpg
import pytest

from orchestrator.call.postgres_store import PostgresCallStore
from orchestrator.call.store import CallStore, CallStoreError, open_call_store
from tests.postgres import POSTGRES_URL
from tests.unit.call.test_store import (
    open_old_store_from_four_workers,
    save_100_from_each,
    stored_call,
)


async def _close_all(stores: list[PostgresCallStore]) -> None:
    await asyncio.gather(*(store.close() for store in stores))


async def test_postgres_store_workers_starting_together_create_the_schema_once(postgres_url):
    """Eight workers opening a fresh schema at the same moment all start; the schema is made once."""
    stores = [PostgresCallStore(postgres_url) for _ in range(8)]
    try:
        await asyncio.gather(*(store.open() for store in stores))
        await stores[3].save(stored_call("HD_one"))
        assert await stores[6].get("HD_one") == stored_call("HD_one")
    finally:
        await _close_all(stores)
    admin = await asyncpg.connect(postgres_url)
    try:
        # The oldest schema that still writes the table: version 4 only added what version 3 ignores.
        assert await admin.fetch("SELECT version FROM calls_schema") == [(3,)]
    finally:
        await admin.close()


async def test_postgres_store_workers_writing_at_once_lose_no_record(postgres_url):
    """Four stores (as four workers) save 100 records each at the same time: all 400 kept."""
    stores: list[CallStore] = [PostgresCallStore(postgres_url) for _ in range(4)]
    try:
        await save_100_from_each(stores)
        assert await stores[0].summary() == {"resolved": 400}
        assert len(await stores[1].recent(limit=1000)) == 400
    finally:
        await _close_all(stores)


async def test_postgres_store_revisions_from_several_workers_keep_the_newest(postgres_url):
    """Revisions 1-30 of one record saved by four workers in a shuffled order: the store keeps 30."""
    stores = [PostgresCallStore(postgres_url) for _ in range(4)]
    revisions = list(range(1, 31))
    random.Random(13).shuffle(revisions)
    try:
        await asyncio.gather(
            *(
                stores[n % 4].save(
                    stored_call("HD_a", record_id="r1", revision=revision, final_state=f"s{revision}")
                )
                for n, revision in enumerate(revisions)
            )
        )
        kept = await stores[0].get("HD_a")
    finally:
        await _close_all(stores)
    assert kept is not None
    assert (kept.revision, kept.final_state) == (30, "s30")


async def test_postgres_store_workers_marking_one_dead_workers_calls_mark_each_once(postgres_url):
    """Every surviving worker sees the dead one's calls at once: each record is marked once, not thrice."""
    stores = [PostgresCallStore(postgres_url) for _ in range(3)]
    try:
        await stores[0].save(stored_call("HD_dead1", outcome="live", revision=2))
        await stores[0].save(stored_call("HD_dead2", outcome="live", revision=2))
        marked = await asyncio.gather(
            *(store.mark_interrupted(["HD_dead1", "HD_dead2"]) for store in stores)
        )
        call = await stores[1].get("HD_dead1")
    finally:
        await _close_all(stores)
    assert sum(marked) == 2
    assert call is not None
    assert (call.outcome, call.revision) == ("interrupted", 3)


async def test_postgres_store_takes_writes_again_after_the_server_drops_its_connections(postgres_url):
    """A server restart (connections terminated): one save fails, the next reconnects and succeeds."""
    name = f"drop-{id(postgres_url)}"
    store = await open_call_store(f"{postgres_url}&application_name={name}")
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await store.save(stored_call("HD_before"))
        await admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1", name
        )
        outcomes = []
        for n in range(3):  # CallRecords retries the same way
            try:
                await store.save(stored_call(f"HD_after{n}"))
            except CallStoreError:
                outcomes.append("refused")
            else:
                outcomes.append("saved")
        assert outcomes[-1] == "saved"
        assert "HD_after2" in {call.call_sid for call in await store.recent()}
    finally:
        await admin.close()
        await store.close()


async def test_postgres_store_a_newer_schema_is_refused(postgres_url):
    """A schema written by a newer orchestrator is not read with this one's queries."""
    store = await open_call_store(postgres_url)
    await store.close()
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute("UPDATE calls_schema SET version = 99")
    finally:
        await admin.close()
    with pytest.raises(CallStoreError, match="schema version 99"):
        await open_call_store(postgres_url)


async def test_postgres_store_unreachable_server_is_a_store_error_without_the_password():
    """Nothing listening: a CallStoreError at open, naming the URL with its password starred."""
    with pytest.raises(CallStoreError) as refused:
        await open_call_store("postgresql://orchestrator:s3cret@127.0.0.1:9/calls")
    assert "postgresql://orchestrator:***@127.0.0.1:9/calls" in str(refused.value)
    assert "s3cret" not in str(refused.value)


async def test_postgres_store_use_after_close_is_a_store_error(postgres_url):
    """A closed store says so instead of quietly opening a new pool."""
    store = await open_call_store(postgres_url)
    await store.close()
    with pytest.raises(CallStoreError, match="closed"):
        await store.save(stored_call("HD_late"))


async def test_open_call_store_picks_postgres_for_both_url_schemes(postgres_url):
    """`postgresql://` and `postgres://` both open the PostgreSQL store, on the same table."""
    first = await open_call_store(postgres_url)
    second = await open_call_store(postgres_url.replace("postgresql://", "postgres://", 1))
    try:
        assert isinstance(first, PostgresCallStore)
        assert isinstance(second, PostgresCallStore)
        await first.save(stored_call("HD_shared"))
        assert await second.get("HD_shared") == stored_call("HD_shared")
    finally:
        await first.close()
        await second.close()


# The table as version 3 made it: no owner column, no calls_hosts.
_VERSION_3_TABLE = """
CREATE TABLE calls (record_id TEXT PRIMARY KEY, call_sid TEXT NOT NULL, caller_masked TEXT,
    flow TEXT NOT NULL, outcome TEXT NOT NULL, final_state TEXT NOT NULL,
    started_at TEXT COLLATE "C" NOT NULL, duration_s DOUBLE PRECISION NOT NULL, turns INTEGER NOT NULL,
    barge_ins INTEGER NOT NULL, escalation TEXT, platform_status TEXT, platform_cost_minor BIGINT,
    platform_currency TEXT, first_prompt_ms INTEGER, transcript_text TEXT NOT NULL,
    transcript_json TEXT NOT NULL, revision INTEGER NOT NULL DEFAULT 0,
    saved BIGINT GENERATED ALWAYS AS IDENTITY);
CREATE TABLE calls_schema (version INTEGER NOT NULL);
INSERT INTO calls_schema VALUES (3);
INSERT INTO calls (record_id, call_sid, flow, outcome, final_state, started_at, duration_s, turns,
    barge_ins, transcript_text, transcript_json, revision)
VALUES ('HD_old', 'HD_old', 'order_status', 'live', 'greeting', '2026-03-04T09:00:00.000+00:00',
    10.0, 1, 0, '', '{}', 2);
"""


async def test_postgres_store_a_version_3_table_gains_owners_and_old_hosts_may_still_start(postgres_url):
    """A store from before owners were kept: four workers opening it at once add the column once; its
    live call (owner unknown) is marked by the first host to start again; the version row stays 3, so
    hosts not yet upgraded still start during a rolling upgrade."""
    admin = await asyncpg.connect(postgres_url)
    try:
        await admin.execute(_VERSION_3_TABLE)
        stores = [PostgresCallStore(postgres_url) for _ in range(4)]
        try:
            kept = await open_old_store_from_four_workers(stores)
            assert kept.revision == 2
        finally:
            await _close_all(stores)
        assert await admin.fetch("SELECT version FROM calls_schema") == [(3,)]
    finally:
        await admin.close()


async def test_postgres_store_two_hosts_sweeping_a_silent_host_at_once_mark_its_calls_once(postgres_url):
    """Hosts B and C both beat past A's silence at the same moment: A's two calls are marked once each."""
    host_a, host_b, host_c = (PostgresCallStore(postgres_url) for _ in range(3))
    try:
        await host_a.heartbeat("host-a", 60)
        for n in range(2):
            await host_a.save(stored_call(f"HD_a{n}", record_id=f"a{n}", outcome="live", owner="host-a"))
        await asyncio.sleep(0.3)
        marked = await asyncio.gather(host_b.heartbeat("host-b", 0.2), host_c.heartbeat("host-c", 0.2))
        call = await host_b.get("HD_a0")
    finally:
        await _close_all([host_a, host_b, host_c])
    assert sorted(marked) in ([0, 2], [1, 1])  # whoever got there first; never 4
    assert sum(marked) == 2
    assert call is not None
    assert (call.outcome, call.revision) == ("interrupted", 1)


async def _backends(application_name: str) -> int:
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        return int(
            await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", application_name
            )
        )
    finally:
        await admin.close()


async def test_postgres_store_holds_no_more_connections_than_its_pool_size(postgres_url):
    """ORCHESTRATOR_CALLS_DB_POOL_SIZE=1: twenty saves at once all land, over one server connection
    (fifty workers x 4 would exceed the server's default max_connections of 100)."""
    name = f"pool-{id(postgres_url)}"
    store = await open_call_store(f"{postgres_url}&application_name={name}", pool_size=1)
    try:
        await asyncio.gather(*(store.save(stored_call(f"HD_{n}", record_id=f"r{n}")) for n in range(20)))
        assert await _backends(name) == 1
        assert await store.summary() == {"resolved": 20}
    finally:
        await store.close()


async def _prepared_statements_kept(store: PostgresCallStore) -> int:
    # Asked on the store's own connection: prepared statements are per session.
    return int(
        await store._run(  # noqa: SLF001 - the only way onto the pool's session
            lambda connection: connection.fetchval("SELECT count(*) FROM pg_prepared_statements")
        )
    )


async def test_postgres_store_statement_cache_size_0_in_the_url_keeps_no_prepared_statements(postgres_url):
    """Behind PgBouncer's transaction pooling a named prepared statement may be missing on the next
    transaction's server connection: `statement_cache_size=0` in the URL makes asyncpg keep none. The
    parameter is the store's, not sent to the server (which would refuse an unknown setting)."""
    cached = PostgresCallStore(postgres_url, pool_size=1)
    uncached = PostgresCallStore(f"{postgres_url}&statement_cache_size=0", pool_size=1)
    try:
        for store in (cached, uncached):
            await store.save(stored_call("HD_a"))
            assert await store.get("HD_a") == stored_call("HD_a")
        assert await _prepared_statements_kept(cached) > 0
        assert await _prepared_statements_kept(uncached) == 0
    finally:
        await _close_all([cached, uncached])


async def test_postgres_store_a_statement_cache_size_that_is_not_a_number_is_a_store_error(postgres_url):
    """A typo in the URL stops the service at start with a message naming the parameter."""
    with pytest.raises(CallStoreError, match="statement_cache_size='off' is not a number"):
        PostgresCallStore(f"{postgres_url}&statement_cache_size=off")
