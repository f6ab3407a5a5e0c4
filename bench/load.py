"""Load benchmark: N concurrent calls against `orchestrator serve` over real sockets; prints JSON.

The service runs as a real subprocess (`orchestrator serve --brain bench --log-level warning`):
the bench brain answers 200 ms after the caller stops with a fixed-length tone, a zero-latency
stand-in for an LLM. This process is the platform: it places the calls with the fake Sautikit
(orchestrator/simulator), starting them evenly over the ramp, each a conversation of `--turns`
caller lines, one of which talks over the agent's reply (a barge-in that must cut it off). CPU and
memory are read from /proc for the server and from this process for the load generator, over a
window in which every call is live.

Figures, per level:
  calls, calls_placed    concurrent calls; calls placed in all (more than `calls` when soaking)
  calls_ok               calls whose script ran to the caller's hang-up, every line answered
  turn_latency_ms        platform clock: caller's last speech frame -> agent's first audible frame, counted
                         in the platform's 20 ms play-out ticks (so a multiple of 20 ms)
  turn_latency_exact_ms  the same turns, not rounded to a tick: the brain's 200 ms of caller silence (audio
                         time) plus the wall time from the frame that completed it leaving the platform to
                         the reply's first audible frame reaching it, before it waits for its play-out tick
                         (so a platform late in sending the silence does not count; docs/scaling.md)
  reply_lag_ms           turn latency minus the bench brain's own 200 ms: what service, sockets add
  replies_late           replies whose lag exceeds 100 ms
  bargein_to_kill_ms     the barge-in line's first audio leaves the platform -> killAudio arrives
  kills_before_the_bargein  killAudio before the barge-in line: the agent paused for no caller
  resumed_after_bargein  barge-ins taken for a backchannel (the agent carried on): should be 0
  underrun_ratio         silent frames inside an agent reply / frames of reply played
  server                 cores busy, RSS MB, per call, in the window; GC pauses of 20 ms or more
                         (wall, and the collector's own CPU); CPU ms per call over the whole run (a
                         call's work is fixed by its script: comparable even on a busy machine)
  generator              the platform's cores (this process and its --platforms processes), loop lag and
                         share of media ticks a frame or more late (is the platform itself keeping up?)
  workers                with --workers N: each worker's pid, cores, RSS and live calls (from /healthz)
  redis                  with --workers N: commands Redis processed, per live call per second in the
                         window and per call over the run (a throwaway redis-server of the bench's own)

    python bench/load.py [--levels 50,100] [--ramp 10] [--turns 5] [--workers 2] [--ticks shared]

The platform ticks each call's media on its own 20 ms clock, from when its stream opened (--ticks shared puts
every call on one clock, as a media server's single timer does: one loop wake-up per tick for all calls, but
on 2 cores every call's frame then lands in the same loop turn, and the idle runs in docs/scaling.md measured
it slightly worse, so per-call is the default).

With --workers N the server is `serve --workers N` sharing calls through a redis-server the bench
starts on a free port (nothing else uses it, so its command count is the service's alone).

With --platforms P the calls are placed from P processes (call i from process i mod P), each with its own
event loop, as a media server spreads its sessions over threads: one Python loop carrying 400 calls' 20 ms
ticks is itself late on a third of them, and its lateness is counted as the service's (docs/scaling.md).

Other work on the machine shares its cores: figures from a busy box are noisy; compare runs taken
back to back.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import multiprocessing
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import cache
from multiprocessing.connection import Connection
from pathlib import Path

import aiohttp
import numpy as np
import redis.asyncio as redis

from orchestrator.audio.synth import synthesize_speech
from orchestrator.logging import configure_logging
from orchestrator.script import CallScript
from orchestrator.simulator import FakeSautikit, SimulatedCall, SimulatorOptions

ROOT = Path(__file__).resolve().parents[1]
RATE = 16000
FRAME_BYTES = 640
BRAIN_SILENCE_MS = 200  # the bench brain answers after this much caller silence
LATE_REPLY_MS = 100
AUDIBLE_RMS = 200.0  # the fake platform's own threshold for an audible agent frame
LINES = (
    "Where is my order please?",
    "It is order D X one zero four two.",
    "And when will the rider get here?",
    "Can you send me an SMS too?",
    "Is the rider on a motorbike?",
    "Thank you, that is all.",
)
BARGE_IN = "Wait, sorry, which order is that?"


@cache
def _voice(text: str, rate: int) -> bytes:
    return synthesize_speech(text, rate=rate)


def _script(turns: int) -> CallScript:
    """`turns` caller lines; the middle one talks over the agent's reply half a second in."""
    lines: list[dict[str, object]] = []
    for index in range(turns):
        if index == turns // 2:
            lines.append({"caller": BARGE_IN, "barge_in_after_ms": 500})
        else:
            lines.append({"caller": LINES[index % len(LINES)]})
    lines.append({"hangup": None})  # once the last reply has played
    return CallScript.model_validate({"title": "load", "caller": "+254712345678", "turns": lines})


