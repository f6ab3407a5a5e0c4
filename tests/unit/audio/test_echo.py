"""The echo gate takes the agent's own voice out of a mono inbound mix, and leaves the caller alone."""

import numpy as np
import pytest

from orchestrator.audio.echo import EchoGate
from orchestrator.audio.frames import rms_dbfs
from orchestrator.audio.synth import synthesize_speech

RATE = 16000
FRAME = 320  # samples in 20 ms


def _samples(text: str, pitch: float) -> np.ndarray:
    return np.frombuffer(synthesize_speech(text, rate=RATE, pitch_hz=pitch), "<i2").astype(np.float32)


AGENT = _samples("Your order DX1042 is out for delivery with PikiPiki today", 120.0)
CALLER = _samples("Sorry which courier", 190.0)


def _gate_that_played_the_agent() -> EchoGate:
    gate = EchoGate(rate=RATE)
    for i in range(AGENT.size // FRAME):
        gate.played(AGENT[i * FRAME : (i + 1) * FRAME].astype("<i2").tobytes(), at_s=i * 0.02)
    return gate


def _frames(signal: np.ndarray):
    for i in range(signal.size // FRAME):
        frame = np.clip(signal[i * FRAME : (i + 1) * FRAME], -32768, 32767).astype("<i2").tobytes()
        yield i, frame


@pytest.mark.parametrize(("delay_ms", "gain"), [(60, 0.3), (140, 0.7), (300, 1.0)])
def test_echo_gate_removes_a_delayed_scaled_copy(delay_ms, gain):
    """Echo alone comes out at least 40 dB quieter in every frame after the first few."""
    gate = _gate_that_played_the_agent()
    delay = RATE * delay_ms // 1000
    mix = np.zeros(AGENT.size + delay, np.float32)
    mix[delay:] = gain * AGENT
    loud_left = 0
    for i, frame in _frames(mix):
        cleaned = gate.clean(frame, arrived_s=(i + 1) * 0.02)
        if i * FRAME > delay + 4 * FRAME and rms_dbfs(frame) > -45 and rms_dbfs(frame) - rms_dbfs(cleaned) < 40:
            loud_left += 1
    assert loud_left == 0


def test_echo_gate_keeps_the_caller_talking_over_the_agent():
    """During double talk the cleaned frame is the caller's voice, within 1 dB."""
    gate = _gate_that_played_the_agent()
    delay = RATE * 140 // 1000
    mix = np.zeros(AGENT.size + delay, np.float32)
    mix[delay:] = 0.7 * AGENT
    start = 20000
    mix[start : start + CALLER.size] += CALLER[: mix.size - start]
    checked = 0
    for i, frame in _frames(mix):
        cleaned = gate.clean(frame, arrived_s=(i + 1) * 0.02)
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
