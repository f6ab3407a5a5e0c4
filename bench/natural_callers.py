"""Natural callers, whole calls, the real service and the offline brain. Prints one JSON object.

    python bench/natural_callers.py [--voices kal16,slt,awb,rms] [--noise clean,30,phone] [--parallel 5]
                                    [--asr auto|grammar|whisper] [--decoders-at-start 2]
                                    [--only CLASS,...] [--limit N] [--clock real|fast] [--details]
                                    [--scenarios bench/natural_callers_holdout.yaml]

Every scenario in bench/natural_callers.yaml (written in callers' own words, 40+) is placed as a whole call:
`orchestrator.harness.place_call` serves the flow on loopback with the real offline brain (its recogniser as
the service chooses it, `--asr auto`: Whisper tiny.en when the [whisper] extra is installed) and the embedded
orders API (healthy, down or slow per scenario), and the fake Sautikit plays the caller with a flite voice,
clean, with white noise at 30 dB SNR, or over a narrowband phone line (`phone`: 8 kHz G.711 mu-law, as most
mobile and fixed-line calls reach a media server, carried back up to the stream's 16 kHz). `--scenarios` runs another file of the same format instead: the
held-out set (bench/natural_callers_holdout.yaml, other callers in other words) is never used for tuning,
only reported beside the main set, so that a product fitted to the main set's phrasing shows. Calls run `--parallel` at a time in one process, sharing one brain
factory (and so one decoder pool) as a server does. Reported:

  task_success          overall and per scenario class: right outcome, right lookup, the expected words said,
                        and no wrong action
  wrong_action_rate     calls transferred, or ended by the agent, while the caller still had something to
                        say and neither was the right thing (target 0)
  turn_latency_ms       end of caller speech -> first agent audio (the session's own measure), p50/p95
  first_prompt_ms       stream connected -> first agent audio reaching the platform, p50/p95
  turn_stages_ms        where the brain's turns went (cascade.TurnTiming), p50/p95 per stage: the VAD's
                        end-of-turn silence, the decoder's first pass and second look (and how often it is
                        taken), policy, first TTS, and their sum

On `--clock fast` the calls run on a fast-forwarded loop clock (looptime): task figures are the same kind,
latencies are not meaningful. Not run by CI (tens of minutes on two cores).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import statistics
import sys
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Literal

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pydantic import BaseModel, ConfigDict, Field  # noqa: E402
from ruamel.yaml import YAML  # noqa: E402

from orchestrator.app import BrainFactory  # noqa: E402
from orchestrator.call.session import CallSession  # noqa: E402
from orchestrator.flow import Flow, load_flow  # noqa: E402
from orchestrator.harness import CallRecord, place_call  # noqa: E402
from orchestrator.logging import configure_logging  # noqa: E402
from orchestrator.script import CallScript  # noqa: E402
from orchestrator.settings import Settings  # noqa: E402
from orchestrator.simulator import SimulatorOptions  # noqa: E402
from orchestrator.speech.choice import SpeechChoice  # noqa: E402
from orchestrator.speech.voices import (  # noqa: E402
    CALLER_VOICES,
    add_noise,
    synthesize_caller,
    telephone_line,
)

SCENARIOS = ROOT / "bench" / "natural_callers.yaml"
_LATENCY = re.compile(r"reply audio (\d+) ms after the caller stopped")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Silence(_Strict):
    silence_ms: int = Field(gt=0)


class Noise(_Strict):
    noise_ms: int = Field(gt=0, le=2000)


class Expect(_Strict):
    outcome: tuple[Literal["resolved", "escalated", "abandoned"], ...]
    lookup: str | None = None  # "phone" or an order number
    says: tuple[str, ...] = ()
    transfer: bool = False


class Scenario(_Strict):
    name: str
    caller: str = Field(pattern=r"^\+254\d{9}$")
    orders: Literal["healthy", "error_5xx", "slow"] = "healthy"
    turns: tuple[str | Silence | Noise, ...] = Field(min_length=1)
    expect: Expect
    kind: str = ""  # the class, filled from the file's grouping

    @property
    def lines(self) -> int:
        return sum(isinstance(turn, str) for turn in self.turns)

    def script(self) -> CallScript:
        turns: list[dict[str, object]] = []
        for turn in self.turns:
            if isinstance(turn, str):
                turns.append({"caller": turn})
            elif isinstance(turn, Silence):
                turns.append({"silence_ms": turn.silence_ms})
            else:  # a cough: loud and short, right after the agent starts (or at once)
                turns.append({"noise_ms": turn.noise_ms, "level_dbfs": -10.0, "after_ms": 300})
        return CallScript.model_validate(
            {"title": self.name, "caller": self.caller, "orders": self.orders, "turns": turns}
        )


def load_scenarios(path: Path = SCENARIOS) -> list[Scenario]:
    """Every scenario in the file, each tagged with its class (the top-level key)."""
    data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    scenarios: list[Scenario] = []
    for kind, items in data.items():
        for item in items:
            scenarios.append(Scenario.model_validate({**item, "kind": kind}))
    names = Counter(s.name for s in scenarios)
    repeated = [name for name, count in names.items() if count > 1]
    if repeated:
        raise ValueError(f"scenario names must be unique: {', '.join(repeated)}")
    return scenarios


def caller_voice_with_noise(
    voice: str, snr_db: float | None, *, phone: bool = False
) -> Callable[[str, int], bytes]:
    """A simulator voice hook: flite `voice`, over a phone line if asked, with white noise at `snr_db`
    (seeded by the line)."""

    def speak(text: str, rate: int) -> bytes:
        pcm = synthesize_caller(text, voice, 1.0, rate)  # type: ignore[arg-type]
        if phone:
            pcm = telephone_line(pcm, rate)
        if snr_db is None:
            return pcm
        return add_noise(pcm, snr_db, seed=zlib.crc32(text.encode()))

    return speak


def _condition_name(snr_db: float | None, phone: bool) -> str:
    """"clean", "white_30db", "phone_8k" or "phone_8k_white_30db"."""
    noise = "clean" if snr_db is None else f"white_{snr_db:g}db"
    if phone:
        return "phone_8k" if snr_db is None else f"phone_8k_{noise}"
    return noise


def judge(scenario: Scenario, record: CallRecord) -> dict[str, object]:
    """Did the call do the caller's task, and did it act wrongly anywhere?"""
    transcript = record.transcript
    agent = " ".join(transcript.of_kind("agent")).lower()
    tools = transcript.of_kind("tool")
    transferred = any(t.startswith("transfer_to_human") for t in tools) or bool(record.platform.dialed)
    log = record.platform.log
    said = sum(1 for line in log if 'caller says "' in line)
    ended_early = record.platform.ended_by == "agent" and said < scenario.lines
    # A transfer counts as wrong only while the caller still had something to say: a scripted caller
    # cannot answer a question the script did not foresee, and silence is then handed to a person.
    dial_at = next((i for i, line in enumerate(log) if "] dial " in line), None)
    said_before_dial = sum(1 for line in log[:dial_at] if 'caller says "' in line)
    transferred_early = transferred and (dial_at is None or said_before_dial < scenario.lines)
    expect = scenario.expect
    wrong = not expect.transfer and (transferred_early or ended_early)
    lookups = [t for t in tools if t.startswith("lookup_order")]
    if expect.lookup is None:
        lookup_ok = True
    elif expect.lookup == "phone":
        lookup_ok = any(t.strip() in ("lookup_order {}", "lookup_order") for t in lookups) or any(
            "phone" in entry for entry in transcript.of_kind("lookup")
        )
    else:
        lookup_ok = any(f'"{expect.lookup}"' in t for t in lookups)
    missing = [phrase for phrase in expect.says if phrase.lower() not in agent]
    outcome_ok = transcript.outcome in expect.outcome
    success = outcome_ok and lookup_ok and not missing and not wrong
    return {
        "success": success,
        "wrong_action": wrong,
        "outcome": transcript.outcome,
        "outcome_ok": outcome_ok,
        "lookup_ok": lookup_ok,
        "missing_words": missing,
        "transferred": transferred,
        "transferred_early": transferred_early,
        "ended_early": ended_early,
    }