# --- what the platform heard ----------------------------------------------------------------------


def _frame_power(track: bytearray) -> np.ndarray:
    frames = len(track) // FRAME_BYTES
    if frames == 0:  # a call whose stream never ticked (refused, or closed at once under overload)
        return np.zeros(0)
    samples = np.frombuffer(bytes(track[: frames * FRAME_BYTES]), dtype="<i2").astype(np.float64)
    return np.sqrt(np.mean(np.square(samples.reshape(frames, -1)), axis=1))


def _runs(mask: np.ndarray, bridge: int) -> list[tuple[int, int]]:
    """[start, end) of True runs, with gaps of at most `bridge` frames closed."""
    runs: list[tuple[int, int]] = []
    for index in np.flatnonzero(mask).tolist():
        if runs and index - runs[-1][1] <= bridge:
            runs[-1] = (runs[-1][0], index + 1)
        else:
            runs.append((index, index + 1))
    return runs


def _turns_heard(call: SimulatedCall) -> tuple[list[float], int, int, int, list[float]]:
    """(turn latencies ms, replies, underrun frames, reply frames) on the platform's 20 ms clock, and the
    exact turn latencies (ms: the brain's silence, then the frame completing it sent -> the reply arrived)."""
    caller = _frame_power(call.caller_track) > 0
    agent = _frame_power(call.agent_track) >= AUDIBLE_RMS
    caller_turns = _runs(caller, bridge=15)  # pauses inside a sentence stay one turn
    latencies: list[float] = []
    exact: list[float] = []
    sent_at, arrived_at = call.caller_frame_sent_at, call.agent_frame_arrived_at
    underruns = reply_frames = 0
    for index, (_, end) in enumerate(caller_turns):
        limit = caller_turns[index + 1][0] if index + 1 < len(caller_turns) else len(agent)
        heard = np.flatnonzero(agent[end:limit])
        if heard.size == 0:
            continue
        latencies.append(float(heard[0]) * 20)
        first = end + int(heard[0])
        completed = end - 1 + BRAIN_SILENCE_MS // 20  # the frame after which the brain had its silence
        if completed < len(sent_at) and first < len(arrived_at):
            # A reply already waiting when the caller stopped (it arrived earlier) was heard at once: 0.
            waited = BRAIN_SILENCE_MS + (arrived_at[first] - sent_at[completed]) * 1000
            exact.append(max(0.0, waited))
        reply = agent[end + heard[0] : end + heard[-1] + 1]
        underruns += int(reply.size - np.count_nonzero(reply))
        reply_frames += int(reply.size)
    return latencies, len(latencies), underruns, reply_frames, exact


@dataclass(slots=True)
class _Heard:
    """One call as the platform heard it, reduced to figures (small, and sent across platform processes)."""

    latencies: list[float] = field(default_factory=list)
    exact: list[float] = field(default_factory=list)
    replies: int = 0
    underruns: int = 0
    reply_frames: int = 0
    ticks: int = 0
    late_ticks: int = 0
    kill_ms: float | None = None  # the barge-in line's first audio -> killAudio
    false_kills: int = 0  # killAudio before the barge-in line
    ended_by_caller: bool = False


