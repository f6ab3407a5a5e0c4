"""PCM framing: whole samples out of arbitrary socket chunks, fixed-size frames, size arithmetic.

Audio everywhere in this package is signed 16-bit little-endian PCM (S16LE). The platform's socket
delivers chunks of any size, odd byte counts included, so the assembler carries partial samples over
to the next chunk instead of dropping or misaligning them.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "SAMPLE_WIDTH",
    "FrameSplitter",
    "PcmAssembler",
    "bytes_to_ms",
    "ms_to_bytes",
    "rms_dbfs",
    "silence",
]

SAMPLE_WIDTH = 2  # bytes per S16LE sample
_FULL_SCALE = 32768.0


def ms_to_bytes(ms: float, rate: int) -> int:
    """Bytes of mono S16LE audio lasting `ms` milliseconds at `rate` Hz (whole samples)."""
    return round(rate * ms / 1000) * SAMPLE_WIDTH


def bytes_to_ms(n: int, rate: int) -> int:
    """Whole milliseconds of mono S16LE audio held in `n` bytes at `rate` Hz (rounded down)."""
    return (n // SAMPLE_WIDTH) * 1000 // rate


def silence(ms: float, rate: int) -> bytes:
    """`ms` milliseconds of digital silence."""
    return bytes(ms_to_bytes(ms, rate))


def rms_dbfs(pcm: bytes) -> float:
    """RMS level relative to full scale; -inf for empty or all-zero audio (odd byte ignored)."""
    samples = np.frombuffer(pcm, dtype="<i2", count=len(pcm) // SAMPLE_WIDTH)
    if samples.size == 0:
        return -math.inf
    mean_square = float(np.mean(np.square(samples, dtype=np.float64)))
    if mean_square == 0.0:
        return -math.inf
    return 10.0 * math.log10(mean_square / (_FULL_SCALE * _FULL_SCALE))


class PcmAssembler:
    """Turns socket chunks into whole mono samples, carrying partial samples across chunks.

    With `channels=2` the input is interleaved (the platform puts the caller first) and only
    `keep_channel` comes out.

    >>> a = PcmAssembler()
    >>> a.feed(b"\\x01\\x00\\x02"), a.feed(b"\\x00")
    (b'\\x01\\x00', b'\\x02\\x00')
    """

    __slots__ = ("_carry", "_channels", "_frame_bytes", "_keep")

    def __init__(self, channels: int = 1, keep_channel: int = 0) -> None:
        if channels < 1:
            raise ValueError(f"channels must be at least 1, got {channels}")
        if not 0 <= keep_channel < channels:
            raise ValueError(f"keep_channel must be in [0, {channels}), got {keep_channel}")
        self._channels = channels
        self._keep = keep_channel
        self._frame_bytes = SAMPLE_WIDTH * channels
        self._carry = b""

    @property
    def pending(self) -> int:
        """Bytes held back until the rest of their sample frame arrives."""
        return len(self._carry)

    def feed(self, data: bytes) -> bytes:
        """Return every whole mono sample now available; keep the incomplete tail for next time."""
        buf = self._carry + data if self._carry else data
        usable = len(buf) - len(buf) % self._frame_bytes
        self._carry = bytes(buf[usable:])
        if self._channels == 1:
            return bytes(buf[:usable])
        samples = np.frombuffer(buf, dtype="<i2", count=usable // SAMPLE_WIDTH)
        return samples[self._keep :: self._channels].tobytes()

    def reset(self) -> None:
        """Forget any carried partial sample."""
        self._carry = b""


class FrameSplitter:
    """Cuts a PCM byte stream into frames of exactly `frame_bytes`, keeping the remainder.

    >>> s = FrameSplitter(4)
    >>> s.feed(b"abcdef"), s.feed(b"gh"), s.flush()
    ([b'abcd'], [b'efgh'], b'')
    """

    __slots__ = ("_buf", "_frame_bytes")

    def __init__(self, frame_bytes: int) -> None:
        if frame_bytes <= 0:
            raise ValueError(f"frame_bytes must be positive, got {frame_bytes}")
        self._frame_bytes = frame_bytes
        self._buf = bytearray()

    @property
    def frame_bytes(self) -> int:
        return self._frame_bytes

    @property
    def pending(self) -> int:
        """Bytes waiting for the rest of their frame."""
        return len(self._buf)

    def feed(self, pcm: bytes) -> list[bytes]:
        """Append `pcm` and return every complete frame, oldest first."""
        size = self._frame_bytes
        buf = self._buf
        if not buf and type(pcm) is bytes and len(pcm) % size == 0:
            # The common case (whole frames, nothing carried): no trip through the buffer.
            if len(pcm) == size:
                return [pcm]
            return [pcm[i : i + size] for i in range(0, len(pcm), size)]
        buf += pcm
        whole = len(buf) - len(buf) % size
        if whole == 0:
            return []
        view = memoryview(buf)
        try:
            frames = [bytes(view[i : i + size]) for i in range(0, whole, size)]
        finally:
            view.release()  # a live view would forbid resizing the buffer below
        del buf[:whole]
        return frames

    def flush(self) -> bytes:
        """Return the partial frame held back (possibly empty) and start afresh."""
        rest = bytes(self._buf)
        self._buf.clear()
        return rest
