"""GC benchmark: a full collection's cost with finished calls kept or let go, heap frozen or not.

Serves the app in this process with the bench brain, places `--calls` short calls over real
loopback sockets, and then times full collections (`gc.collect()`, CPU time of this thread, so other
work on a busy machine does not count) in these states of the heap:

  start_up                 the app started, a few calls made, none kept
  kept                     every finished call still referenced, as the old 600 s retention did
  released                 finished calls dropped (the live map forgets them after a short grace)
  *_startup_frozen         the same after `gc.freeze()` of the start-up heap, as `serve` does

and prints one JSON object: tracked objects and full-collection CPU ms (median of `--repeat`) per
state. Calls are stored in SQLite, as under `serve`.

    python bench/gc_heap.py [--calls 200] [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path

from orchestrator.app import ORCHESTRATOR, create_app, serve_on_loopback
from orchestrator.brains.bench import BenchBrain
from orchestrator.call.session import CallSession
from orchestrator.gc_policy import freeze_startup_heap
from orchestrator.logging import configure_logging
from orchestrator.script import CallScript
from orchestrator.settings import Settings
from orchestrator.simulator import FakeSautikit, SimulatorOptions

SCRIPT = CallScript.model_validate(
    {
        "title": "gc",
        "caller": "+254712345678",
        "turns": [{"caller": "Where is my order?"}, {"caller": "Thanks."}, {"hangup": None}],
    }
)


def _full_collection_ms(repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        began = time.thread_time()
        gc.collect()
        samples.append((time.thread_time() - began) * 1000)
    return round(statistics.median(samples), 2)


def _state(repeat: int) -> dict[str, float | int]:
    """Objects a full collection walks (frozen ones are not), and its CPU time."""
    return {"tracked_objects": len(gc.get_objects()), "full_gc_cpu_ms": _full_collection_ms(repeat)}


async def _place(base: str, calls: int, tag: str) -> None:
    options = SimulatorOptions(say_ms_per_char=1)
    for first in range(0, calls, 50):  # 50 at a time: quick, and the loop stays responsive
        await asyncio.gather(
            *(
                FakeSautikit(base, options=options).call(SCRIPT, call_sid=f"HD_{tag}{n:05d}")
                for n in range(first, min(calls, first + 50))
            )
        )
    await asyncio.sleep(0.5)  # after-call work (the store) done


async def _run(calls: int, repeat: int, db: Path) -> dict[str, object]:
    settings = Settings(calls_db=str(db))  # the store `serve` uses: SQLite, not the heap
    app = create_app(settings, brain_factory=lambda start: BenchBrain(reply_ms=400))
    finished: list[CallSession] = []
    figures: dict[str, object] = {}
    async with serve_on_loopback(app) as base:
        orchestrator = app[ORCHESTRATOR]
        orchestrator.settings = orchestrator.settings.model_copy(update={"public_url": base})
        orchestrator.on_call_started.append(finished.append)
        await _place(base, 5, "warm")
        finished.clear()
        orchestrator.sessions.clear()
        figures["start_up"] = _state(repeat)
        # The old policy: nothing frozen, finished calls kept (600 s in the live map).
        await _place(base, calls, "a")
        orchestrator.sessions.clear()  # only `finished` keeps them now
        figures["kept"] = _state(repeat)
        finished.clear()
        figures["released"] = _state(repeat)
        # The new policy: the start-up heap frozen, finished calls let go soon after their end.
        freeze_startup_heap()
        await _place(base, calls, "b")
        orchestrator.sessions.clear()
        figures["kept_startup_frozen"] = _state(repeat)
        finished.clear()
        figures["released_startup_frozen"] = _state(repeat)
        gc.unfreeze()
    figures["calls"] = calls
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    configure_logging(json=True, level=logging.WARNING)  # stdout carries the JSON figures only
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(asyncio.run(_run(args.calls, args.repeat, Path(tmp) / "calls.sqlite3"))))


if __name__ == "__main__":
    main()
