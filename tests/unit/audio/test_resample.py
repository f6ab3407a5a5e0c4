"""Sample-rate conversion: lengths, rates, continuity across chunks and odd bytes."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.audio import Resampler, resample


def _tone(hz: float, rate: int, seconds: float) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * hz * t) * 10000).astype("<i2").tobytes()


def _dominant_hz(pcm: bytes, rate: int) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(samples.size)))
    return float(np.argmax(spectrum) * rate / samples.size)


def _stream(resampler: Resampler, pcm: bytes, chunk: int) -> bytes:
    out = [resampler.process(pcm[i : i + chunk]) for i in range(0, len(pcm), chunk)]
    return b"".join(out) + resampler.flush()


@pytest.mark.parametrize(("in_rate", "out_rate"), [(24000, 16000), (16000, 24000), (8000, 16000)])
def test_resampler_output_has_the_target_length_and_pitch(in_rate: int, out_rate: int) -> None:
    """One second in gives one second out at the new rate, and a 440 Hz tone stays 440 Hz."""
    out = _stream(Resampler(in_rate, out_rate), _tone(440, in_rate, 1.0), chunk=960)
    assert len(out) == 2 * out_rate
    assert _dominant_hz(out, out_rate) == pytest.approx(440, abs=2)


def test_resampler_is_continuous_across_chunk_boundaries() -> None:
    """Streaming in 641-byte chunks gives the same samples as streaming in one piece."""
    tone = _tone(440, 24000, 1.0)
    whole = _stream(Resampler(24000, 16000), tone, chunk=len(tone))
    chunked = _stream(Resampler(24000, 16000), tone, chunk=641)
    assert chunked == whole


def test_resampler_streamed_matches_one_shot() -> None:
    """The streaming and one-shot forms produce the same audio, sample for sample within 1 LSB."""
    tone = _tone(300, 24000, 0.5)
    streamed = np.frombuffer(_stream(Resampler(24000, 16000), tone, chunk=480), dtype="<i2")
    one_shot = np.frombuffer(resample(tone, 24000, 16000), dtype="<i2")
    assert streamed.size == one_shot.size
    assert np.max(np.abs(streamed.astype(int) - one_shot.astype(int))) <= 1


def test_resampler_passes_through_equal_rates_with_odd_byte_carry() -> None:
    """Same rate in and out returns the bytes unchanged, still carrying a split sample."""
    resampler = Resampler(16000, 16000)
    assert resampler.process(b"\x01\x02\x03") == b"\x01\x02"
    assert resampler.process(b"\x04") == b"\x03\x04"
    assert resampler.flush() == b""


def test_resampler_can_start_a_new_stream_after_flush() -> None:
    """After flush the filter is clean: a second stream converts exactly like the first."""
    resampler = Resampler(24000, 16000)
    tone = _tone(440, 24000, 0.2)
    assert _stream(resampler, tone, chunk=480) == _stream(resampler, tone, chunk=480)


def test_resample_one_shot_drops_a_trailing_odd_byte() -> None:
    """A clip with an odd byte count is resampled as its whole samples."""
    tone = _tone(440, 16000, 0.1)
    assert resample(tone + b"\x00", 16000, 8000) == resample(tone, 16000, 8000)
    assert len(resample(tone, 16000, 8000)) == len(tone) // 2