def _heard(call: SimulatedCall, turns: int) -> _Heard:
    latencies, replies, underruns, frames, exact = _turns_heard(call)
    heard = _Heard(
        latencies=latencies, exact=exact, replies=replies, underruns=underruns, reply_frames=frames,
        ticks=call.ticks, late_ticks=call.late_ticks, ended_by_caller=call.ended_by == "caller",
    )
    starts = call.caller_audio_started_at
    if len(starts) > turns // 2:  # the middle line is the barge-in
        onset = starts[turns // 2]
        later = [at for at in call.kill_audio_at if at >= onset]
        if later:
            heard.kill_ms = (later[0] - onset) * 1000
        heard.false_kills = len(call.kill_audio_at) - len(later)
    return heard


# --- the server ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _worker_pids(pid: int, workers: int) -> list[int]:
    """The server's worker processes: the supervisor's children, or the server itself."""
    if workers == 1:
        return [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return sorted(int(child) for child in children)


@contextlib.asynccontextmanager
async def _throwaway_redis() -> AsyncIterator[str]:
    """A redis-server of the bench's own on a free port, gone after the run."""
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        "redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        for _ in range(100):
            with contextlib.suppress(redis.ConnectionError):
                await client.ping()
                break
            await asyncio.sleep(0.05)
        await client.aclose()
        yield url
    finally:
        process.terminate()
        await process.wait()


async def _redis_commands(url: str | None) -> int | None:
    if url is None:
        return None
    client = redis.Redis.from_url(url)
    try:
        # INFO itself counts: one command per reading, negligible beside the service's.
        return int((await client.info("stats"))["total_commands_processed"])
    finally:
        await client.aclose()


async def _serving_workers(pid: int, base: str, workers: int) -> list[int]:
    """Until all `workers` run and each has answered /healthz (the supervisor starts them in turn)."""
    for _ in range(300):
        with contextlib.suppress(OSError):
            pids = _worker_pids(pid, workers)
            if len(pids) == workers and set(await _live_by_worker(base, pids)) == set(pids):
                return pids
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{workers} workers never all served")


async def _live_by_worker(base: str, pids: list[int]) -> dict[int, int]:
    """Each worker's live calls: /healthz over fresh connections until every worker has answered."""
    seen: dict[int, int] = {}
    for _ in range(20 * len(pids)):
        async with aiohttp.ClientSession() as http, http.get(f"{base}/healthz") as response:
            health = await response.json()
        seen[int(health["pid"])] = int(health["active_calls"])
        if set(seen) >= set(pids):
            break
    return seen


async def _start_server(
    workdir: Path, extra_env: dict[str, str], workers: int = 1
) -> tuple[asyncio.subprocess.Process, str]:
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "ORCHESTRATOR_CALLS_DB": str(workdir / "calls.sqlite3"),
        "ORCHESTRATOR_TRANSCRIPTS_DIR": str(workdir / "transcripts"),
        **extra_env,
    }
    log_file = (workdir / "server.log").open("wb")  # once, before the server starts
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orchestrator.cli",
        "serve",
        "--port",
        str(port),
        "--public-url",
        base,
        "--brain",
        "bench",
        "--log-level",
        "warning",
        "--orders",
        "demo",  # the embedded demo orders API: the bench brain looks nothing up anyway
        "--workers",
        str(workers),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log_file,
    )
    log_file.close()  # the child holds its own descriptor
    async with aiohttp.ClientSession() as http:
        for _ in range(200):
            with contextlib.suppress(aiohttp.ClientConnectionError):
                async with http.get(f"{base}/healthz") as response:
                    if response.status == 200:
                        return process, base
            await asyncio.sleep(0.1)
    process.kill()
    raise RuntimeError(f"the service did not start; see {workdir / 'server.log'}")


