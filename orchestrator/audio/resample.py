"""Sample-rate conversion for S16LE mono PCM, streaming or one-shot (soxr).

The call leg runs at 8 or 16 kHz while realtime LLMs speak 24 kHz, so every brain's audio passes
through here. The streaming form keeps filter state between chunks: resampling chunk by chunk
with a fresh filter each time would click at every chunk boundary.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import soxr  # type: ignore[import-untyped]  # ships a .pyi but no py.typed

from orchestrator.audio.frames import SAMPLE_WIDTH, PcmAssembler

__all__ = ["Resampler", "resample"]

# "HQ" rather than "VHQ": telephone audio is band-limited to well under the Nyquist of any rate we
# convert between, so VHQ's steeper, longer filter buys nothing audible while costing more CPU per
# frame and more group delay — and delay is what a caller notices in a turn-taking conversation.
_QUALITY = "HQ"
# soxr is driven in float32, not int16: libsoxr dithers when it writes int16, so the same input
# gave different low bits run to run and chunking to chunking. Converting here keeps every
# output byte-exact and independent of how the input was chunked, which snapshot tests rely on.
_SCALE = 32768.0

_Float32Array = npt.NDArray[np.float32]


def _to_float(pcm: bytes) -> _Float32Array:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / np.float32(_SCALE)


def _to_pcm(samples: _Float32Array) -> bytes:
    pcm: npt.NDArray[np.int16] = np.clip(np.rint(samples * _SCALE), -32768, 32767).astype("<i2")
    return pcm.tobytes()


class Resampler:
    """Streaming converter from `in_rate` to `out_rate`; a pass-through when the rates match.

    Output arrives in bursts (the filter needs look-ahead); `flush()` drains the tail at the end
    of a stream. Odd byte counts are fine: a split sample is carried into the next call.
    """

    __slots__ = ("_assembler", "_in_rate", "_out_rate", "_stream")

    def __init__(self, in_rate: int, out_rate: int) -> None:
        if in_rate <= 0 or out_rate <= 0:
            raise ValueError(f"sample rates must be positive, got {in_rate} -> {out_rate}")
        self._in_rate = in_rate
        self._out_rate = out_rate
        self._assembler = PcmAssembler()
        self._stream: soxr.ResampleStream | None = (
            None
            if in_rate == out_rate
            else soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality=_QUALITY)
        )

    @property
    def in_rate(self) -> int:
        return self._in_rate

    @property
    def out_rate(self) -> int:
        return self._out_rate

    def process(self, pcm: bytes) -> bytes:
        """Convert the next chunk; may return less or more than its share as the filter fills."""
        whole = self._assembler.feed(pcm)
        if self._stream is None:
            return whole
        if not whole:
            return b""
        return _to_pcm(self._stream.resample_chunk(_to_float(whole)))

    def flush(self) -> bytes:
        """Drain the filter at the end of a stream; the resampler is then ready for a new one."""
        self._assembler.reset()  # a lone trailing byte is half a sample: nothing to play
        if self._stream is None:
            return b""
        tail = self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        self._stream.clear()
        return _to_pcm(tail)


def resample(pcm: bytes, in_rate: int, out_rate: int) -> bytes:
    """Convert a whole clip at once (a trailing odd byte is dropped)."""
    usable = len(pcm) - len(pcm) % SAMPLE_WIDTH
    if in_rate == out_rate:
        return bytes(pcm[:usable])
    return _to_pcm(soxr.resample(_to_float(pcm[:usable]), in_rate, out_rate, quality=_QUALITY))
