"""Remove the agent's own voice from a mono inbound mix before voice-activity detection.

With `track="both_tracks"` and a mono mix, Sautikit sends back the caller *plus* what we played. Left alone, the
agent's voice would look like a caller barging in on every sentence. The gate keeps the audio we sent, placed at
the loop time it plays at the far end, finds it in each inbound frame (delay by FFT cross-correlation within
`max_delay_ms`, gain by least squares) and subtracts it. This is a single-tap canceller: it removes a delayed,
scaled copy — what a digital mix does — not the filtered echo of an acoustic path, which a stereo mix
(`mixType` stereo: channels kept apart) or `inbound_track` avoid altogether.
"""

from __future__ import annotations

import numpy as np

__all__ = ["EchoGate"]

# Below this normalised correlation the inbound frame is not the agent's echo (it is the caller, or silence).
_MIN_CORRELATION = 0.5


class EchoGate:
    """Per-call echo remover: `played()` what goes out, `clean()` what comes in."""

    __slots__ = (
        "_delay",
        "_gain",
        "_history",
        "_max_delay",
        "_rate",
        "_recent",
        "_reference",
        "_span",
        "_start_s",
        "last_correlation",
        "removed_frames",
    )

    def __init__(self, *, rate: int = 16000, max_delay_ms: int = 400, history_s: float = 4.0) -> None:
        self._rate = rate
        self._max_delay = rate * max_delay_ms // 1000
        self._history = int(rate * history_s)
        # The reference signal as the far end plays it, on the loop clock: sample i plays at _start_s + i/rate.
        self._reference = np.zeros(0, dtype=np.float32)
        self._start_s: float | None = None
        self._span = rate // 4  # 250 ms of inbound audio to estimate the delay over
        self._recent = np.zeros(0, dtype=np.float32)
        self.removed_frames = 0
        self.last_correlation = 0.0
        self._delay: int | None = None
        self._gain = 0.0

    def played(self, pcm: bytes, *, at_s: float) -> None:
        """Record agent audio that starts playing at loop time `at_s`."""
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
        if self._start_s is None:
            self._start_s = at_s
        offset = round((at_s - self._start_s) * self._rate)
        end = offset + samples.size
        if end > self._reference.size:
            self._reference = np.concatenate(
                [self._reference, np.zeros(end - self._reference.size, dtype=np.float32)]
            )
        self._reference[offset:end] = samples
        excess = self._reference.size - self._history
        if excess > 0:
            self._reference = self._reference[excess:]
            self._start_s += excess / self._rate

    def clean(self, pcm: bytes, *, arrived_s: float) -> bytes:
        """Inbound audio that ended arriving at loop time `arrived_s`, with the agent's echo removed."""
        inbound = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
        n = inbound.size
        # Voiced speech is nearly periodic, so one 20 ms frame matches the reference at several pitch periods:
        # the delay is estimated over the last `_span` samples, which only line up at the true one.
        self._recent = np.concatenate([self._recent, inbound])[-self._span :]
        if self._start_s is None or n == 0:
            return pcm
        span = self._recent.size
        end = round((arrived_s - self._start_s) * self._rate)
        begin = end - span - self._max_delay
        if end <= 0 or begin >= self._reference.size:
            return pcm
        window = self._reference[max(0, begin) : max(0, min(end, self._reference.size))]
        if begin < 0:
            window = np.concatenate([np.zeros(-begin, dtype=np.float32), window])
        if window.size < span or not np.any(window[-(n + self._max_delay) :]):
            return pcm
        offset = window.size - span  # where the last `span` samples would sit with no delay at all
        size = 1 << int(np.ceil(np.log2(window.size + span)))
        corr = np.fft.irfft(np.fft.rfft(window, size) * np.conj(np.fft.rfft(self._recent, size)), size)
        corr = corr[: offset + 1]
        lag = int(np.argmax(np.abs(corr)))
        history_ref = window[lag : lag + span]
        ref_energy = float(np.dot(history_ref, history_ref))
        in_energy = float(np.dot(self._recent, self._recent))
        if ref_energy > 0 and in_energy > 0:
            self.last_correlation = abs(float(corr[lag])) / np.sqrt(ref_energy * in_energy)
            if self.last_correlation >= _MIN_CORRELATION:
                # Echo alone: learn the path. The delay and gain of a digital mix stay put for the call.
                self._delay = offset - lag
                self._gain = float(np.dot(self._recent, history_ref)) / ref_energy
        if self._delay is None:
            return pcm
        # While the caller talks over the agent the match is poor, but the learned path still holds.
        start = window.size - n - self._delay
        ref = window[start : start + n]
        if ref.size < n or not np.any(ref):
            return pcm
        residual = inbound - self._gain * ref
        self.removed_frames += 1
        return np.clip(residual, -32768, 32767).astype("<i2").tobytes()
