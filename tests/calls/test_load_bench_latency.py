"""How bench/load.py reads turn latency off the fake platform: on its 20 ms play-out ticks, and exactly."""

from __future__ import annotations

import importlib.util
import math
import sys
from array import array
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from orchestrator.brains.bench import BenchBrain
from orchestrator.script import CallScript
from orchestrator.simulator import SimulatedCall
from orchestrator.testing import run_scripted_call

ROOT = Path(__file__).resolve().parents[2]
FRAME = 640  # bytes of one 20 ms frame at 16 kHz


def _load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("load_bench", ROOT / "bench" / "load.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def _frames(level: int, count: int) -> bytes:
    return np.full(count * (FRAME // 2), level, dtype="<i2").tobytes()


def test_exact_turn_latency_is_the_brains_silence_then_the_reply_on_the_wall_clock():
    """Ten frames of speech, then silence; the reply's first frame arrived 15 ms after the frame completing
    the brain's 200 ms of silence left, and played on the next tick: 220 ms on the platform's ticks (rounded
    to them), 215 ms exactly."""
    call = SimulatedCall(call_sid="HD_exact")
    call.caller_track += _frames(1000, 10) + _frames(0, 30)
    call.agent_track += _frames(0, 21) + _frames(3000, 10) + _frames(0, 9)
    call.caller_frame_sent_at = array("d", (0.001 + 0.020 * i for i in range(40)))
    arrived = [math.nan] * 21 + [0.181 + 0.215 + 0.020 * i for i in range(10)] + [math.nan] * 9
    call.agent_frame_arrived_at = array("d", arrived)

    latencies, replies, underruns, _, exact = _load_bench()._turns_heard(call)

    assert latencies == [220.0]  # (21 - 10) ticks after the first silent frame
    assert replies == 1 and underruns == 0
    assert exact == [pytest.approx(215.0)]


@pytest.mark.looptime
async def test_the_platform_stamps_each_frame_it_sends_and_each_reply_frame_it_plays():
    """One stamp per frame of each track; a played reply frame had arrived by the tick that played it; and
    a bench brain that answers 200 ms after the caller stops measures 200 ms both ways."""
    script = CallScript.model_validate(
        {
            "title": "stamps",
            "caller": "+254712345678",
            "turns": [{"caller": "Where is my order?"}, {"caller": "Thank you."}, {"hangup": None}],
        }
    )
    record = await run_scripted_call(script, brain_factory=lambda start: BenchBrain())
    call = record.platform

    assert len(call.caller_frame_sent_at) == len(call.caller_track) // FRAME
    assert len(call.agent_frame_arrived_at) == len(call.agent_track) // FRAME
    played = [i for i, at in enumerate(call.agent_frame_arrived_at) if not math.isnan(at)]
    assert played, "the agent's greeting and replies were played"
    # Tick i played its agent frame just before it sent caller frame i.
    assert all(call.agent_frame_arrived_at[i] <= call.caller_frame_sent_at[i] for i in played)

    latencies, replies, _, _, exact = _load_bench()._turns_heard(call)
    assert replies == 2
    assert latencies == [200.0, 200.0]
    assert exact == [pytest.approx(200.0, abs=1.0)] * 2


def test_a_platform_late_in_sending_the_silence_does_not_count_in_the_exact_latency():
    """The platform sent the ten silent frames 30 ms late each (an overloaded load generator): the reply
    came 15 ms after the tenth, so the service's turn took 200 + 15 ms, not the 515 ms of wall time since
    the caller's last word."""
    call = SimulatedCall(call_sid="HD_late")
    call.caller_track += _frames(1000, 10) + _frames(0, 30)
    call.agent_track += _frames(0, 21) + _frames(3000, 10) + _frames(0, 9)
    sent = [0.020 * i for i in range(10)] + [0.180 + 0.050 * i for i in range(1, 31)]
    call.caller_frame_sent_at = array("d", sent)
    arrived = [math.nan] * 21 + [sent[19] + 0.015] * 10 + [math.nan] * 9
    call.agent_frame_arrived_at = array("d", arrived)

    _, _, _, _, exact = _load_bench()._turns_heard(call)

    assert exact == [pytest.approx(215.0)]