def latencies(record: CallRecord) -> list[int]:
    return [int(m.group(1)) for t in record.transcript.of_kind("latency") if (m := _LATENCY.search(t))]


async def run_one(
    scenario: Scenario,
    *,
    voice: str,
    snr_db: float | None,
    phone: bool = False,
    flow: Flow,
    factory: BrainFactory,
    sid: str,
) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    created: list[float] = []

    def started(session: CallSession) -> None:
        created.append(loop.time())

    brains: list[object] = []

    def tracked(start: object) -> object:  # this call's brain, for its turn-by-turn timings
        brain = factory(start)  # type: ignore[arg-type]
        brains.append(brain)
        return brain

    wall = time.perf_counter()
    try:
        record = await place_call(
            scenario.script(),
            flow=flow,
            settings=Settings(fallback_voice="synthetic", transcripts_dir=None),
            brain_factory=tracked,  # type: ignore[arg-type]
            simulator=SimulatorOptions(voice=caller_voice_with_noise(voice, snr_db, phone=phone)),
            call_sid=sid,
            on_call_started=started,
            call_timeout_s=240.0,
        )
    except Exception as exc:  # a call that breaks is a failed task, reported, not a crashed benchmark
        return {"scenario": scenario.name, "kind": scenario.kind, "voice": voice, "snr_db": snr_db,
                "phone": phone, "success": False, "wrong_action": False, "error": repr(exc)}
    verdict = judge(scenario, record)
    # The session's own measure when it keeps one; else from the platform's first agent frame.
    first_prompt: int | None = getattr(record.transcript, "first_prompt_ms", None)
    if first_prompt is None and created and record.platform.agent_frame_arrivals:
        connected = next(
            (e.at_ms for e in record.transcript if e.kind == "stream" and e.text == "connected"), None
        )
        if connected is not None:
            first_audio_ms = (record.platform.agent_frame_arrivals[0] - created[0]) * 1000
            first_prompt = max(0, round(first_audio_ms - connected))
    return {
        "scenario": scenario.name,
        "kind": scenario.kind,
        "voice": voice,
        "snr_db": snr_db,
        "phone": phone,
        **verdict,
        "turn_latency_ms": latencies(record),
        "turn_stages": [asdict(t) for b in brains for t in getattr(b, "timings", [])],
        "first_prompt_ms": first_prompt,
        "wall_s": round(time.perf_counter() - wall, 1),
        "heard": record.transcript.of_kind("caller"),
        "agent": record.transcript.of_kind("agent"),
    }