async def _active_calls(base: str, pids: list[int]) -> int:
    return sum((await _live_by_worker(base, pids)).values())


# --- the platform ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Placing:
    """The calls one platform process places (their indices), on the run's one schedule."""

    base: str
    indices: tuple[int, ...]
    calls: int
    turns: int
    ramp_s: float
    soak_s: float
    shared_tick: bool


async def _place(placing: _Placing, start_at: float, lag: list[float]) -> list[_Heard | str]:
    """Place these calls, call i at `start_at` (time.time()) + ramp * i / calls; soaking, each caller line
    places its next call until the soak is over. A failed call is its error's repr, counted, not fatal."""
    script = _script(placing.turns)
    # One media clock for every call when asked (SimulatorOptions.shared_tick), else one per call.
    options = SimulatorOptions(
        voice=_voice, say_ms_per_char=10, max_wait_ms=10_000, shared_tick=placing.shared_tick
    )
    stop = asyncio.Event()
    monitor = asyncio.get_running_loop().create_task(_lag_monitor(lag, stop))

    async def slot(index: int) -> list[_Heard | str]:
        await asyncio.sleep(max(0.0, start_at + placing.ramp_s * index / placing.calls - time.time()))
        placed: list[_Heard | str] = []
        while not placed or time.time() - start_at < placing.soak_s:
            sid = f"HD_load{index:05d}_{len(placed):03d}"
            platform = FakeSautikit(placing.base, options=options)
            try:
                placed.append(_heard(await platform.call(script, call_sid=sid), placing.turns))
            except Exception as exc:  # counted: one failed call must not end the run
                placed.append(repr(exc))
        return placed

    try:
        slots = await asyncio.gather(*(slot(index) for index in placing.indices))
    finally:
        stop.set()
        await monitor
    return [each for placed in slots for each in placed]


def _platform_process(placing: _Placing, conn: Connection) -> None:
    """A platform process of its own (--platforms): ready, the start time, its calls, their figures back."""
    configure_logging(json=True, level=logging.WARNING)
    _voice(BARGE_IN, RATE)  # loaded before the run starts, not during it
    gc.collect()
    gc.freeze()  # as the main platform process does: a full collection walks only the calls
    conn.send("ready")
    start_at = conn.recv()
    lag: list[float] = []
    cpu0 = time.process_time()
    heard = asyncio.run(_place(placing, start_at, lag))
    conn.send((heard, lag, time.process_time() - cpu0))
    conn.close()


@contextlib.asynccontextmanager
async def _platforms(placings: list[_Placing]) -> AsyncIterator[list[tuple[multiprocessing.Process, Connection]]]:
    """Start a process for each placing, ready to be told when to start; stop them on the way out."""
    context = multiprocessing.get_context("spawn")
    loop = asyncio.get_running_loop()
    children: list[tuple[multiprocessing.Process, Connection]] = []
    try:
        for placing in placings:
            mine, theirs = context.Pipe()
            process = context.Process(target=_platform_process, args=(placing, theirs), daemon=True)
            process.start()
            theirs.close()
            children.append((process, mine))  # type: ignore[arg-type]
        for _, conn in children:
            ready = await loop.run_in_executor(None, conn.recv)
            assert ready == "ready", ready
        yield children
    finally:
        for process, conn in children:
            conn.close()
            if process.is_alive():
                process.terminate()
            process.join(timeout=5)


# --- one level -----------------------------------------------------------------------------------


async def _lag_monitor(samples: list[float], stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        started = loop.time()
        await asyncio.sleep(0.010)
        samples.append((loop.time() - started - 0.010) * 1000)


def _percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"p50": None, "p95": None, "n": 0}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50": round(statistics.median(ordered), 1), "p95": round(p95, 1), "n": len(ordered)}


