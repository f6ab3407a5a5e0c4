"""The echo gate takes the agent's own voice out of a mono inbound mix and leaves the caller."""

import numpy as np
import pytest

from orchestrator.audio.echo import EchoGate
from orchestrator.audio.frames import rms_dbfs
from orchestrator.audio.synth import synthesize_speech
from orchestrator.audio.vad import WebRtcVad

RATE = 16000
FRAME = 320  # samples in 20 ms
FRAME_S = 0.02


def _samples(text: str, pitch: float) -> np.ndarray:
    return np.frombuffer(synthesize_speech(text, rate=RATE, pitch_hz=pitch), "<i2").astype(
        np.float32
    )


AGENT = _samples("Your order DX1042 is out for delivery with PikiPiki today", 120.0)
CALLER = _samples("Sorry which courier", 190.0)


def _gate_that_played_the_agent() -> EchoGate:
    gate = EchoGate(rate=RATE)
    for i in range(AGENT.size // FRAME):
        gate.played(AGENT[i * FRAME : (i + 1) * FRAME].astype("<i2").tobytes(), at_s=i * FRAME_S)
    return gate


def _frames(signal: np.ndarray):
    for i in range(signal.size // FRAME):
        frame = np.clip(signal[i * FRAME : (i + 1) * FRAME], -32768, 32767).astype("<i2").tobytes()
        yield i, frame


def _echo(delay_ms: int, gain: float, *, extra: np.ndarray | None = None) -> np.ndarray:
    """The agent coming back `delay_ms` later at `gain`, with `extra` (the caller) mixed in."""
    delay = RATE * delay_ms // 1000
    mix = np.zeros(AGENT.size + delay, np.float32)
    mix[delay:] = gain * AGENT
    if extra is not None:
        mix[: extra.size] += extra[: mix.size]
    return mix


def _barge_in_detector() -> WebRtcVad:
    """The detector the session runs over the agent (the flow's barge-in settings)."""
    return WebRtcVad(rate=RATE, mode=2, min_speech_ms=120, min_silence_ms=160)


@pytest.mark.parametrize(("delay_ms", "gain"), [(60, 0.3), (140, 0.7), (300, 1.0)])
def test_echo_gate_removes_a_delayed_scaled_copy(delay_ms, gain):
    """Echo alone comes out at least 40 dB quieter in every frame after the first few."""
    gate = _gate_that_played_the_agent()
    delay = RATE * delay_ms // 1000
    mix = _echo(delay_ms, gain)
    loud_left = 0
    for i, frame in _frames(mix):
        cleaned = gate.clean(frame, arrived_s=(i + 1) * FRAME_S)
        if (
            i * FRAME > delay + 4 * FRAME
            and rms_dbfs(frame) > -45
            and rms_dbfs(frame) - rms_dbfs(cleaned) < 40
        ):
            loud_left += 1
    assert loud_left == 0


def test_echo_gate_keeps_the_caller_talking_over_the_agent():
    """During double talk the cleaned frame is the caller's voice, within 1 dB."""
    gate = _gate_that_played_the_agent()
    start = 20000
    caller = np.zeros(start + CALLER.size, np.float32)
    caller[start:] = CALLER
    mix = _echo(140, 0.7, extra=caller)
    checked = 0
    for i, frame in _frames(mix):
        cleaned = gate.clean(frame, arrived_s=(i + 1) * FRAME_S)
        if start <= i * FRAME and (i + 1) * FRAME <= start + CALLER.size:
            alone = CALLER[i * FRAME - start : (i + 1) * FRAME - start].astype("<i2").tobytes()
            if rms_dbfs(alone) > -35:
                assert abs(rms_dbfs(cleaned) - rms_dbfs(alone)) < 1.0
                checked += 1
    assert checked > 10


def test_echo_gate_passes_audio_through_when_nothing_was_played():
    """With no agent audio on record, the caller's audio is returned untouched."""
    gate = EchoGate(rate=RATE)
    frame = CALLER[:FRAME].astype("<i2").tobytes()
    assert gate.clean(frame, arrived_s=0.02) == frame


def test_echo_gate_places_frames_by_stream_position_when_they_arrive_in_bursts():
    """Regression: frames held up behind a busy loop, then delivered at once, were placed by
    arrival; that moved the delay by the stall's length and let the agent through as a barge-in."""
    gate = _gate_that_played_the_agent()
    vad = _barge_in_detector()
    heard = []
    for i, frame in _frames(_echo(140, 0.7)):
        # Every 40 frames the loop stalls for 300 ms; the frames captured meanwhile arrive together
        # after it.
        stalled = 5 <= i % 40 < 20
        arrived_s = (i + 1) * FRAME_S + (0.3 - (i % 40 - 5) * FRAME_S if stalled else 0.0)
        heard += vad.feed(gate.clean(frame, arrived_s=arrived_s))
    assert heard == []


def test_echo_gate_follows_reference_timestamps_off_by_a_few_ms():
    """Outbound frames stamped a few ms late now and then (a late writer): the echo still goes."""
    rng = np.random.default_rng(7)
    gate = EchoGate(rate=RATE)
    late_s = 0.0
    for i in range(AGENT.size // FRAME):
        if i % 25 == 24:
            late_s += rng.uniform(
                0.001, 0.004
            )  # the writer woke late: this frame and the rest look later
        frame = AGENT[i * FRAME : (i + 1) * FRAME].astype("<i2").tobytes()
        gate.played(frame, at_s=i * FRAME_S + late_s)
    vad = _barge_in_detector()
    heard = []
    loud_left = 0
    for i, frame in _frames(_echo(140, 0.7)):
        cleaned = gate.clean(frame, arrived_s=(i + 1) * FRAME_S)
        heard += vad.feed(cleaned)
        if i > 12 and rms_dbfs(cleaned) > -45:
            loud_left += 1
    assert heard == []
    assert loud_left == 0


@pytest.mark.parametrize("slip_frames", [1, -1])
def test_echo_gate_follows_a_one_frame_jump_of_the_playout_delay_mid_utterance(slip_frames):
    """The far end's buffer runs a frame emptier or fuller mid-sentence: no echo gets out."""
    gate = _gate_that_played_the_agent()
    delay = RATE * 140 // 1000
    cut = AGENT.size // 2 // FRAME * FRAME
    first, second = 0.7 * AGENT[:cut], 0.7 * AGENT[cut:]
    if (
        slip_frames > 0
    ):  # an underrun: a frame of silence is played, everything after comes a frame later
        echo = np.concatenate([first, np.zeros(FRAME, np.float32), second])
    else:  # the buffer skips a frame to catch up: everything after comes a frame sooner
        echo = np.concatenate([first, second[FRAME:]])
    mix = np.concatenate([np.zeros(delay, np.float32), echo])
    vad = _barge_in_detector()
    heard = []
    loud_left = 0
    for i, frame in _frames(mix):
        cleaned = gate.clean(frame, arrived_s=(i + 1) * FRAME_S)
        heard += vad.feed(cleaned)
        if i * FRAME > delay + 4 * FRAME and rms_dbfs(cleaned) > -45:
            loud_left += 1
    assert heard == []
    assert loud_left == 0


def test_echo_gate_never_turns_silence_into_sound():
    """Regression: after killAudio the far end never plays what was sent; subtracting that
    reference from the silent inbound put the agent's voice back in, as if the caller spoke."""
    gate = _gate_that_played_the_agent()
    mix = _echo(140, 0.7)
    killed = 30 * FRAME  # the platform's buffer was emptied here: nothing more comes back
    mix[killed:] = 0.0
    for i, frame in _frames(mix):
        cleaned = gate.clean(frame, arrived_s=(i + 1) * FRAME_S)
        if i * FRAME >= killed:
            assert not any(cleaned)


def test_echo_gate_mutes_echo_of_a_new_sentence_before_the_delay_is_relearned():
    """A second sentence played on another tick (45 ms more delay) is muted, not heard."""
    gate = EchoGate(rate=RATE)
    sentence = AGENT.size // FRAME
    second = sentence + 25  # the frame the second sentence starts on, after a pause
    first_delay, second_delay = RATE * 100 // 1000, RATE * 145 // 1000
    mix = np.zeros(second * FRAME + second_delay + AGENT.size, np.float32)
    mix[first_delay : first_delay + AGENT.size] = 0.7 * AGENT
    mix[second * FRAME + second_delay :] = 0.7 * AGENT
    vad = _barge_in_detector()
    heard = []
    for i, frame in _frames(mix):
        # The agent's frames are recorded as they are sent, just before the inbound frame of the
        # same tick.
        for start in (0, second):
            if 0 <= i - start < sentence:
                out = AGENT[(i - start) * FRAME : (i - start + 1) * FRAME].astype("<i2").tobytes()
                gate.played(out, at_s=i * FRAME_S)
        heard += vad.feed(gate.clean(frame, arrived_s=(i + 1) * FRAME_S))
    assert heard == []


def test_echo_gate_lets_the_caller_barge_in_after_the_playout_delay_jumped():
    """Muting residual echo does not deafen the gate: a caller over slipped echo is still heard."""
    gate = _gate_that_played_the_agent()
    delay = RATE * 140 // 1000
    cut = AGENT.size // 3 // FRAME * FRAME
    echo = np.concatenate([0.7 * AGENT[:cut], np.zeros(FRAME, np.float32), 0.7 * AGENT[cut:]])
    start = cut + 10 * FRAME
    caller = np.zeros(start + CALLER.size, np.float32)
    caller[start:] = CALLER
    mix = np.concatenate([np.zeros(delay, np.float32), echo])
    mix[: caller.size] += caller[: mix.size]
    vad = _barge_in_detector()
    started = []
    for i, frame in _frames(mix):
        started += [
            i
            for e in vad.feed(gate.clean(frame, arrived_s=(i + 1) * FRAME_S))
            if e.kind == "speech_started"
        ]
    assert len(started) == 1
    assert start <= started[0] * FRAME < start + 10 * FRAME