def _percentiles(values: list[int]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p95": None, "n": 0}
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 1),
        "p95": float(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]),
        "n": len(ordered),
    }


_STAGES = ("endpoint_ms", "asr_ms", "first_pass_ms", "second_look_ms", "policy_ms", "tts_first_ms")


def stage_breakdown(stages: list[dict[str, object]]) -> dict[str, object]:
    """Where a turn's time went, by the brain's own clock (cascade.TurnTiming), p50/p95 per stage; the
    second look also as how often it was taken, and the brain's sum (end of speech -> first audio made)."""
    out: dict[str, object] = {}
    for key in _STAGES:
        values = [round(float(t[key])) for t in stages if isinstance(t.get(key), (int, float))]
        out[key] = _percentiles(values)
    out["second_look_share"] = round(
        sum(t.get("second_look_ms") is not None for t in stages) / max(1, len(stages)), 3
    )
    brain_total = [
        round(sum(float(t.get(k) or 0) for k in ("endpoint_ms", "asr_ms", "policy_ms", "tts_first_ms")))
        for t in stages
        if t.get("tts_first_ms") is not None
    ]
    out["brain_total_ms"] = _percentiles(brain_total)
    return out


def summarise(results: list[dict[str, object]]) -> dict[str, object]:
    def rate(rows: list[dict[str, object]], key: str) -> float:
        return round(sum(bool(r.get(key)) for r in rows) / max(1, len(rows)), 4)

    by_kind: dict[str, list[dict[str, object]]] = defaultdict(list)
    by_condition: dict[str, list[dict[str, object]]] = defaultdict(list)
    for row in results:
        by_kind[str(row["kind"])].append(row)
        noise = _condition_name(row["snr_db"], bool(row.get("phone")))  # type: ignore[arg-type]
        by_condition[f"{row['voice']}/{noise}"].append(row)
    turn = [v for r in results for v in r.get("turn_latency_ms", [])]  # type: ignore[union-attr]
    first = [r["first_prompt_ms"] for r in results if isinstance(r.get("first_prompt_ms"), int)]
    stages = [t for r in results for t in r.get("turn_stages", [])]  # type: ignore[union-attr]
    return {
        "calls": len(results),
        "task_success": rate(results, "success"),
        "wrong_action_rate": rate(results, "wrong_action"),
        "task_success_by_class": {k: rate(v, "success") for k, v in sorted(by_kind.items())},
        "wrong_actions_by_class": {
            k: sum(bool(r.get("wrong_action")) for r in v) for k, v in sorted(by_kind.items())
        },
        "task_success_by_condition": {k: rate(v, "success") for k, v in sorted(by_condition.items())},
        "turn_latency_ms": _percentiles(turn),
        "first_prompt_ms": _percentiles(first),  # type: ignore[arg-type]
        "turn_stages_ms": stage_breakdown(stages),
        "errors": sum("error" in r for r in results),
    }