async def _level(
    calls: int,
    *,
    ramp_s: float,
    turns: int,
    window_s: float,
    soak_s: float,
    env: dict[str, str],
    workers: int = 1,
    shared_tick: bool = False,
    platforms: int = 1,
) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="orchestrator-load-") as tmp:
        workdir = Path(tmp)
        async with contextlib.AsyncExitStack() as stack:
            redis_url = None
            if workers > 1:
                redis_url = await stack.enter_async_context(_throwaway_redis())
                env = {**env, "ORCHESTRATOR_REDIS_URL": redis_url}
            return await _measure(
                calls, workdir, ramp_s=ramp_s, window_s=window_s, soak_s=soak_s, env=env,
                workers=workers, redis_url=redis_url, turns=turns, shared_tick=shared_tick,
                platforms=platforms,
            )
    raise AssertionError("the exit stack returned without a result")


async def _measure(
    calls: int,
    workdir: Path,
    *,
    ramp_s: float,
    window_s: float,
    soak_s: float,
    env: dict[str, str],
    workers: int,
    redis_url: str | None,
    turns: int,
    shared_tick: bool,
    platforms: int,
) -> dict[str, object]:
    process, base = await _start_server(workdir, env, workers)
    placings = [
        _Placing(base=base, indices=tuple(range(k, calls, platforms)), calls=calls, turns=turns,
                 ramp_s=ramp_s, soak_s=soak_s, shared_tick=shared_tick)
        for k in range(platforms)
    ]
    pids = await _serving_workers(process.pid, base, workers)
    loop = asyncio.get_running_loop()
    try:
        rss_idle = {pid: _proc_rss_mb(pid) for pid in pids}
        async with _platforms(placings[1:]) as children:
            child_pids = [child.pid for child, _ in children if child.pid is not None]

            def generator_cpu() -> float:
                return time.process_time() + sum(_proc_cpu_s(pid) for pid in child_pids)

            lag: list[float] = []
            redis_before = await _redis_commands(redis_url)
            # The platform's own start-up heap (modules, voices, the server's start) lives all run: out of
            # its collector's sight, as `serve` does (gc_policy.py), so a full collection in the generator
            # walks only the calls and stalls every call's 20 ms tick for less.
            gc.collect()
            gc.freeze()
            started = time.perf_counter()
            # CPU over the whole run as well as in the window: a call's work is fixed by its script, so CPU
            # per call over the run stays comparable on a busy machine, where the window's cores do not.
            run_cpu0 = {pid: _proc_cpu_s(pid) for pid in [process.pid, *pids]}
            run_gen0 = time.process_time()
            start_at = time.time() + 0.1
            for _, conn in children:
                conn.send(start_at)
            placing = loop.create_task(_place(placings[0], start_at, lag))
            # Every call started, greeted and streaming; when soaking, near the soak's end.
            await asyncio.sleep(max(ramp_s + 2.0, soak_s - window_s))
            live_start = await _live_by_worker(base, pids)
            cpu0 = {pid: _proc_cpu_s(pid) for pid in [process.pid, *pids]}
            redis0 = await _redis_commands(redis_url)
            gen0, wall0 = generator_cpu(), time.perf_counter()
            await asyncio.sleep(window_s)
            cpu1 = {pid: _proc_cpu_s(pid) for pid in [process.pid, *pids]}
            redis1 = await _redis_commands(redis_url)
            gen1, wall1 = generator_cpu(), time.perf_counter()
            rss_live = {pid: _proc_rss_mb(pid) for pid in pids}
            live_end = await _live_by_worker(base, pids)
            results = await placing
            run_gen = time.process_time() - run_gen0
            for _, conn in children:
                heard, their_lag, their_cpu = await loop.run_in_executor(None, conn.recv)
                results += heard
                lag += their_lag
                run_gen += their_cpu
            run_cpu = sum(_proc_cpu_s(pid) - run_cpu0[pid] for pid in run_cpu0)
            wall_s = time.perf_counter() - started
            redis_after = await _redis_commands(redis_url)
        await asyncio.sleep(1.0)  # transcripts are written just after each call
        transcripts = [p.read_text() for p in (workdir / "transcripts").glob("*.txt")]
    finally:
        gc.unfreeze()
        process.terminate()
        await process.wait()
    gc_pauses = _gc_pauses(workdir / "server.log")
    window = wall1 - wall0
    figures = _figures(
        calls,
        turns,
        results,
        transcripts,
        window=window,
        server_cpu=sum(cpu1[pid] - cpu0[pid] for pid in cpu0),
        generator_cpu=gen1 - gen0,
        run_cpu=(run_cpu, run_gen),
        rss=(sum(rss_idle.values()), sum(rss_live.values())),
        live=(sum(live_start.values()), sum(live_end.values())),
        lag=lag,
        wall_s=wall_s,
        gc_pauses=gc_pauses,
    )
    figures["generator"]["processes"] = len(placings)  # type: ignore[index]
    figures["workers"] = [
        {
            "pid": pid,
            "cores": round((cpu1[pid] - cpu0[pid]) / window, 3) if window else None,
            "rss_mb": round(rss_live[pid], 1),
            "live_calls": {"start": live_start.get(pid), "end": live_end.get(pid)},
        }
        for pid in pids
    ]
    if redis_url is not None:
        assert None not in (redis_before, redis0, redis1, redis_after)
        live_mean = (sum(live_start.values()) + sum(live_end.values())) / 2
        in_window = int(redis1 or 0) - int(redis0 or 0)
        figures["redis"] = {
            "commands_in_window": in_window,
            "commands_per_s": round(in_window / window, 1) if window else None,
            "per_live_call_per_s": round(in_window / window / live_mean, 3) if window and live_mean else None,
            "commands_per_call": round((int(redis_after or 0) - int(redis_before or 0)) / len(results), 1),
        }
    return figures


