"""`orchestrator serve` as a real process keeps every call's record through a locked database and a full disk.

Regression: a database locked past its busy timeout, or a full disk, lost 19 of 20 records while /healthz
said ok. The scenarios are bench/durability.py's, with fewer calls and shorter faults: another process holds
the SQLite write lock, or the service's file-size limit (RLIMIT_FSIZE) drops to one byte. Meanwhile /healthz
says degraded; once the fault ends every record is stored and the journal is gone.
"""

from __future__ import annotations

from bench.durability import scenario_db_locked, scenario_disk_full


async def test_record_faults_database_locked_for_seconds_loses_no_record(tmp_path):
    """Three calls while the database is locked for 6 s (busy timeout 1 s): degraded, then all stored."""
    figures = await scenario_db_locked(tmp_path, calls=3, lock_s=6)

    assert "degraded" in figures["healthz_while_locked"]
    assert figures["record_failures"] >= 1
    assert (figures["records"], figures["records_lost"]) == (3, 0)
    assert figures["journal_left"] is False


async def test_record_faults_full_disk_then_freed_loses_no_record(tmp_path):
    """Three calls while no file may grow (4 s): nothing stored, degraded; once freed, all stored."""
    figures = await scenario_disk_full(tmp_path, calls=3, full_s=4)

    assert "degraded" in figures["healthz_while_full"]
    assert figures["records_in_db_while_full"] == 0
    assert (figures["records"], figures["records_lost"]) == (3, 0)
