"""Whose records are whose: a host's owner id, and its heartbeat in the store (orchestrator/call/owners.py).

What the heartbeat marks is tested on every store in test_store.py; two `serve` processes on one
PostgreSQL store in tests/wire/test_postgres_calls.py.
"""

import socket

import pytest
from pydantic import ValidationError

from orchestrator.call.owners import HostHeartbeat, owner_id
from orchestrator.call.store import MemoryCallStore, open_call_store
from orchestrator.settings import Settings
from tests.unit.call.test_store import stored_call


def test_owner_id_is_the_host_id_else_the_hostname_and_names_a_supervised_workers_slot():
    assert owner_id("db-eu-2") == "db-eu-2"
    assert owner_id("db-eu-2", "1") == "db-eu-2/1"
    assert owner_id(None) == socket.gethostname()
    assert owner_id("  ", "0") == f"{socket.gethostname()}/0"


def test_settings_refuse_a_host_ttl_no_longer_than_the_heartbeat():
    """A live host beating every 10 s would read as gone if 10 s of silence were allowed."""
    with pytest.raises(ValidationError, match="host_ttl_s must be longer"):
        Settings(host_heartbeat_s=10, host_ttl_s=10)


async def test_host_heartbeat_beats_at_start_and_marks_a_silent_hosts_calls():
    store = MemoryCallStore()
    await store.heartbeat("host-a", 60)
    await store.save(stored_call("HD_a", outcome="live", owner="host-a"))
    beat = HostHeartbeat(store, "host-b", heartbeat_s=0.05, silent_after_s=0)
    await beat.start()  # A's beat is older than no silence at all
    await beat.close()
    call = await store.get("HD_a")
    assert call is not None
    assert call.outcome == "interrupted"


async def test_host_heartbeat_on_a_store_that_refuses_logs_and_goes_on(tmp_path):
    """The store down (here: closed) must not stop the service: the beat is logged and tried again."""
    store = await open_call_store(tmp_path / "calls.sqlite3")
    await store.close()
    beat = HostHeartbeat(store, "host-a", heartbeat_s=60, silent_after_s=120)
    assert await beat.beat() == 0