def _gc_pauses(server_log: Path) -> list[tuple[float, float]]:
    """(wall ms, CPU ms) of the collections of 20 ms or more the server logged (gc_policy.py)."""
    pauses = []
    for line in server_log.read_text(errors="replace").splitlines():
        if '"gc_pause"' in line:
            with contextlib.suppress(ValueError, KeyError):
                entry = json.loads(line)
                pauses.append((float(entry["pause_ms"]), float(entry.get("cpu_ms", 0.0))))
    return pauses


def _figures(
    calls: int,
    turns: int,
    results: list[_Heard | str],
    transcripts: list[str],
    *,
    window: float,
    server_cpu: float,
    generator_cpu: float,
    rss: tuple[float, float],
    live: tuple[int | None, int | None],
    lag: list[float],
    wall_s: float,
    gc_pauses: list[tuple[float, float]],
    run_cpu: tuple[float, float],
) -> dict[str, object]:
    latencies: list[float] = []
    exact_latencies: list[float] = []
    kills: list[float] = []
    underruns = reply_frames = ok = false_kills = ticks = late_ticks = 0
    errors = [result for result in results if isinstance(result, str)]
    for result in results:
        if isinstance(result, str):
            continue
        exact_latencies += result.exact
        ticks += result.ticks
        late_ticks += result.late_ticks
        latencies += result.latencies
        underruns += result.underruns
        reply_frames += result.reply_frames
        if result.kill_ms is not None:
            kills.append(result.kill_ms)
        false_kills += result.false_kills
        if result.ended_by_caller and result.replies >= turns:
            ok += 1
    lags = [max(0.0, value - BRAIN_SILENCE_MS) for value in latencies]
    cores = server_cpu / window if window else 0.0
    return {
        "calls": calls,
        "calls_placed": len(results),
        "calls_ok": ok,
        "errors": errors[:3],
        "wall_s": round(wall_s, 1),
        "live_calls_in_window": {"start": live[0], "end": live[1]},
        "turn_latency_ms": _percentiles(latencies),
        "turn_latency_exact_ms": _percentiles(exact_latencies),
        "reply_lag_ms": _percentiles(lags),
        "replies_late": sum(value > LATE_REPLY_MS for value in lags),
        "bargein_to_kill_ms": _percentiles(kills),
        "kills_before_the_bargein": false_kills,
        "resumed_after_bargein": sum(t.count("agent resumed") for t in transcripts),
        "cut_by_bargein": sum(t.count("agent cut at") for t in transcripts),
        "underrun_ratio": round(underruns / reply_frames, 4) if reply_frames else None,
        "server": {
            "cores": round(cores, 3),
            "cores_per_call": round(cores / calls, 5),
            "rss_mb": round(rss[1], 1),
            "mb_per_call": round((rss[1] - rss[0]) / calls, 3),
            "gc_pauses_over_20ms": len(gc_pauses),
            "longest_gc_pause_ms": max((wall for wall, _ in gc_pauses), default=None),
            # The most CPU a logged collection took: long pauses with little CPU mean contention.
            "gc_cpu_ms_max": max((cpu for _, cpu in gc_pauses), default=None),
            "cpu_ms_per_call_run": round(run_cpu[0] * 1000 / len(results), 1) if results else None,
        },
        "generator": {
            "cores": round(generator_cpu / window, 3) if window else None,
            "loop_lag_ms": _percentiles(lag),
            # Media ticks that ran a frame or more behind the platform's 20 ms schedule: the simulated
            # platform's own lateness, which the service's figures (latency, underruns) then carry too.
            "late_tick_ratio": round(late_ticks / ticks, 4) if ticks else None,
            "cpu_ms_per_call_run": round(run_cpu[1] * 1000 / len(results), 1) if results else None,
        },
    }


