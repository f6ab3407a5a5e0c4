"""The barge-in rules on their own: pause at once, cut off only a caller who keeps talking."""

import asyncio

import pytest

from orchestrator.audio.pacer import PacedWriter
from orchestrator.audio.vad import VadEvent
from orchestrator.call.bargein import BargeIn, Interruption, Onset


async def _speaking_writer() -> tuple[PacedWriter, list[bytes], asyncio.Task]:
    sent: list[bytes] = []

    async def send(frame: bytes) -> None:
        sent.append(frame)

    writer = PacedWriter(send, rate=16000)
    task = asyncio.get_running_loop().create_task(writer.run())
    writer.enqueue(b"\x10\x00" * 16000 * 3, utterance_id="u1")  # three seconds of agent speech
    writer.end_utterance("u1")
    await asyncio.sleep(1.0)
    return writer, sent, task


def _started(at_ms: int) -> VadEvent:
    return VadEvent(kind="speech_started", at_ms=at_ms)


@pytest.mark.looptime
async def test_bargein_onset_pauses_the_agent_at_once():
    """Speech over an interruptible agent pauses the writer before the call returns: nothing more is sent."""
    writer, sent, task = await _speaking_writer()
    rules = BargeIn(min_speech_ms=120, confirm_ms=600)
    decision = rules.on_vad(_started(5000), pacer=writer, interruptible=True, now=1.0, frames_out=len(sent))
    assert isinstance(decision, Onset)
    assert decision.confirm_after_s == pytest.approx(0.48)
    frames = len(sent)
    await asyncio.sleep(0.5)
    assert len(sent) == frames
    task.cancel()


@pytest.mark.looptime
async def test_bargein_caller_still_talking_at_the_deadline_cuts_the_agent_off():
    """At the deadline a caller still talking is an interruption: the reply is flushed, heard time kept."""
    writer, sent, task = await _speaking_writer()
    rules = BargeIn(min_speech_ms=120, confirm_ms=600)
    onset = rules.on_vad(_started(5000), pacer=writer, interruptible=True, now=1.0, frames_out=len(sent))
    assert isinstance(onset, Onset)
    await asyncio.sleep(onset.confirm_after_s)
    result = rules.confirm(onset.generation, pacer=writer, frames_out=len(sent), last_frame_at=1.0)
    assert isinstance(result, Interruption)
    assert result.heard is not None
    assert result.heard.utterance_id == "u1"
    assert 900 <= result.heard.played_ms <= 1000  # what played before the pause, not while paused
    assert not writer.speaking
    assert rules.records[-1].outcome == "interrupted"
    assert rules.records[-1].frames_after_decision == 0
    task.cancel()


@pytest.mark.looptime
async def test_bargein_quiet_again_at_the_deadline_resumes_the_agent():
    """A "mhmm" that has stopped by the deadline is a backchannel: the same reply carries on."""
    writer, sent, task = await _speaking_writer()
    rules = BargeIn(min_speech_ms=120, confirm_ms=600)
    onset = rules.on_vad(_started(5000), pacer=writer, interruptible=True, now=1.0, frames_out=len(sent))
    assert isinstance(onset, Onset)
    rules.on_vad(VadEvent(kind="speech_stopped", at_ms=5250), pacer=writer, interruptible=True, now=1.1, frames_out=0)
    result = rules.confirm(onset.generation, pacer=writer, frames_out=len(sent), last_frame_at=1.0)
    assert result == 250
    assert writer.speaking
    assert not writer.paused
    frames = len(sent)
    await asyncio.sleep(0.2)
    assert len(sent) > frames
    assert rules.records[-1].outcome == "backchannel"
    task.cancel()


@pytest.mark.looptime
async def test_bargein_not_interruptible_state_is_recorded_and_ignored():
    """In a state with interruptible: false the writer keeps going and the attempt is recorded."""
    writer, _sent, task = await _speaking_writer()
    rules = BargeIn(min_speech_ms=120, confirm_ms=600)
    assert rules.on_vad(_started(5000), pacer=writer, interruptible=False, now=1.0, frames_out=0) == "ignored"
    assert not writer.paused
    assert rules.records[-1].outcome == "ignored"
    task.cancel()


@pytest.mark.looptime
async def test_bargein_stale_deadline_changes_nothing():
    """A confirmation for an older onset (already settled) is ignored."""
    writer, _sent, task = await _speaking_writer()
    rules = BargeIn(min_speech_ms=120, confirm_ms=600)
    onset = rules.on_vad(_started(5000), pacer=writer, interruptible=True, now=1.0, frames_out=0)
    assert isinstance(onset, Onset)
    assert rules.confirm(onset.generation + 1, pacer=writer, frames_out=0, last_frame_at=0.0) is None
    assert writer.paused
    task.cancel()


@pytest.mark.looptime
async def test_bargein_deadline_is_an_audio_position_counted_from_the_decision():
    """The onset names the audio position of its deadline: the decision's position plus confirm - min_speech."""
    writer, _sent, task = await _speaking_writer()
    rules = BargeIn(min_speech_ms=120, confirm_ms=600)
    onset = rules.on_vad(
        _started(5000), pacer=writer, interruptible=True, now=1.0, frames_out=0, position_ms=5180
    )
    assert isinstance(onset, Onset)
    assert onset.confirm_at_ms == 5180 + 480
    assert rules.confirm_at_ms == 5660
    task.cancel()


@pytest.mark.looptime
async def test_bargein_audio_short_of_the_deadline_decides_nothing_however_late_it_is():
    """Wall time passing decides nothing: only audio reaching the deadline does, with what it held."""
    writer, sent, task = await _speaking_writer()
    rules = BargeIn(min_speech_ms=120, confirm_ms=600)
    rules.on_vad(_started(5000), pacer=writer, interruptible=True, now=1.0, frames_out=0, position_ms=5180)
    await asyncio.sleep(5.0)  # the loop's clock runs on; the caller's audio has not reached the deadline
    assert rules.at_audio(5640, pacer=writer, frames_out=len(sent), last_frame_at=1.0) is None
    assert rules.pending
    result = rules.at_audio(5660, pacer=writer, frames_out=len(sent), last_frame_at=1.0)
    assert isinstance(result, Interruption)
    assert not rules.pending
    assert rules.at_audio(9000, pacer=writer, frames_out=len(sent), last_frame_at=1.0) is None
    task.cancel()


@pytest.mark.looptime
async def test_bargein_speech_that_ended_before_the_audio_deadline_is_a_backchannel():
    """A sound whose end the detector heard before the deadline's frame resumes the agent at that frame."""
    writer, _sent, task = await _speaking_writer()
    rules = BargeIn(min_speech_ms=120, confirm_ms=600)
    onset = rules.on_vad(_started(5000), pacer=writer, interruptible=True, now=1.0, frames_out=0, position_ms=5180)
    assert isinstance(onset, Onset)
    assert rules.waiting(onset.generation)
    rules.on_vad(VadEvent(kind="speech_stopped", at_ms=5300), pacer=writer, interruptible=True, now=1.0, frames_out=0)
    assert rules.at_audio(5660, pacer=writer, frames_out=0, last_frame_at=1.0) == 300
    assert not writer.paused
    assert not rules.waiting(onset.generation)
    task.cancel()
