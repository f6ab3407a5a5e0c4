"""The beep detector hears a steady tone and not speech, noise or silence."""

import numpy as np
import pytest

from orchestrator.audio.beep import BeepDetector
from orchestrator.audio.synth import noise_burst, synthesize_speech

RATE = 16000


def _tone(hz: float, ms: int, amplitude: int = 8000) -> bytes:
    t = np.arange(RATE * ms // 1000) / RATE
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype("<i2").tobytes()


@pytest.mark.parametrize("hz", [440.0, 1000.0, 1400.0, 2000.0])
def test_beep_detector_hears_a_voicemail_tone(hz: float) -> None:
    """A 400 ms tone at a beep's usual pitches is a beep, and `in_tone` says it is still sounding."""
    detector = BeepDetector(rate=RATE)
    assert detector.feed(_tone(hz, 400))
    assert detector.in_tone


def test_beep_detector_ignores_speech_noise_quiet_tones_and_short_clicks() -> None:
    """Speech-like audio, noise, a tone too quiet to be a beep and a 60 ms blip are not beeps."""
    for audio in (
        synthesize_speech("Please leave a message after the tone", rate=RATE, pitch_hz=190.0),
        noise_burst(600, RATE, -20),
        _tone(1000, 400, amplitude=200),
        _tone(1000, 60),
    ):
        assert not BeepDetector(rate=RATE).feed(audio)


def test_beep_detector_reports_a_beep_once_across_chunks() -> None:
    """Fed in odd-sized chunks, one beep is reported once."""
    detector = BeepDetector(rate=RATE)
    audio = _tone(1000, 500)
    heard = [detector.feed(audio[i : i + 333]) for i in range(0, len(audio), 333)]
    assert heard.count(True) == 1
