"""WAV round trips and two-track interleaving."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from orchestrator.audio import interleave, read_wav, synthesize_speech, write_wav


def test_wav_round_trips_pcm_rate_and_channels(tmp_path: Path) -> None:
    """What write_wav writes, read_wav reads back unchanged."""
    pcm = synthesize_speech("testing one two", rate=8000)
    path = tmp_path / "call.wav"
    write_wav(path, pcm, 8000)
    assert read_wav(path) == (pcm, 8000, 1)


def test_interleave_pads_the_shorter_track_with_silence() -> None:
    """Caller left, agent right; the shorter track continues as zeros."""
    left = np.array([1, 2, 3], dtype="<i2").tobytes()
    right = np.array([-1], dtype="<i2").tobytes()
    stereo = np.frombuffer(interleave(left, right), dtype="<i2")
    assert stereo.tolist() == [1, -1, 2, 0, 3, 0]


def test_two_track_recording_round_trips(tmp_path: Path) -> None:
    """An interleaved two-track recording is stored and read back as stereo."""
    stereo = interleave(synthesize_speech("caller"), synthesize_speech("agent says more"))
    path = tmp_path / "two.wav"
    write_wav(path, stereo, 16000, channels=2)
    assert read_wav(path) == (stereo, 16000, 2)


def test_read_wav_rejects_non_16_bit_files(tmp_path: Path) -> None:
    """8-bit audio is not S16LE: reading it fails with a clear message."""
    path = tmp_path / "u8.wav"
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(1)
        out.setframerate(8000)
        out.writeframes(bytes(80))
    with pytest.raises(ValueError, match="16-bit"):
        read_wav(path)


def test_write_wav_rejects_a_partial_frame(tmp_path: Path) -> None:
    """An odd byte count cannot be a 16-bit WAV."""
    with pytest.raises(ValueError, match="whole number"):
        write_wav(tmp_path / "bad.wav", b"\x00\x00\x00", 16000)
