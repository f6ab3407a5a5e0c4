"""WAV files of S16LE PCM (stdlib `wave`), and two-track interleaving for call recordings.

These functions do blocking file I/O: from a coroutine, run them with `asyncio.to_thread`.
"""

from __future__ import annotations

import os
import wave

import numpy as np

from orchestrator.audio.frames import SAMPLE_WIDTH

__all__ = ["interleave", "read_wav", "write_wav"]


def write_wav(path: str | os.PathLike[str], pcm: bytes, rate: int, channels: int = 1) -> None:
    """Write S16LE `pcm` (interleaved when `channels` > 1) as a WAV file."""
    if len(pcm) % (SAMPLE_WIDTH * channels):
        raise ValueError(f"{len(pcm)} bytes is not a whole number of {channels}-channel frames")
    with wave.open(os.fspath(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(SAMPLE_WIDTH)
        out.setframerate(rate)
        out.writeframes(pcm)


def read_wav(path: str | os.PathLike[str]) -> tuple[bytes, int, int]:
    """Read a 16-bit PCM WAV file: (pcm, rate, channels)."""
    with wave.open(os.fspath(path), "rb") as src:
        if src.getsampwidth() != SAMPLE_WIDTH:
            raise ValueError(f"{path}: expected 16-bit samples, got {8 * src.getsampwidth()}-bit")
        return src.readframes(src.getnframes()), src.getframerate(), src.getnchannels()


def interleave(left: bytes, right: bytes) -> bytes:
    """Two mono tracks as one stereo stream; the shorter track is padded with silence."""
    a = np.frombuffer(left, dtype="<i2", count=len(left) // SAMPLE_WIDTH)
    b = np.frombuffer(right, dtype="<i2", count=len(right) // SAMPLE_WIDTH)
    stereo = np.zeros((max(a.size, b.size), 2), dtype="<i2")
    stereo[: a.size, 0] = a
    stereo[: b.size, 1] = b
    return stereo.tobytes()
