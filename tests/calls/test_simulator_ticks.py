"""The fake platform's shared media clock (SimulatorOptions.shared_tick), as bench/load.py runs it."""

import asyncio
import math

import pytest

from orchestrator.simulator import SimulatorOptions
from orchestrator.testing import run_scripted_call
from tests.flows import SCRIPTS

FRAME_S = 0.020


def _on_the_grid(at: float) -> bool:
    ticks = at / FRAME_S
    return math.isclose(ticks, round(ticks), abs_tol=1e-6)


@pytest.mark.looptime
async def test_shared_ticks_put_every_caller_frame_on_one_20ms_grid_and_the_call_still_runs():
    """A media server's one timer: each caller line starts on a whole 20 ms tick of the loop's clock, though
    the call began 7 ms past one (with its own clock, its lines would start 7 ms past a tick)."""
    await asyncio.sleep(0.007)
    record = await run_scripted_call(
        SCRIPTS / "barge_in_during_narration.yaml", simulator=SimulatorOptions(shared_tick=True)
    )
    starts = record.platform.caller_audio_started_at
    assert starts and all(_on_the_grid(at) for at in starts), starts
    assert record.platform.kill_audio == 1
    assert record.transcript.outcome == "resolved"
    assert record.platform.ticks > 0 and record.platform.late_ticks == 0
