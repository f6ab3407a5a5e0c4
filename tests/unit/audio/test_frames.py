"""PCM framing: odd-byte carry, stereo split, exact frames and size arithmetic."""

from __future__ import annotations

import math

import numpy as np
import pytest

from orchestrator.audio import (
    FrameSplitter,
    PcmAssembler,
    bytes_to_ms,
    ms_to_bytes,
    rms_dbfs,
    silence,
)


def _ramp(samples: int) -> bytes:
    return (np.arange(samples) % 30000).astype("<i2").tobytes()


def test_assembler_reassembles_641_byte_chunks_exactly() -> None:
    """Odd-sized socket chunks come out as the same sample stream, a split sample carried over."""
    pcm = _ramp(16000)
    assembler = PcmAssembler()
    out = [assembler.feed(pcm[i : i + 641]) for i in range(0, len(pcm), 641)]
    assert all(len(chunk) % 2 == 0 for chunk in out)
    assert b"".join(out) == pcm
    assert assembler.pending == 0


def test_assembler_holds_a_lone_byte_until_its_partner_arrives() -> None:
    """A single byte is half a sample: nothing comes out until the other half does."""
    assembler = PcmAssembler()
    assert assembler.feed(b"\x34") == b""
    assert assembler.pending == 1
    assert assembler.feed(b"\x12\x78") == b"\x34\x12"
    assert assembler.feed(b"\x56") == b"\x78\x56"


@pytest.mark.parametrize("keep", [0, 1])
def test_assembler_splits_stereo_into_the_kept_channel(keep: int) -> None:
    """Interleaved stereo (caller first) yields only the kept channel, across partial frames."""
    caller = np.arange(0, 3000, dtype="<i2")
    agent = -np.arange(0, 3000, dtype="<i2")
    stereo = np.column_stack([caller, agent]).astype("<i2").tobytes()
    assembler = PcmAssembler(channels=2, keep_channel=keep)
    out = b"".join(assembler.feed(stereo[i : i + 643]) for i in range(0, len(stereo), 643))
    assert out == (caller if keep == 0 else agent).tobytes()


def test_assembler_rejects_a_channel_it_does_not_have() -> None:
    """Keeping channel 2 of a stereo stream is a programming error, caught at construction."""
    with pytest.raises(ValueError, match="keep_channel"):
        PcmAssembler(channels=2, keep_channel=2)


def test_splitter_returns_exact_frames_and_keeps_the_rest() -> None:
    """Frames are exactly frame_bytes long; the remainder waits for the next feed or flush."""
    splitter = FrameSplitter(640)
    first = splitter.feed(bytes(1000))
    second = splitter.feed(bytes(1000))
    assert [len(f) for f in first] == [640]
    assert [len(f) for f in second] == [640, 640]
    assert splitter.pending == 80
    assert splitter.flush() == bytes(80)
    assert splitter.flush() == b""


def test_splitter_preserves_byte_order_across_feeds() -> None:
    """Concatenated frames plus the flushed tail equal the input stream."""
    pcm = _ramp(5000)
    splitter = FrameSplitter(320)
    frames = [f for i in range(0, len(pcm), 777) for f in splitter.feed(pcm[i : i + 777])]
    assert b"".join(frames) + splitter.flush() == pcm


def test_size_helpers_convert_between_ms_and_bytes() -> None:
    """20 ms is 640 bytes at 16 kHz and 320 at 8 kHz, and back again."""
    assert ms_to_bytes(20, 16000) == 640
    assert ms_to_bytes(20, 8000) == 320
    assert bytes_to_ms(640, 16000) == 20
    assert bytes_to_ms(48000, 24000) == 1000
    assert silence(20, 16000) == bytes(640)


def test_rms_dbfs_measures_level_relative_to_full_scale() -> None:
    """A full-scale square wave is 0 dBFS, half of it about -6 dBFS, silence -inf."""
    square = np.tile(np.array([32767, -32768], dtype="<i2"), 100).tobytes()
    half = np.tile(np.array([16384, -16384], dtype="<i2"), 100).tobytes()
    assert rms_dbfs(square) == pytest.approx(0.0, abs=0.01)
    assert rms_dbfs(half) == pytest.approx(-6.02, abs=0.01)
    assert rms_dbfs(silence(20, 16000)) == -math.inf
    assert rms_dbfs(b"") == -math.inf


def test_frame_splitter_hands_back_whole_frames_without_copying_them() -> None:
    """A chunk of exactly one frame with nothing carried is returned as is; whole multiples are sliced."""
    splitter = FrameSplitter(4)
    chunk = b"abcd"
    assert splitter.feed(chunk)[0] is chunk
    assert splitter.feed(b"abcdefgh") == [b"abcd", b"efgh"]
    assert splitter.feed(b"ab") == []
    assert splitter.feed(b"cdef") == [b"abcd"]  # a carried remainder takes the buffered path
    assert splitter.flush() == b"ef"