async def _run(
    levels: list[int],
    *,
    ramp_s: float,
    turns: int,
    window_s: float,
    soak_s: float,
    env: dict[str, str],
    workers: int = 1,
    shared_tick: bool = False,
    platforms: int = 1,
) -> dict[str, object]:
    return {
        "cpu_count": os.cpu_count(),
        "load_average_before": os.getloadavg()[0],
        "turns_per_call": turns,
        "server_workers": workers,
        "media_ticks": "shared" if shared_tick else "per call",
        "platform_processes": platforms,
        "levels": [
            await _level(
                n,
                ramp_s=ramp_s,
                turns=turns,
                window_s=window_s,
                soak_s=soak_s,
                env=env,
                workers=workers,
                shared_tick=shared_tick,
                platforms=platforms,
            )
            for n in levels
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--levels", default="50,100", help="comma-separated numbers of concurrent calls"
    )
    parser.add_argument(
        "--ramp", type=float, default=10.0, help="seconds over which the calls start"
    )
    parser.add_argument(
        "--turns", type=int, default=5, help="caller lines per call (one of them barges in)"
    )
    parser.add_argument(
        "--window", type=float, default=8.0, help="seconds of CPU measurement, all calls live"
    )
    parser.add_argument(
        "--soak",
        type=float,
        default=0.0,
        help="seconds to keep every caller line busy, call after call (0: one call each)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="serve --workers N (N > 1 shares calls through a throwaway redis-server of the bench's own)",
    )
    parser.add_argument(
        "--ticks",
        choices=("shared", "per-call"),
        default="per-call",
        help="the platform's 20 ms media ticks: one per call (default; measured fairer on 2 cores, docs/scaling.md), or one clock for all calls",
    )
    parser.add_argument(
        "--platforms",
        type=int,
        default=1,
        help="processes placing the calls (call i from process i mod P), each with its own event loop",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the server",
    )
    args = parser.parse_args()
    configure_logging(json=True, level=logging.WARNING)  # stdout carries the JSON figures only
    env = dict(item.split("=", 1) for item in args.env)
    figures = asyncio.run(
        _run(
            [int(n) for n in args.levels.split(",")],
            ramp_s=args.ramp,
            turns=args.turns,
            window_s=args.window,
            soak_s=args.soak,
            env=env,
            workers=args.workers,
            shared_tick=args.ticks == "shared",
            platforms=max(1, args.platforms),
        )
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
