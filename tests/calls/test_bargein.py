"""Barge-in a call centre can trust: the caller can interrupt, and nothing else can.

Whole calls through the real service and the fake Sautikit, on a fast-forwarded clock.
"""


import pytest

from orchestrator.script import CallScript, load_script
from orchestrator.settings import Settings
from orchestrator.simulator import SimulatorOptions
from orchestrator.testing import run_scripted_call
from tests.flows import CARE_DESK, SCRIPTS


def _options(**overrides) -> SimulatorOptions:
    return SimulatorOptions(**overrides)


@pytest.mark.looptime
async def test_bargein_real_interruption_stops_the_agent_and_tells_the_brain():
    """Speech over an interruptible state pauses the agent at once and then cuts it off for good."""
    record = await run_scripted_call(SCRIPTS / "barge_in_during_narration.yaml")
    session_lines = record.transcript.of_kind("barge-in")
    assert len(session_lines) == 1
    assert "agent cut at" in session_lines[0]
    assert record.platform.kill_audio == 1
    assert record.transcript.outcome == "resolved"


@pytest.mark.looptime
async def test_bargein_cough_never_pauses_the_agent():
    """A 60 ms noise burst during the agent's speech sends no killAudio and records no barge-in."""
    record = await run_scripted_call(SCRIPTS / "cough_during_narration.yaml")
    assert record.platform.kill_audio == 0
    assert record.transcript.of_kind("barge-in") == []


@pytest.mark.looptime
async def test_bargein_backchannel_pauses_then_resumes_the_same_reply():
    """A short "mhmm" pauses the agent, which then finishes its sentence instead of being cut off."""
    record = await run_scripted_call(SCRIPTS / "backchannel_during_narration.yaml")
    lines = record.transcript.of_kind("barge-in")
    assert len(lines) == 1
    assert "agent resumed" in lines[0]
    assert not any("agent cut at" in line for line in lines)


@pytest.mark.looptime
async def test_bargein_not_interruptible_state_keeps_talking_and_still_hears_the_caller():
    """In a state with interruptible: false the agent is not paused, and the brain still gets the audio."""
    record = await run_scripted_call(SCRIPTS / "talks_over_hold_message.yaml")
    assert record.platform.kill_audio == 0
    assert all("not interruptible" in line for line in record.transcript.of_kind("barge-in"))
    assert '"Hello? Are you still there?"' in record.transcript.of_kind("caller")
    assert record.platform.dialed == CARE_DESK


@pytest.mark.looptime
@pytest.mark.parametrize("gain", [0.3, 0.7, 1.0])
async def test_bargein_agent_echo_in_a_mono_mix_never_interrupts(gain):
    """With both_tracks in a mono mix, the agent's own voice coming back never counts as the caller."""
    record = await run_scripted_call(
        SCRIPTS / "returning_caller_by_phone.yaml",
        settings=Settings(track="both_tracks"),
        simulator=_options(echo_gain=gain, echo_delay_ms=140),
    )
    assert record.platform.kill_audio == 0
    assert record.transcript.of_kind("barge-in") == []
    assert record.transcript.outcome == "resolved"


@pytest.mark.looptime
async def test_bargein_real_interruption_still_works_over_echo():
    """Echo removal does not deafen the agent: a caller talking over it in a mono both_tracks mix still cuts in."""
    record = await run_scripted_call(
        SCRIPTS / "barge_in_during_narration.yaml",
        settings=Settings(track="both_tracks"),
        simulator=_options(echo_gain=0.7, echo_delay_ms=140),
    )
    assert any("agent cut at" in line for line in record.transcript.of_kind("barge-in"))
    assert record.transcript.outcome == "resolved"


@pytest.mark.looptime
async def test_bargein_stereo_mix_uses_only_the_caller_channel():
    """A stereo fork (caller, agent) interleaved: the agent channel is dropped, barge-in still works."""
    record = await run_scripted_call(
        SCRIPTS / "barge_in_during_narration.yaml",
        settings=Settings(track="both_tracks"),
        simulator=_options(mix="stereo"),
    )
    lines = record.transcript.of_kind("barge-in")
    assert len(lines) == 1
    assert "agent cut at" in lines[0]
    assert '"channels": 2' in "\n".join(record.transcript.of_kind("stream"))


@pytest.mark.looptime
async def test_bargein_silent_caller_is_reprompted_then_escalated():
    """No caller speech for the state's timeout: reprompts as the YAML says, then escalation."""
    record = await run_scripted_call(SCRIPTS / "silent_caller_reprompted_then_escalated.yaml")
    assert len(record.transcript.of_kind("timer")) == 3
    agent = record.transcript.of_kind("agent")
    assert agent.count('"Are you still there? Please tell me your order number, or say check my number."') == 2
    assert record.platform.dialed == CARE_DESK


def _short_interruption(caller_line: str, barge_in_after_ms: int) -> CallScript:
    """The barge-in call, with the caller's interruption replaced by `caller_line`."""
    script = load_script(SCRIPTS / "barge_in_during_narration.yaml")
    turns = [turn.model_dump(exclude_defaults=True) for turn in script.turns]
    turns[3] = {"caller": caller_line, "barge_in_after_ms": barge_in_after_ms}
    return CallScript.model_validate({**script.model_dump(exclude_defaults=True), "turns": turns})


@pytest.mark.looptime
@pytest.mark.parametrize("after_ms", [1500, 1800, 2100, 2400, 2700, 3000])
async def test_bargein_interruption_in_bursty_audio_still_cuts_the_agent_off(after_ms):
    """Regression: with the caller's audio arriving in two-second bursts (an overloaded host), a short real
    interruption was read whole, end included, before a wall-clock confirmation timer fired, so it was taken
    for a backchannel and the agent resumed. Decided on audio time, it cuts the agent off."""
    record = await run_scripted_call(
        _short_interruption("Which courier?", after_ms),
        simulator=_options(inbound_burst_frames=100),
    )
    lines = record.transcript.of_kind("barge-in")
    assert not any("agent resumed" in line for line in lines), lines
    assert sum("agent cut at" in line for line in lines) == 1, lines
    assert record.transcript.outcome == "resolved"


@pytest.mark.looptime
async def test_bargein_backchannel_in_bursty_audio_still_resumes_the_agent():
    """Bursts do not turn a "mhmm" into an interruption: decided on audio time, the agent resumes."""
    record = await run_scripted_call(
        SCRIPTS / "backchannel_during_narration.yaml", simulator=_options(inbound_burst_frames=50)
    )
    # The caller's next line may cut in later (the paused agent sounds finished): the "mhmm" itself resumed it.
    lines = record.transcript.of_kind("barge-in")
    assert "agent resumed" in lines[0]
