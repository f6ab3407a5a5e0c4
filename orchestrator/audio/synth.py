"""Deterministic speech-like audio for scripted calls and the simulator, where TTS is not needed.

Each word becomes a voiced segment: harmonics of a slowly wandering pitch, shaped by a vowel-like
formant envelope and pulsed at syllable rate, so webrtcvad hears speech and the spectrum looks
plausible on a plot. Words are separated by short gaps, longer at punctuation. The same inputs
always give the same bytes (the seed comes from the text), so snapshot tests stay stable, and
`word_timings` says exactly where each word lies, so a barge-in can be mapped to the words heard.
"""

from __future__ import annotations

import hashlib
import math
import re

import numpy as np
import numpy.typing as npt

__all__ = ["noise_burst", "synthesize_speech", "white_noise", "word_timings"]

_FloatArray = npt.NDArray[np.float64]

_TOKEN = re.compile(r"\S+")
_WORD_GAP_MS = 70
_CLAUSE_GAP_MS = 180  # after , ; :
_SENTENCE_GAP_MS = 320  # after . ! ? — still under a typical 400 ms end-of-turn silence
_MIN_WORD_CHARS = 2
_SYLLABLE_MS = 220  # about 4.5 syllables per second
_EDGE_MS = 8  # fade at word edges: a hard edge would click
_PEAK = 0.5 * 32767  # about -6 dBFS peak, leaving headroom for added noise
_FULL_SCALE = 32768.0
# (frequency Hz, bandwidth Hz) of the first three formants of a few vowels.
_VOWELS: tuple[tuple[tuple[float, float], ...], ...] = (
    ((730, 90), (1090, 110), (2440, 170)),  # a
    ((530, 60), (1840, 100), (2480, 140)),  # e
    ((270, 60), (2290, 100), (3010, 150)),  # i
    ((570, 70), (840, 80), (2410, 160)),  # o
    ((300, 60), (870, 80), (2240, 140)),  # u
)


def word_timings(text: str, *, ms_per_char: int = 55) -> list[tuple[str, int, int]]:
    """(word, start_ms, end_ms) for each word `synthesize_speech` would say for `text`."""
    timings: list[tuple[str, int, int]] = []
    gap_after_previous = 0
    cursor = 0
    for token in _TOKEN.findall(text):
        letters = sum(ch.isalnum() for ch in token)
        if letters == 0:  # a lone dash or ellipsis: a pause, not a word
            gap_after_previous = max(gap_after_previous, _gap_after(token))
            continue
        if timings:
            cursor += gap_after_previous
        end = cursor + max(letters, _MIN_WORD_CHARS) * ms_per_char
        timings.append((token, cursor, end))
        cursor = end
        gap_after_previous = _gap_after(token)
    return timings


def synthesize_speech(
    text: str,
    *,
    rate: int = 16000,
    pitch_hz: float = 140.0,
    ms_per_char: int = 55,
    seed: int | None = None,
) -> bytes:
    """Speech-like S16LE mono audio for `text`, laid out exactly as `word_timings` says."""
    timings = word_timings(text, ms_per_char=ms_per_char)
    if not timings:
        return b""
    if seed is None:
        seed = _seed_from(f"{text}|{rate}|{pitch_hz}|{ms_per_char}")
    rng = np.random.default_rng(seed)
    out = np.zeros(_samples(timings[-1][2], rate), dtype=np.float64)
    for _, start_ms, end_ms in timings:
        start, end = _samples(start_ms, rate), _samples(end_ms, rate)
        out[start:end] = _voiced_word(end - start, rate, pitch_hz, rng)
    return _to_pcm(out)


def white_noise(ms: int, rate: int, level_dbfs: float, seed: int = 0) -> bytes:
    """Gaussian white noise at an RMS of `level_dbfs`."""
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal(_samples(ms, rate))
    return _to_pcm(noise * _linear(level_dbfs))


def noise_burst(ms: int, rate: int, level_dbfs: float, seed: int = 0) -> bytes:
    """A cough- or click-like burst: sharp attack, fast decay, RMS of `level_dbfs` over `ms`."""
    n = _samples(ms, rate)
    if n == 0:
        return b""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / rate
    attack = np.minimum(1.0, t / 0.002)
    envelope = attack * np.exp(-t / max(ms / 4000, 1e-3))
    # Differencing tilts the noise bright, like a click or the rasp of a cough.
    burst = np.diff(rng.standard_normal(n + 1)) * envelope
    rms = float(np.sqrt(np.mean(np.square(burst))))
    return _to_pcm(burst / rms * _linear(level_dbfs) if rms > 0 else burst)


def _gap_after(token: str) -> int:
    last = token[-1]
    if last in ".!?…":
        return _SENTENCE_GAP_MS
    if last in ",;:—-":
        return _CLAUSE_GAP_MS
    return _WORD_GAP_MS


def _voiced_word(n: int, rate: int, pitch_hz: float, rng: np.random.Generator) -> _FloatArray:
    t = np.arange(n) / rate
    duration = n / rate
    # Pitch: a per-word offset, a slow wobble and a falling declination, as in natural speech.
    offset = rng.uniform(-0.08, 0.08)
    wobble = 0.05 * np.sin(2 * math.pi * 1.3 * t + rng.uniform(0, 2 * math.pi))
    f0 = pitch_hz * (1 + offset + wobble) * (1 - 0.06 * t / max(duration, 1e-3))
    phase = 2 * math.pi * np.cumsum(f0) / rate
    top = min(3800.0, 0.45 * rate)
    harmonics = np.arange(1, max(2, int(top / (pitch_hz * 1.2))))
    formants = _VOWELS[int(rng.integers(len(_VOWELS)))]
    freqs = harmonics * pitch_hz
    gains = 0.15 / harmonics  # a gentle spectral tilt under the formant peaks
    for formant_hz, bandwidth_hz in formants:
        gains = gains + 1 / (1 + ((freqs - formant_hz) / bandwidth_hz) ** 2)
    starts = rng.uniform(0, 2 * math.pi, size=harmonics.size)
    voiced = np.sin(np.outer(phase, harmonics) + starts) @ gains
    aspiration = 0.03 * rng.standard_normal(n) * float(np.max(np.abs(voiced)) or 1.0)
    syllables = max(1, round(duration * 1000 / _SYLLABLE_MS))
    pulse = np.sin(math.pi * ((t * syllables / max(duration, 1e-3)) % 1.0)) ** 2
    envelope = (0.35 + 0.65 * pulse) * _edge_fade(n, rate)
    signal: _FloatArray = (voiced + aspiration) * envelope
    peak = float(np.max(np.abs(signal)))
    return signal * (_PEAK / peak) if peak > 0 else signal


def _edge_fade(n: int, rate: int) -> _FloatArray:
    fade = np.ones(n)
    edge = min(n // 2, _samples(_EDGE_MS, rate))
    if edge:
        ramp = 0.5 - 0.5 * np.cos(np.linspace(0, math.pi, edge))
        fade[:edge] = ramp
        fade[n - edge :] = ramp[::-1]
    return fade


def _seed_from(key: str) -> int:
    # Not hash(): that is salted per process, and the audio must be identical across runs.
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little")


def _samples(ms: int, rate: int) -> int:
    return ms * rate // 1000


def _linear(level_dbfs: float) -> float:
    return _FULL_SCALE * 10 ** (level_dbfs / 20)


def _to_pcm(signal: _FloatArray) -> bytes:
    return np.clip(np.round(signal), -32768, 32767).astype("<i2").tobytes()
