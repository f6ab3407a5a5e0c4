"""Barge-in benchmark: real loopback sockets, the real clock, many calls at once. Prints one JSON object.

Trials (mixed, shuffled with a fixed seed):
  interrupt    the caller talks over the agent's narration at a random moment -> expect one interruption
  backchannel  the caller says "mhmm" over it                                  -> expect the agent to carry on
  cough        a 40-80 ms noise burst over it                                  -> expect nothing at all
  echo         both_tracks in a mono mix: the agent's own voice comes back     -> expect nothing at all

Figures:
  onset_to_kill_ms       caller audio starts (fake platform) -> killAudio arrives at the fake platform
  decision_to_silent_ms  the service's VAD decision -> its last agent frame written
  false_bargeins         cough/echo trials in which the agent was paused or cut off
  interruptions          interrupt trials that cut the agent off
  vad_cpu_ms_per_audio_s CPU per second of audio for each detector (and the echo gate), one core

    python bench/bargein.py [--trials 60] [--concurrency 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import statistics
import sys
import time
from dataclasses import dataclass

from aiohttp import web

from orchestrator.app import ORCHESTRATOR, create_app
from orchestrator.audio.echo import EchoGate
from orchestrator.audio.synth import noise_burst, synthesize_speech, white_noise
from orchestrator.audio.vad import EnergyVad, WebRtcVad
from orchestrator.brains.scripted import ScriptedBrain
from orchestrator.call.session import CallSession
from orchestrator.logging import configure_logging
from orchestrator.script import CallScript
from orchestrator.settings import Settings
from orchestrator.simulator import FakeSautikit, SimulatorOptions

NARRATION = (
    "Your order {{ result.order.order_number }} is {{ result.order.status_text }} with "
    "{{ result.order.courier }}, and the rider expects to reach {{ result.order.delivery_area }} "
    "{{ result.order.eta }}. You will get an SMS when the rider is close."
)


@dataclass(frozen=True, slots=True)
class Trial:
    kind: str
    script: CallScript
    options: SimulatorOptions


def _script(kind: str, rng: random.Random) -> CallScript:
    turns: list[dict[str, object]] = [
        {"agent": [{"say": "How can I help you today?"}]},
        {"caller": "Where is order D X one zero four two?"},
        {"agent": [{"tool": "lookup_order", "args": {"order_number": "DX1042"}}, {"say": NARRATION}]},
    ]
    after = rng.randint(600, 4000)
    if kind == "interrupt":
        turns.append({"caller": "Sorry, which courier is it?", "barge_in_after_ms": after})
        turns.append({"agent": [{"say": "PikiPiki."}]})
    elif kind == "backchannel":
        turns.append({"caller": "mhmm", "barge_in_after_ms": after})
    elif kind == "cough":
        turns.append({"noise_ms": rng.randint(40, 80), "level_dbfs": rng.uniform(-25, -8), "after_ms": after})
    turns.append({"caller": "Thank you, bye."})
    turns.append({"agent": [{"say": "Goodbye!"}, {"tool": "end_call"}]})
    return CallScript.model_validate({"title": kind, "caller": "+254712345678", "turns": turns})


def _trials(count: int, seed: int) -> list[Trial]:
    rng = random.Random(seed)
    kinds = ["interrupt", "interrupt", "backchannel", "cough", "echo"]
    trials = []
    for index in range(count):
        kind = kinds[index % len(kinds)]
        options = SimulatorOptions()
        if kind == "echo":
            options = SimulatorOptions(echo_gain=rng.uniform(0.3, 1.0), echo_delay_ms=rng.randint(40, 300))
        trials.append(Trial(kind=kind, script=_script(kind, rng), options=options))
    rng.shuffle(trials)
    return trials


async def _serve(track: str) -> tuple[web.AppRunner, str, dict[str, CallSession]]:
    settings = Settings(track=track, orders="demo")  # type: ignore[arg-type]
    scripts: dict[str, CallScript] = {}
    app = create_app(settings, brain_factory=lambda start: ScriptedBrain(scripts[start.call_sid]))
    app["scripts"] = scripts  # type: ignore[index]
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    base = f"http://{host}:{port}"
    orchestrator = app[ORCHESTRATOR]
    orchestrator.settings = settings.model_copy(update={"public_url": base})
    return runner, base, orchestrator.sessions


async def _run_trials(trials: list[Trial], concurrency: int) -> dict[str, object]:
    servers = {track: await _serve(track) for track in ("inbound_track", "both_tracks")}
    onset_to_kill: list[float] = []
    decision_to_silent: list[float] = []
    counts = {"interruptions": 0, "false_bargeins": 0, "backchannels_resumed": 0, "backchannels_cut": 0}
    false_by_kind: dict[str, int] = {}
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int, trial: Trial) -> None:
        runner, base, sessions = servers["both_tracks" if trial.kind == "echo" else "inbound_track"]
        call_sid = f"HD_bench{index:04d}"
        runner.app["scripts"][call_sid] = trial.script  # type: ignore[index]
        async with gate:
            platform = await FakeSautikit(base, options=trial.options).call(trial.script, call_sid=call_sid)
        session = sessions[call_sid]
        await asyncio.wait_for(session.finished.wait(), timeout=30)
        records = session.barge_ins
        interrupted = [r for r in records if r.outcome == "interrupted"]
        paused = [r for r in records if r.outcome in ("interrupted", "backchannel")]
        for record in paused:
            decision_to_silent.append(record.silent_after_s * 1000)
        if trial.kind == "interrupt":
            counts["interruptions"] += len(interrupted)
            # The barge-in turn is the caller's second; its kill is the first killAudio.
            if platform.kill_audio_at and len(platform.caller_audio_started_at) >= 2:
                onset = platform.caller_audio_started_at[1]
                onset_to_kill.append((platform.kill_audio_at[0] - onset) * 1000)
        elif trial.kind == "backchannel":
            counts["backchannels_cut"] += len(interrupted)
            counts["backchannels_resumed"] += sum(r.outcome == "backchannel" for r in records)
        elif paused or platform.kill_audio:
            counts["false_bargeins"] += 1
            false_by_kind[trial.kind] = false_by_kind.get(trial.kind, 0) + 1
            print(
                f"false barge-in: {trial.kind} echo_gain={trial.options.echo_gain:.2f} "
                f"echo_delay_ms={trial.options.echo_delay_ms}: "
                + "\n" + session.transcript.render(),
                file=sys.stderr,
            )

    started = time.perf_counter()
    await asyncio.gather(*(one(i, t) for i, t in enumerate(trials)))
    wall_s = time.perf_counter() - started
    for runner, _, _ in servers.values():
        await runner.cleanup()
    return {
        "trials": len(trials),
        "trial_kinds": {k: sum(t.kind == k for t in trials) for k in ("interrupt", "backchannel", "cough", "echo")},
        "concurrency": concurrency,
        "wall_s": round(wall_s, 1),
        "onset_to_kill_ms": _percentiles(onset_to_kill),
        "decision_to_silent_ms": _percentiles(decision_to_silent),
        **counts,
        "false_bargeins_by_kind": false_by_kind,
    }


def _percentiles(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"p50": None, "p95": None, "n": 0}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50": round(statistics.median(ordered), 1), "p95": round(p95, 1), "n": len(ordered)}


def _cpu_costs(seconds: int = 60) -> dict[str, float]:
    """CPU milliseconds per second of 16 kHz audio: speech, silence and noise, in 20 ms frames."""
    rate = 16000
    parts = []
    while sum(len(p) for p in parts) < seconds * rate * 2:
        parts.append(synthesize_speech("where is my order D X one zero four two please", rate=rate))
        parts.append(white_noise(800, rate, -55.0, seed=len(parts)))
        parts.append(noise_burst(60, rate, -15.0, seed=len(parts)))
    audio = b"".join(parts)[: seconds * rate * 2]
    frames = [audio[i : i + 640] for i in range(0, len(audio), 640)]
    costs: dict[str, float] = {}
    for name, detector in (("webrtc", WebRtcVad(rate=rate)), ("energy", EnergyVad(rate=rate))):
        began = time.process_time()
        for frame in frames:
            detector.feed(frame)
        costs[name] = round((time.process_time() - began) * 1000 / seconds, 3)
    echo = EchoGate(rate=rate)
    began = time.process_time()
    for i, frame in enumerate(frames):
        echo.played(frame, at_s=i * 0.02)
        echo.clean(frame, arrived_s=(i + 1) * 0.02 + 0.1)
    costs["echo_gate"] = round((time.process_time() - began) * 1000 / seconds, 3)
    return costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    configure_logging(json=True, level=logging.WARNING)  # stdout carries the JSON figures only
    figures = asyncio.run(_run_trials(_trials(args.trials, args.seed), args.concurrency))
    figures["vad_cpu_ms_per_audio_s"] = _cpu_costs()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
