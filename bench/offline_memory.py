"""Memory of the offline brain: RSS over many sequential and concurrent calls. Prints one JSON object.

    python bench/offline_memory.py [--sequential 100] [--concurrent 20]

Each call goes through the real service (webhook, media socket, the offline cascade brain with pocketsphinx
and espeak-ng, the embedded orders API) with a flite caller who reads out an order number, confirms it and
says goodbye. The loop runs on a fast-forwarded clock (looptime), so a call's silences cost no wall time,
while decoding and synthesis still run for real in worker threads. Reported, in MB of resident memory
(VmRSS): after start-up, after the first call, after every tenth sequential call, the growth per call over
the sequential run, and the peak and settled RSS around a batch of concurrent calls.

The grammar decoders run in child processes (forked from a fork server, decision 0014), outside the service's
own RSS, so `with_decoder_processes` adds them: the same moments, as the PSS of the service and every process
it started (shared pages counted once), and how many processes that was.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import looptime  # noqa: E402

from orchestrator.brains.cascade import make_offline_brain_factory  # noqa: E402
from orchestrator.brains.scripted import ScriptedBrain  # noqa: E402
from orchestrator.flow import load_flow  # noqa: E402
from orchestrator.harness import place_call  # noqa: E402
from orchestrator.logging import configure_logging  # noqa: E402
from orchestrator.script import CallScript  # noqa: E402
from orchestrator.settings import Settings  # noqa: E402
from orchestrator.simulator import SimulatorOptions  # noqa: E402
from orchestrator.speech.voices import caller_voice  # noqa: E402

SCRIPT = CallScript.model_validate(
    {
        "title": "memory: number, yes, goodbye",
        "caller": "+254722000111",
        "turns": [
            {"caller": "Hello, my order number is P K two zero nine three one."},
            {"caller": "Yes."},
            {"caller": "No thanks, goodbye."},
        ],
    }
)


# The control's agent side: what the offline brain says in the same call, replayed with no decoding.
CONTROL = CallScript.model_validate(
    {
        "title": "memory control: number, yes, goodbye",
        "caller": "+254722000111",
        "turns": [
            {"agent": [{"say": "Please tell me your order number."}]},
            {"caller": "Hello, my order number is P K two zero nine three one."},
            {"agent": [{"say": "Order P K two zero nine three one, is that right?"}]},
            {"caller": "Yes."},
            {"agent": [{"tool": "lookup_order", "args": {"order_number": "PK20931"}},
                       {"say": "It is dispatched. Anything else?"}]},
            {"caller": "No thanks, goodbye."},
            {"agent": [{"say": "Goodbye."}, {"tool": "end_call"}]},
        ],
    }
)


def rss_mb() -> float:
    """This process's resident set size, from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmRSS in /proc/self/status")


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (the fork server and the decoders it forked), from /proc."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found += [child, *_descendants(child)]
    return found


def _pss_mb(pid: int | str) -> float:
    """A process's proportional set size in MB (its private pages, plus its share of shared ones); 0 if gone."""
    try:
        lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return 0.0
    return next((int(line.split()[1]) / 1024 for line in lines if line.startswith("Pss:")), 0.0)


def total_mb() -> dict[str, float]:
    """PSS of this process and all it started, with the count of those processes."""
    others = _descendants(os.getpid())
    total = _pss_mb("self") + sum(_pss_mb(pid) for pid in others)
    return {"pss_mb": round(total, 1), "processes": 1 + len(others)}


async def _one(factory, flow, sid: str, script: CallScript) -> str | None:  # type: ignore[no-untyped-def]
    record = await place_call(
        script,
        flow=flow,
        settings=Settings(fallback_voice="synthetic", transcripts_dir=None),
        brain_factory=factory,
        simulator=SimulatorOptions(voice=caller_voice("slt")),
        call_sid=sid,
        call_timeout_s=120.0,
    )
    return record.transcript.outcome


async def run(sequential: int, concurrent: int, brain: str = "offline") -> dict[str, object]:
    flow = load_flow(ROOT / "flows" / "order_status.yaml")
    # "scripted" is the control: the same calls through the same harness without any speech decoding.
    factory = (
        make_offline_brain_factory(flow)
        if brain == "offline"
        else (lambda start: ScriptedBrain(CONTROL))
    )
    script = SCRIPT if brain == "offline" else CONTROL
    started = rss_mb()
    totals: dict[str, dict[str, float]] = {"start": total_mb()}
    outcomes: dict[str, int] = {}
    samples: dict[str, float] = {}
    wall = time.perf_counter()
    for index in range(sequential):
        outcome = await _one(factory, flow, f"HDmemseq{index:04d}", script)
        outcomes[str(outcome)] = outcomes.get(str(outcome), 0) + 1
        if index == 0 or (index + 1) % 10 == 0:
            samples[str(index + 1)] = rss_mb()
            totals[str(index + 1)] = total_mb()
            print(f"{index + 1} calls: {samples[str(index + 1)]} MB", file=sys.stderr, flush=True)
    sequential_s = time.perf_counter() - wall
    after_sequential = rss_mb()
    totals["after_sequential"] = total_mb()
    first = samples.get("1", started)
    peak = after_sequential
    total_peak = totals["after_sequential"]
    stop = asyncio.Event()

    async def watch() -> None:
        nonlocal peak, total_peak
        while not stop.is_set():
            peak = max(peak, rss_mb())
            now = total_mb()
            total_peak = now if now["pss_mb"] > total_peak["pss_mb"] else total_peak
            await asyncio.sleep(0.05)

    watcher = asyncio.get_running_loop().create_task(watch())
    batch = await asyncio.gather(
        *(_one(factory, flow, f"HDmemcon{index:04d}", script) for index in range(concurrent)),
        return_exceptions=True,
    )
    stop.set()
    await watcher
    for outcome in batch:
        key = type(outcome).__name__ if isinstance(outcome, BaseException) else str(outcome)
        outcomes[key] = outcomes.get(key, 0) + 1
    return {
        "rss_mb": {
            "start": started,
            "after_first_call": first,
            "sequential_samples": samples,
            "after_sequential": after_sequential,
            "concurrent_peak": peak,
            "after_concurrent": rss_mb(),
        },
        "with_decoder_processes": {**totals, "concurrent_peak": total_peak, "after_concurrent": total_mb()},
        "growth_per_sequential_call_mb": round(
            (after_sequential - first) / max(1, sequential - 1), 2
        ),
        "peak_per_concurrent_call_mb": round((peak - after_sequential) / max(1, concurrent), 2),
        "sequential_calls": sequential,
        "concurrent_calls": concurrent,
        "outcomes": outcomes,
        "sequential_wall_s": round(sequential_s, 1),
        "brain": brain,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequential", type=int, default=100)
    parser.add_argument("--concurrent", type=int, default=20)
    parser.add_argument("--brain", choices=("offline", "scripted"), default="offline",
                        help="scripted: the control, the same calls without speech decoding")
    args = parser.parse_args()
    configure_logging(json=True, level=logging.ERROR)  # stdout carries the JSON figures only
    loop = looptime.new_event_loop(start=0.0)
    try:
        result = loop.run_until_complete(run(args.sequential, args.concurrent, args.brain))
    finally:
        loop.close()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
