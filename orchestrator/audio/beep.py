"""A voicemail beep: one steady tone, loud and pure, for a tenth of a second or more.

Speech spreads its energy over many frequencies and changes every few tens of milliseconds; the beep that
ends a voicemail greeting puts nearly all of it in one bin between about 400 Hz and 2.5 kHz. Each 20 ms frame
is windowed and measured with an FFT; `BeepDetector.feed` says when enough such frames came in a row.
Runs only while an outbound call is deciding whether a person answered.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BeepDetector"]

_MIN_HZ = 400.0
_MAX_HZ = 2500.0
# Share of the frame's energy in the peak bin and its neighbours: speech stays well under it.
_PURITY = 0.6
_MIN_RMS = 300.0  # about -40 dBFS: quieter tones are line noise
_FRAME_MS = 20


class BeepDetector:
    """Feed caller PCM (S16LE mono); `feed` returns True once, when a beep has lasted `min_ms`."""

    __slots__ = ("_buffer", "_frame", "_needed", "_rate", "_run", "_window")

    def __init__(self, *, rate: int, min_ms: int = 120) -> None:
        self._rate = rate
        self._frame = rate * _FRAME_MS // 1000
        self._window = np.hanning(self._frame).astype(np.float32)
        self._needed = max(1, min_ms // _FRAME_MS)
        self._buffer = np.zeros(0, dtype=np.float32)
        self._run = 0

    def feed(self, pcm: bytes) -> bool:
        samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").astype(np.float32)
        self._buffer = np.concatenate((self._buffer, samples))
        heard = False
        while self._buffer.size >= self._frame:
            frame, self._buffer = self._buffer[: self._frame], self._buffer[self._frame :]
            self._run = self._run + 1 if self._is_tone(frame) else 0
            if self._run == self._needed:
                heard = True
        return heard

    @property
    def in_tone(self) -> bool:
        """The last frame was part of a tone (a beep still sounding)."""
        return self._run > 0

    def _is_tone(self, frame: np.ndarray) -> bool:
        if float(np.sqrt(np.mean(frame * frame))) < _MIN_RMS:
            return False
        power = np.abs(np.fft.rfft(frame * self._window)) ** 2
        total = float(power.sum())
        peak = int(np.argmax(power))
        hz = peak * self._rate / self._frame
        if total <= 0 or not _MIN_HZ <= hz <= _MAX_HZ:
            return False
        return float(power[max(0, peak - 1) : peak + 2].sum()) / total >= _PURITY
