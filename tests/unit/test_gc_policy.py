"""The service's GC policy: the start-up heap frozen, long collections timed and logged."""

from __future__ import annotations

import gc

from aiohttp import web
from structlog.testing import capture_logs

from orchestrator.gc_policy import GcPauseWatch, freeze_startup_heap, gc_policy


def test_freeze_startup_heap_takes_surviving_objects_out_of_later_collections():
    """After the freeze, objects that exist now are no longer walked by collections."""
    try:
        frozen = freeze_startup_heap()
        assert frozen > 1000
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def test_gc_pause_watch_times_every_collection_and_logs_the_long_ones():
    """Each collection is counted per generation; one over the threshold is logged as gc_pause."""
    watch = GcPauseWatch(log_over_ms=0.0).install()
    try:
        with capture_logs() as logs:
            gc.collect()
    finally:
        watch.uninstall()
    assert watch.collections[2] == 1
    assert watch.longest_ms[2] > 0
    pauses = [entry for entry in logs if entry["event"] == "gc_pause"]
    assert pauses[0]["generation"] == 2
    assert pauses[0]["log_level"] == "warning"


def test_gc_pause_watch_stays_quiet_under_its_threshold():
    """Collections shorter than the threshold are counted, not logged."""
    watch = GcPauseWatch(log_over_ms=10_000.0).install()
    try:
        with capture_logs() as logs:
            gc.collect()
    finally:
        watch.uninstall()
    assert watch.collections[2] == 1
    assert [entry for entry in logs if entry["event"] == "gc_pause"] == []


async def test_gc_policy_freezes_after_the_app_starts_and_stops_watching_when_it_ends():
    """As a cleanup context: heap frozen and collections watched while the app runs, only then."""
    app = web.Application()
    app.cleanup_ctx.append(gc_policy(freeze=True))
    callbacks = len(gc.callbacks)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        assert gc.get_freeze_count() > 1000
        assert len(gc.callbacks) == callbacks + 1
    finally:
        await runner.cleanup()
        gc.unfreeze()
    assert len(gc.callbacks) == callbacks
