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

# The echo path is learned only from a near-perfect match: the agent's voice alone coming back. A weaker
# match (speech just starting, the caller talking over it) would teach a wrong delay; the learned one holds.
_LEARN_CORRELATION = 0.97
# A frame this well matched is echo alone, and its own delay (the learned one, give or take jitter) is used.
_TRACK_CORRELATION = 0.9
# The learned delay stays while its match is at least this share of the best one.
_KEEP_RATIO = 0.9
# A 20 ms frame louder than this (about -50 dBFS) has sound in it.
_SOUND_RMS = 100.0
# The delay is estimated over at least this many frames of continuous sound.
_MIN_RUN_FRAMES = 3


class EchoGate:
    """Per-call echo remover: `played()` what goes out, `clean()` what comes in."""

    __slots__ = (
        "_delay",
        "_gain",
        "_history",
        "_jitter",
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
        self._jitter = rate * 3 // 1000  # 3 ms of timing jitter around each candidate delay
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
        self._recent = np.concatenate([self._recent, inbound])[-self._span :]
        if self._start_s is None or n == 0:
            return pcm
        # Voiced speech is nearly periodic, so a single frame matches at several pitch periods; the delay is
        # estimated over the run of sound that ends now (at least `_MIN_RUN_FRAMES` frames, at most `_span`),
        # so that silence before it cannot make a wrong delay look good.
        run = self._sound_run(n)
        end = round((arrived_s - self._start_s) * self._rate)
        window_begin = end - self._span - self._max_delay
        if end <= 0 or window_begin >= self._reference.size:
            return pcm
        window = self._reference[max(0, window_begin) : max(0, min(end, self._reference.size))]
        # Pad to exactly [window_begin, end): nothing played before the reference began or after it ends.
        head = max(0, -window_begin)
        tail = (end - window_begin) - head - window.size
        if head or tail:
            window = np.concatenate(
                [np.zeros(head, dtype=np.float32), window, np.zeros(tail, dtype=np.float32)]
            )
        if window.size < self._span or not np.any(window[-(n + self._max_delay) :]):
            return pcm
        if run >= _MIN_RUN_FRAMES * n:
            recent = self._recent[-run:]
            # Only the part of the window that can hold this run's echo: the last `run + max_delay` samples.
            search = window[-(run + self._max_delay) :]
            offset = search.size - run
            size = 1 << int(np.ceil(np.log2(search.size + run)))
            corr = np.fft.irfft(np.fft.rfft(search, size) * np.conj(np.fft.rfft(recent, size)), size)
            corr = corr[: offset + 1]
            lag = int(np.argmax(np.abs(corr)))
            if self._delay is not None and 0 <= offset - self._delay < corr.size:
                # Nearly periodic speech matches well at several lags: keep the known delay while it still fits.
                known = offset - self._delay
                if abs(float(corr[known])) >= _KEEP_RATIO * abs(float(corr[lag])):
                    lag = known
            matched = search[lag : lag + run]
            ref_energy = float(np.dot(matched, matched))
            in_energy = float(np.dot(recent, recent))
            if ref_energy > 0 and in_energy > 0:
                self.last_correlation = abs(float(corr[lag])) / np.sqrt(ref_energy * in_energy)
                if self.last_correlation >= _LEARN_CORRELATION:
                    # Echo alone: learn the path. A digital mix's delay and gain stay put for the call.
                    self._delay = offset - lag
                    self._gain = float(np.dot(recent, matched)) / ref_energy
        if self._delay is None:
            return pcm
        # On a live loop the far end's playout buffer runs a frame fuller or emptier now and then, so the
        # delay jumps by whole frames (plus a little jitter). Try the learned delay and one frame either side,
        # each give or take `_jitter`; nearly periodic speech would fool a wider search.
        start = window.size - n - self._delay
        in_energy = float(np.dot(inbound, inbound))
        best_score, best_start = 0.0, start
        for shift in (0, -n, n):
            low = max(0, start + shift - self._jitter)
            high = min(window.size - n, start + shift + self._jitter)
            if high < low:
                continue
            nearby = window[low : high + n]
            energies = np.convolve(nearby * nearby, np.ones(n, dtype=np.float32), mode="valid")
            scores = np.abs(np.correlate(nearby, inbound, mode="valid"))
            normalised = scores / np.sqrt(np.maximum(energies * in_energy, 1e-6))
            index = int(np.argmax(normalised))
            if normalised[index] > best_score:
                best_score, best_start = float(normalised[index]), low + index
        if best_score >= _TRACK_CORRELATION:  # the frame is (nearly) all echo: follow the path's moves
            start = best_start
            self._delay = window.size - n - start
        ref = window[start : start + n]
        if ref.size < n or not np.any(ref):
            return pcm
        residual = inbound - self._gain * ref
        self.removed_frames += 1
        return np.clip(residual, -32768, 32767).astype("<i2").tobytes()

    def _sound_run(self, frame: int) -> int:
        """How many of the latest inbound samples, in whole frames, are continuous sound."""
        usable = self._recent.size // frame * frame
        if usable == 0:
            return 0
        frames = self._recent[-usable:].reshape(-1, frame)
        loud = np.sqrt(np.mean(frames * frames, axis=1)) > _SOUND_RMS
        quiet = np.flatnonzero(~loud)
        frames_in_run = loud.size if quiet.size == 0 else loud.size - 1 - int(quiet[-1])
        return frames_in_run * frame
