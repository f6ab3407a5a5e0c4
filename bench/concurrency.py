"""Concurrency benchmark: many calls in one process, on the real clock. Prints one JSON object.

Each level runs N scripted calls at once against ONE service (webhook, media socket, 20 ms caller frames, paced agent audio, an
orders lookup over HTTP, barge-in detection) with the fake Sautikit in the same process — so the figures are for
both sides together, a pessimistic bound for the service alone. Per level:

  calls_ok               calls that ended with the expected outcome
  loop_lag_ms            how late a 10 ms timer fires on the shared event loop (p50, p99, max)
  agent_frame_gap_ms     gaps between agent audio frames arriving at the platform while the agent speaks
                         (20 ms is perfect pacing; p99 and max show stutter)
  cpu_s_per_call_minute  process CPU seconds per minute of call audio

    python bench/concurrency.py [--levels 5,20,40]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import statistics
import time

from orchestrator.app import ORCHESTRATOR, create_app, serve_on_loopback
from orchestrator.brains.scripted import ScriptedBrain
from orchestrator.call.session import CallSession
from orchestrator.logging import configure_logging
from orchestrator.script import load_script
from orchestrator.settings import Settings
from orchestrator.simulator import FakeSautikit

SCRIPT = load_script("fixtures/calls/returning_caller_by_phone.yaml")


async def _lag_monitor(samples: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        started = loop.time()
        await asyncio.sleep(0.010)
        samples.append((loop.time() - started - 0.010) * 1000)


def _stats(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "max": None}
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 2),
        "p99": round(ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))], 2),
        "max": round(ordered[-1], 2),
    }


async def _level(calls: int) -> dict[str, object]:
    """One service, `calls` simultaneous callers."""
    settings = Settings(orders="demo")  # the embedded demo orders, chosen explicitly
    app = create_app(settings, brain_factory=lambda start: ScriptedBrain(SCRIPT))
    lag: list[float] = []
    stop = asyncio.Event()
    async with serve_on_loopback(app) as base:
        orchestrator = app[ORCHESTRATOR]
        orchestrator.settings = settings.model_copy(update={"public_url": base})
        sessions: dict[str, CallSession] = {}  # finished calls leave the live map soon after their end
        orchestrator.on_call_started.append(lambda s: sessions.setdefault(s.call_sid, s))
        monitor = asyncio.get_running_loop().create_task(_lag_monitor(lag, stop))
        cpu0, wall0 = time.process_time(), time.perf_counter()
        platforms = await asyncio.gather(
            *(FakeSautikit(base).call(SCRIPT, call_sid=f"HD_load{n:04d}") for n in range(calls)),
            return_exceptions=True,
        )
        for sid in [f"HD_load{n:04d}" for n in range(calls)]:
            session = sessions.get(sid)
            if session is not None:
                await asyncio.wait_for(session.finished.wait(), timeout=30)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        stop.set()
        await monitor
        records = [
            (p, sessions[f"HD_load{n:04d}"].transcript)
            if not isinstance(p, BaseException)
            else p
            for n, p in enumerate(platforms)
        ]
    ok = [r for r in records if not isinstance(r, BaseException) and r[1].outcome == "resolved"]
    gaps: list[float] = []
    audio_s = 0.0
    for platform, _ in ok:
        arrivals = platform.agent_frame_arrivals
        gaps.extend((b - a) * 1000 for a, b in itertools.pairwise(arrivals) if b - a < 0.5)
        audio_s += len(platform.caller_track) / (2 * 16000)
    return {
        "calls": calls,
        "calls_ok": len(ok),
        "errors": [repr(r) for r in records if isinstance(r, BaseException)][:3],
        "wall_s": round(wall, 1),
        "loop_lag_ms": _stats(lag),
        "agent_frame_gap_ms": _stats(gaps),
        "cpu_s_per_call_minute": round(cpu / (audio_s / 60), 3) if audio_s else None,
    }


async def _run(levels: list[int]) -> dict[str, object]:
    return {"levels": [await _level(n) for n in levels]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--levels", default="5,20,40", help="comma-separated numbers of simultaneous calls")
    args = parser.parse_args()
    configure_logging(json=True, level=logging.WARNING)  # stdout carries the JSON figures only
    print(json.dumps(asyncio.run(_run([int(n) for n in args.levels.split(",")]))))


if __name__ == "__main__":
    main()
