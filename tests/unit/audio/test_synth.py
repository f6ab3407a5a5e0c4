"""Synthetic speech and noise: deterministic, laid out as word_timings says, at the asked level."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from orchestrator.audio import (
    noise_burst,
    rms_dbfs,
    synthesize_speech,
    white_noise,
    word_timings,
)


def test_synthesize_speech_is_deterministic() -> None:
    """The same text gives the same bytes; another text or seed gives other bytes."""
    text = "My order number is 4471."
    assert synthesize_speech(text) == synthesize_speech(text)
    assert synthesize_speech(text) != synthesize_speech(text, seed=1)
    assert synthesize_speech(text, seed=1) == synthesize_speech(text, seed=1)
    assert synthesize_speech(text) != synthesize_speech("My order number is 4472.")


def test_synthesize_speech_lasts_as_long_as_its_word_timings() -> None:
    """The audio ends where the last word ends, at any rate."""
    text = "Where is my order, please?"
    end_ms = word_timings(text)[-1][2]
    assert len(synthesize_speech(text, rate=16000)) == end_ms * 16 * 2
    assert len(synthesize_speech(text, rate=8000)) == end_ms * 8 * 2


def test_synthesize_speech_is_silent_between_words_and_voiced_within() -> None:
    """Each word span carries sound and each gap is silence, so timings map audio to words."""
    text = "Hello, where is it."
    pcm = np.frombuffer(synthesize_speech(text), dtype="<i2")
    timings = word_timings(text)
    for _, start, end in timings:
        assert rms_dbfs(pcm[start * 16 : end * 16].tobytes()) > -30
    for (_, _, prev_end), (_, next_start, _) in itertools.pairwise(timings):
        assert not pcm[prev_end * 16 : next_start * 16].any()


def test_word_timings_scale_with_text_and_pause_longer_at_punctuation() -> None:
    """Word length follows its characters; commas and full stops leave longer gaps."""
    timings = word_timings("Hi there, friend. Bye now", ms_per_char=50)
    assert [w for w, _, _ in timings] == ["Hi", "there,", "friend.", "Bye", "now"]
    durations = [end - start for _, start, end in timings]
    assert durations == [100, 250, 300, 150, 150]
    gaps = [b[1] - a[2] for a, b in itertools.pairwise(timings)]
    assert gaps[0] < gaps[1] < gaps[2]
    assert gaps[3] == gaps[0]


def test_word_timings_of_empty_text_is_empty_and_synthesis_silent() -> None:
    """No words, no audio."""
    assert word_timings("  ... ") == []
    assert synthesize_speech("") == b""


def test_synthesize_speech_has_its_energy_in_the_voice_band() -> None:
    """Most energy lies between 100 Hz and 4 kHz, as in telephone speech."""
    pcm = np.frombuffer(synthesize_speech("Thank you for calling."), dtype="<i2")
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(pcm.size, 1 / 16000)
    band = spectrum[(freqs >= 100) & (freqs <= 4000)].sum()
    assert band / spectrum.sum() > 0.9


@pytest.mark.parametrize("level", [-50.0, -30.0, -12.0])
def test_noise_makers_hit_the_requested_level(level: float) -> None:
    """white_noise and noise_burst measure within 0.5 dB of the RMS level asked for."""
    assert rms_dbfs(white_noise(1000, 16000, level, seed=5)) == pytest.approx(level, abs=0.5)
    assert rms_dbfs(noise_burst(60, 16000, level)) == pytest.approx(level, abs=0.5)
    assert len(noise_burst(60, 16000, level)) == 60 * 16 * 2