async def run(args: argparse.Namespace) -> dict[str, object]:
    from orchestrator.brains.cascade import make_offline_brain_factory

    flow = load_flow(args.flow)
    factory = make_offline_brain_factory(
        flow, SpeechChoice(asr=args.asr, asr_decoders_at_start=args.decoders_at_start)
    )
    # As `serve` does while it starts: the calls below arrive at a service that has been up a moment.
    preparing = time.perf_counter()
    await factory.prepare()
    prepared_s = round(time.perf_counter() - preparing, 1)
    scenarios = load_scenarios(Path(args.scenarios))
    if args.only:
        scenarios = [s for s in scenarios if s.kind in args.only.split(",")]
    if args.limit:
        scenarios = scenarios[: args.limit]
    conditions = [
        (voice, None if noise in ("clean", "phone") else float(noise), noise == "phone")
        for voice in args.voices.split(",")
        for noise in args.noise.split(",")
    ]
    jobs = [(s, v, n, p) for v, n, p in conditions for s in scenarios]
    gate = asyncio.Semaphore(args.parallel)
    done = 0

    async def one(
        index: int, scenario: Scenario, voice: str, snr: float | None, phone: bool
    ) -> dict[str, object]:
        nonlocal done
        async with gate:
            row = await run_one(scenario, voice=voice, snr_db=snr, phone=phone, flow=flow,
                                factory=factory, sid=f"HDnat{index:05d}")
        done += 1
        if args.progress:
            mark = "ok " if row.get("success") else ("WRONG" if row.get("wrong_action") else "fail")
            print(f"[{done}/{len(jobs)}] {mark} {voice} {snr} {scenario.kind}: {scenario.name} "
                  f"heard={row.get('heard')}", file=sys.stderr, flush=True)
        return row

    started = time.perf_counter()
    results = await asyncio.gather(*(one(i, s, v, n, p) for i, (s, v, n, p) in enumerate(jobs)))
    summary = summarise(list(results))
    summary.update(
        scenario_file=Path(args.scenarios).name,
        scenarios=len(scenarios),
        conditions=[f"{v}/{_condition_name(n, p)}" for v, n, p in conditions],
        parallel=args.parallel,
        asr=args.asr,
        decoders_at_start=args.decoders_at_start,
        decoders_built_before_calls_s=prepared_s,
        clock=args.clock,
        wall_s=round(time.perf_counter() - started, 1),
    )
    if args.details:
        summary["calls_detail"] = results
    else:
        summary["failures"] = [
            {k: r.get(k) for k in ("scenario", "voice", "snr_db", "phone", "outcome", "lookup_ok",
                                    "missing_words", "wrong_action", "heard", "error")}
            for r in results if not r.get("success")
        ]
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flow", default=str(ROOT / "flows" / "order_status.yaml"))
    parser.add_argument("--scenarios", default=str(SCENARIOS), help="scenario file: the main set, or bench/natural_callers_holdout.yaml")
    parser.add_argument("--voices", default=",".join(CALLER_VOICES))
    parser.add_argument(
        "--noise",
        default="clean,30",
        help="clean, SNRs in dB and/or phone (a narrowband 8 kHz line), comma-separated",
    )
    parser.add_argument("--parallel", type=int, default=5)
    parser.add_argument("--decoders-at-start", type=int, default=2,
                        help="grammar decoders built before the first call, as serve does (default 2)")
    parser.add_argument("--asr", choices=("auto", "grammar", "whisper", "hybrid"), default="auto",
                        help="the recogniser: auto (the service's default: Whisper tiny.en when the "
                             "[whisper] extra is installed, else the grammar), grammar or whisper")
    parser.add_argument("--only", default="", help="scenario classes, comma-separated")
    parser.add_argument("--limit", type=int, default=0)
    parser.add_argument("--clock", choices=("real", "fast"), default="real")
    parser.add_argument("--details", action="store_true", help="every call's record in the JSON")
    parser.add_argument("--progress", action="store_true", help="one line per finished call on stderr")
    args = parser.parse_args()
    configure_logging(json=True, level=logging.ERROR)  # stdout carries the JSON figures only
    if args.clock == "fast":
        import looptime

        loop = looptime.new_event_loop(start=0.0)
        try:
            result = loop.run_until_complete(run(args))
        finally:
            loop.close()
    else:
        result = asyncio.run(run(args))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
