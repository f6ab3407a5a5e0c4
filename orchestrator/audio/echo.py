"""Remove the agent's own voice from a mono inbound mix before voice-activity detection.

With `track="both_tracks"` and a mono mix, Sautikit sends back the caller *plus* what we played.
Left alone, the agent's voice would look like a caller barging in on every sentence. The gate keeps
the audio we sent, placed at the loop time it plays at the far end, finds it in each inbound frame
(delay by FFT cross-correlation within `max_delay_ms`, gain by least squares) and subtracts it. This
is a single-tap canceller: it removes a delayed, scaled copy — what a digital mix does — not the
filtered echo of an acoustic path, which a stereo mix (`mixType` stereo: channels kept apart) or
`inbound_track` avoid altogether.

On a live loop the echo path is not as tidy as one fixed delay, and three guards keep it from
leaking:

- Inbound frames are placed by their position in the stream, on a clock set by the least late frame
  of the last few seconds (`_InboundClock`), not by when each one happened to arrive: a burst of
  frames held up behind a busy loop or network would otherwise make the delay seem to jump by the
  burst's length.
- A frame the tracked delay does not explain is searched for across the whole echo window. When it
  is still the agent's voice (a residual echo: the far end's playout slipped, a new utterance
  started on another tick), it is echo, not the caller, and is muted rather than passed to the
  detector. Caller speech over the agent does not match the reference that closely (double talk), so
  it goes through.
- Cleaning never makes a frame louder: a subtraction that adds energy was aimed at the wrong place.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import numpy.typing as npt

__all__ = ["EchoGate"]

_Samples = npt.NDArray[np.float32]

# The echo path is learned only from a near-perfect match: the agent's voice alone coming back. A
# weaker match (speech just starting, the caller talking over it) would teach a wrong delay; the
# learned one holds.
_LEARN_CORRELATION = 0.97
# A frame this well matched is echo alone, and its own delay (the learned one, give or take jitter)
# is used.
_TRACK_CORRELATION = 0.9
# A frame this well explained by the agent's voice at *any* delay in the window is residual echo,
# not the caller. Over a 20 ms frame a caller talking at even a third of the echo's level pulls the
# match below this.
_ECHO_CORRELATION = 0.95
# The learned delay stays while its match is at least this share of the best one.
_KEEP_RATIO = 0.9
# A subtraction that leaves at most this share of a frame's energy (-20 dB) found the echo where it
# was.
_REMOVED = 0.01
# A 20 ms frame louder than this (about -50 dBFS) has sound in it.
_SOUND_RMS = 100.0
# The delay is estimated over at least this many frames of continuous sound.
_MIN_RUN_FRAMES = 3
# How long the inbound clock remembers its least late frame: long enough to span any burst, short
# enough to follow a stream that really did fall behind (a lost packet, a platform that re-
# buffered).
_CLOCK_WINDOW_S = 2.0
# The residual-echo search also looks this far past a frame's arrival: audio leaves up to the
# pacer's lead before its place on the reference, and a far end catching up after a stall plays it
# that early.
_AHEAD_S = 0.1


class _InboundClock:
    """When each inbound sample was captured, from a stream that may arrive in bursts."""

    __slots__ = ("_lows", "_rate", "_received", "_window")

    def __init__(self, *, rate: int, window_s: float) -> None:
        self._rate = rate
        self._window = int(rate * window_s)
        self._received = 0
        # (samples received, lateness), lateness increasing from the front: the front is the
        # window's minimum.
        self._lows: deque[tuple[int, float]] = deque()

    def end_of(self, samples: int, arrived_s: float) -> float:
        """Loop time at which the `samples` just received ended, by the least late recent frame."""
        self._received += samples
        # A frame can only arrive late, never early: the least late frame of the last few seconds
        # shows the stream's true clock, and a burst of frames that waited behind a busy loop moves
        # nothing.
        lateness = arrived_s - self._received / self._rate
        lows = self._lows
        while lows and lows[-1][1] >= lateness:
            lows.pop()
        lows.append((self._received, lateness))
        while lows[0][0] <= self._received - self._window:
            lows.popleft()
        return lows[0][1] + self._received / self._rate


class EchoGate:
    """Per-call echo remover: `played()` what goes out, `clean()` what comes in.

    Usage::

        gate = EchoGate(rate=16000)
        gate.played(frame_out, at_s=loop.time())          # each outbound frame, where it will play
        caller_only = gate.clean(frame_in, arrived_s=loop.time())
    """

    __slots__ = (
        "_ahead",
        "_clock",
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

    def __init__(
        self, *, rate: int = 16000, max_delay_ms: int = 400, history_s: float = 4.0
    ) -> None:
        self._rate = rate
        self._max_delay = rate * max_delay_ms // 1000
        self._history = int(rate * history_s)
        # The reference signal as the far end plays it, on the loop clock: sample i plays at
        # _start_s + i/rate.
        self._reference: _Samples = np.zeros(0, dtype=np.float32)
        self._start_s: float | None = None
        self._span = rate // 4  # 250 ms of inbound audio to estimate the delay over
        self._jitter = rate * 3 // 1000  # 3 ms of timing jitter around each candidate delay
        self._ahead = round(rate * _AHEAD_S)
        self._recent: _Samples = np.zeros(0, dtype=np.float32)
        self._clock = _InboundClock(rate=rate, window_s=_CLOCK_WINDOW_S)
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
        """Inbound audio that finished arriving at loop time `arrived_s`, minus the agent's echo."""
        inbound = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
        n = inbound.size
        ended_s = self._clock.end_of(n, arrived_s)
        self._recent = np.concatenate([self._recent, inbound])[-self._span :]
        if self._start_s is None or n == 0:
            return pcm
        end = round((ended_s - self._start_s) * self._rate)
        window_begin = end - self._span - self._max_delay
        if end <= 0 or window_begin >= self._reference.size:
            return pcm
        # Where this frame's echo can be: up to `max_delay` before it on the stream's clock, and for
        # a frame that arrived late, as late as its arrival (a far end catching up after a stall
        # plays what it has).
        late = max(0, round((arrived_s - ended_s) * self._rate))
        nearby = self._segment(end - n - self._max_delay, end + late + self._ahead)
        if not np.any(nearby):
            return pcm  # nothing played lately: no echo to remove
        window = self._segment(window_begin, end)
        self._learn(window, n)
        in_energy = float(np.dot(inbound, inbound))
        residual = self._subtract(inbound, in_energy, window)
        removed = residual is not None and float(np.dot(residual, residual)) <= _REMOVED * in_energy
        if (
            not removed
            and in_energy > _SOUND_RMS * _SOUND_RMS * n
            and _best_match(nearby, inbound, in_energy) >= _ECHO_CORRELATION
        ):
            # Not the echo the tracked delay predicts, yet still the agent's voice at some other
            # delay (the far end's playout slipped): residual echo. Mute it rather than call it the
            # caller.
            self.removed_frames += 1
            return bytes(2 * n)
        if residual is None:
            return pcm
        if float(np.dot(residual, residual)) >= in_energy:
            return pcm  # subtracting made it louder: the reference was misplaced, keep what came in
        self.removed_frames += 1
        return np.clip(residual, -32768, 32767).astype("<i2").tobytes()

    def _learn(self, window: _Samples, n: int) -> None:
        """Learn the echo path (delay and gain) from the run of sound that ends with this frame."""
        # Voiced speech is nearly periodic, so a single frame matches at several pitch periods; the
        # delay is estimated over the run of sound that ends now (at least `_MIN_RUN_FRAMES` frames,
        # at most `_span`), so that silence before it cannot make a wrong delay look good.
        run = self._sound_run(n)
        if run < _MIN_RUN_FRAMES * n:
            return
        recent = self._recent[-run:]
        # Only the part of the window that can hold this run's echo: the last `run + max_delay`
        # samples.
        search = window[-(run + self._max_delay) :]
        offset = search.size - run
        size = 1 << int(np.ceil(np.log2(search.size + run)))
        corr = np.fft.irfft(np.fft.rfft(search, size) * np.conj(np.fft.rfft(recent, size)), size)
        corr = corr[: offset + 1]
        lag = int(np.argmax(np.abs(corr)))
        if self._delay is not None and 0 <= offset - self._delay < corr.size:
            # Nearly periodic speech matches well at several lags: keep the known delay while it
            # still fits.
            known = offset - self._delay
            if abs(float(corr[known])) >= _KEEP_RATIO * abs(float(corr[lag])):
                lag = known
        matched = search[lag : lag + run]
        ref_energy = float(np.dot(matched, matched))
        in_energy = float(np.dot(recent, recent))
        if ref_energy > 0 and in_energy > 0:
            self.last_correlation = abs(float(corr[lag])) / float(np.sqrt(ref_energy * in_energy))
            if self.last_correlation >= _LEARN_CORRELATION:
                # Echo alone: learn the path. A digital mix's delay and gain stay put for the call.
                self._delay = offset - lag
                self._gain = float(np.dot(recent, matched)) / ref_energy

    def _subtract(self, inbound: _Samples, in_energy: float, window: _Samples) -> _Samples | None:
        """The frame minus its echo at the tracked delay; None when there is nothing to subtract."""
        if self._delay is None:
            return None
        n = inbound.size
        # On a live loop the far end's playout buffer runs a frame fuller or emptier now and then,
        # so the delay jumps by whole frames (plus a little jitter). Try the learned delay and one
        # frame either side, each give or take `_jitter`; nearly periodic speech would fool a wider
        # search.
        start = window.size - n - self._delay
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
        if best_score >= _TRACK_CORRELATION:
            # The frame is (nearly) all echo: follow the path's moves.
            start = best_start
            self._delay = window.size - n - start
        ref = window[start : start + n]
        if ref.size < n or not np.any(ref):
            return None
        return inbound - self._gain * ref

    def _segment(self, begin: int, stop: int) -> _Samples:
        """Reference samples [begin, stop), zero where nothing was recorded as playing."""
        inside = self._reference[max(0, begin) : max(0, min(stop, self._reference.size))]
        head = min(stop - begin, max(0, -begin))
        tail = (stop - begin) - head - inside.size
        if not head and not tail:
            return inside
        return np.concatenate(
            [np.zeros(head, dtype=np.float32), inside, np.zeros(tail, dtype=np.float32)]
        )

    def _sound_run(self, frame: int) -> int:
        """How many of the latest inbound samples, in whole frames, are continuous sound."""
        usable = self._recent.size // frame * frame
        if usable == 0:
            return 0
        frames = self._recent[-usable:].reshape(-1, frame)
        loud = np.sqrt(np.mean(frames * frames, axis=1)) > _SOUND_RMS
        quiet = np.flatnonzero(~loud)
        count = int(loud.size)
        frames_in_run = count if quiet.size == 0 else count - 1 - int(quiet[-1])
        return frames_in_run * frame


def _best_match(reference: _Samples, frame: _Samples, frame_energy: float) -> float:
    """The best normalised correlation of `frame` with any same-length stretch of `reference`."""
    n = frame.size
    if reference.size < n or not np.any(reference):
        return 0.0
    size = 1 << int(np.ceil(np.log2(reference.size + n)))
    corr = np.fft.irfft(np.fft.rfft(reference, size) * np.conj(np.fft.rfft(frame, size)), size)
    corr = corr[: reference.size - n + 1]
    squares = np.concatenate([[0.0], np.cumsum(reference.astype(np.float64) ** 2)])
    energies = squares[n:] - squares[:-n]
    # Where the reference is near silent any match is noise: count it as at least 1% of the frame's
    # energy (-20 dB), so a faint stretch cannot score high.
    floor = max(frame_energy * 0.01, 1e-6)
    normalised = np.abs(corr) / np.sqrt(np.maximum(energies, floor) * frame_energy)
    return float(np.max(normalised))
