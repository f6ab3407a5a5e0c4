"""Voice activity detection on the caller's audio: when did speech start, and when did it stop.

Two layers. A *voicing* classifies each 20 ms frame once: `WebRtcVoicing` (the webrtcvad GMM,
robust to noise) or `EnergyVoicing` (an RMS threshold, no dependency). An `Endpointer` turns that
stream of per-frame levels into `speech_started` / `speech_stopped` events placed at the audio
position where the speech really began or ended, not where the detector became sure of it —
barge-in and latency figures need the true position. Several endpointers may read one voicing
(a call's turn-taking and barge-in detectors differ only in how much silence ends speech), so a
frame is classified once however many views of it there are. `WebRtcVad` and `EnergyVad` are one
voicing with one endpointer, for code that needs a single view.

Every position is audio time (milliseconds of audio fed), the detector's own clock: decisions
taken on it stay right when audio arrives late or in bursts.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import webrtcvad  # type: ignore[import-untyped]  # ships no stubs or py.typed

from orchestrator.audio.frames import FrameSplitter, ms_to_bytes

__all__ = [
    "SILENT",
    "VOICED",
    "VOICED_IN_SPEECH",
    "Endpointer",
    "EnergyVad",
    "EnergyVoicing",
    "VadEvent",
    "VoiceActivityDetector",
    "Voicing",
    "WebRtcVad",
    "WebRtcVoicing",
    "make_vad",
    "make_voicing",
]

_FRAME_MS = 20
# A voicing's verdict on one frame. The middle level is the energy detector's hysteresis: loud
# enough to keep speech going, not loud enough to start it.
SILENT = 0
VOICED_IN_SPEECH = 1
VOICED = 2
_WEBRTC_RATES = frozenset({8000, 16000, 32000, 48000})
# Share of voiced frames in the min_speech_ms window that confirms speech: tolerates a dropped
# frame inside a syllable, but a burst shorter than the window can never reach it.
_SPEECH_RATIO = 0.8
_FULL_SCALE_SQUARED = 32768.0 * 32768.0
# webrtcvad's built-in hangover for 20 ms frames, per mode: (after a short sound, after a long
# one), in frames — the kOverHangMax1/2 tables of WebRTC's vad_core.c.
_WEBRTC_HANGOVER = {0: (4, 7), 1: (4, 7), 2: (3, 5), 3: (3, 5)}


@dataclass(frozen=True, slots=True, kw_only=True)
class VadEvent:
    """Speech began or ended at `at_ms`, counted from the start of the audio fed."""

    kind: Literal["speech_started", "speech_stopped"]
    at_ms: int


class VoiceActivityDetector(Protocol):
    """Feed caller audio in chunks of any size; get the speech edges found so far."""

    def feed(self, pcm: bytes) -> list[VadEvent]: ...

    def reset(self) -> None:
        """Forget all audio and state, as if newly made (positions restart at 0)."""


class Voicing(Protocol):
    """Classifies audio, fed in chunks of any size, once per 20 ms frame."""

    @property
    def hangover(self) -> tuple[int, int]:
        """Frames it keeps saying voiced after a sound, (onset, offset): for endpointers."""

    def feed(self, pcm: bytes) -> list[int]:
        """The level (`SILENT`, `VOICED_IN_SPEECH`, `VOICED`) of each whole frame now available."""

    def reset(self) -> None:
        """Drop any partial frame."""


class Endpointer:
    """Turns per-frame voicing levels into debounced speech edges, on audio time.

    `onset_hangover` and `offset_hangover` are frames a detector keeps saying "voiced" after the
    sound stopped (webrtcvad does this itself: a few frames after a short sound, more after a long
    one). Confirming speech needs that much more voiced audio, so a cough plus its hangover does
    not pass for `min_speech_ms` of speech, and the end of speech is placed before the hangover.
    A `VOICED_IN_SPEECH` frame counts as voiced only once speech has started (hysteresis).
    """

    __slots__ = (
        "_in_speech",
        "_last_voiced_end",
        "_need",
        "_offset_ms",
        "_position",
        "_silence_ms",
        "_size",
        "_started_at",
        "_window",
    )

    def __init__(
        self,
        *,
        min_speech_ms: int,
        min_silence_ms: int,
        onset_hangover: int = 0,
        offset_hangover: int = 0,
    ) -> None:
        if min_speech_ms < _FRAME_MS or min_silence_ms < _FRAME_MS:
            raise ValueError(f"min_speech_ms and min_silence_ms must be at least {_FRAME_MS}")
        speech_frames = max(1, round(min_speech_ms / _FRAME_MS))
        self._size = speech_frames + onset_hangover
        self._need = self._size - int(speech_frames * (1 - _SPEECH_RATIO))
        self._window: deque[bool] = deque(maxlen=self._size)
        self._silence_ms = min_silence_ms
        self._offset_ms = offset_hangover * _FRAME_MS
        self._position = 0  # ms of audio classified so far
        self._in_speech = False
        self._started_at = 0
        self._last_voiced_end = 0

    @classmethod
    def for_voicing(
        cls, voicing: Voicing, *, min_speech_ms: int, min_silence_ms: int
    ) -> Endpointer:
        """An endpointer matched to `voicing`'s hangover."""
        onset, offset = voicing.hangover
        return cls(
            min_speech_ms=min_speech_ms,
            min_silence_ms=min_silence_ms,
            onset_hangover=onset,
            offset_hangover=offset,
        )

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    @property
    def position_ms(self) -> int:
        """Milliseconds of audio stepped through so far: this detector's clock."""
        return self._position

    @property
    def speech_end_ms(self) -> int:
        """Where the latest speech ended (while it lasts: its last voiced frame), minus hangover."""
        return max(self._started_at + _FRAME_MS, self._last_voiced_end - self._offset_ms)

    def reset(self) -> None:
        self._window.clear()
        self._position = 0
        self._in_speech = False
        self._started_at = 0
        self._last_voiced_end = 0

    def step(self, level: int) -> VadEvent | None:
        """Take one frame's level; return the speech edge it confirms, if any."""
        start = self._position
        self._position += _FRAME_MS
        if self._in_speech:
            if level >= VOICED_IN_SPEECH:
                self._last_voiced_end = self._position
            # The detector's own hangover is counted as silence already heard.
            speech_end = self.speech_end_ms
            if self._position - speech_end >= self._silence_ms:
                self._in_speech = False
                self._window.clear()
                return VadEvent(kind="speech_stopped", at_ms=speech_end)
            return None
        window = self._window
        window.append(level >= VOICED)
        if len(window) < self._size or sum(window) < self._need:
            return None
        # Speech began at the first voiced frame of the confirming window.
        first = next(i for i, v in enumerate(window) if v)
        self._in_speech = True
        self._started_at = start - (len(window) - 1 - first) * _FRAME_MS
        self._last_voiced_end = self._position
        return VadEvent(kind="speech_started", at_ms=self._started_at)


class WebRtcVoicing:
    """webrtcvad on 20 ms frames; `mode` 0 (least) to 3 (most eager to reject non-speech)."""

    __slots__ = ("_mode", "_rate", "_splitter", "_vad")

    def __init__(self, *, rate: int = 16000, mode: int = 2) -> None:
        if rate not in _WEBRTC_RATES:
            raise ValueError(f"webrtcvad needs a rate in {sorted(_WEBRTC_RATES)}, got {rate}")
        if not 0 <= mode <= 3:
            raise ValueError(f"mode must be 0-3, got {mode}")
        self._rate = rate
        self._mode = mode
        self._vad = webrtcvad.Vad(mode)
        self._splitter = FrameSplitter(ms_to_bytes(_FRAME_MS, rate))

    @property
    def hangover(self) -> tuple[int, int]:
        return _WEBRTC_HANGOVER[self._mode]

    def feed(self, pcm: bytes) -> list[int]:
        is_speech = self._vad.is_speech
        rate = self._rate
        return [VOICED if is_speech(frame, rate) else SILENT for frame in self._splitter.feed(pcm)]

    def reset(self) -> None:
        self._splitter.flush()


class EnergyVoicing:
    """RMS threshold with hysteresis; cheap and dependency-free, but fooled by loud noise.

    A frame is `VOICED` above `threshold_dbfs`, and `VOICED_IN_SPEECH` down to
    `threshold_dbfs - hysteresis_db`, so a speaker trailing off is not cut mid-word.
    """

    __slots__ = ("_high", "_low", "_splitter")

    def __init__(
        self, *, rate: int = 16000, threshold_dbfs: float = -35.0, hysteresis_db: float = 6.0
    ) -> None:
        if hysteresis_db < 0:
            raise ValueError(f"hysteresis_db must not be negative, got {hysteresis_db}")
        # Compare mean squares with precomputed linear thresholds: no log per frame.
        self._high = _FULL_SCALE_SQUARED * 10 ** (threshold_dbfs / 10)
        self._low = _FULL_SCALE_SQUARED * 10 ** ((threshold_dbfs - hysteresis_db) / 10)
        self._splitter = FrameSplitter(ms_to_bytes(_FRAME_MS, rate))

    @property
    def hangover(self) -> tuple[int, int]:
        return (0, 0)

    def feed(self, pcm: bytes) -> list[int]:
        frames = self._splitter.feed(pcm)
        if not frames:
            return []
        if len(frames) == 1:
            # One frame is the usual chunk (every 20 ms, on every call): a dot product and two float
            # comparisons cost a tenth of the array path's mean, square and casts.
            samples = np.frombuffer(frames[0], dtype="<i2").astype(np.float64)
            power = float(samples.dot(samples)) / samples.size
            return [(power >= self._low) + (power >= self._high)]
        samples = np.frombuffer(b"".join(frames), dtype="<i2").astype(np.float64)
        powers = np.mean(np.square(samples.reshape(len(frames), -1)), axis=1)
        levels = (powers >= self._low).astype(np.int8) + (powers >= self._high).astype(np.int8)
        return [int(level) for level in levels]

    def reset(self) -> None:
        self._splitter.flush()


class _OneView:
    """One voicing read by one endpointer: the plain `VoiceActivityDetector`."""

    __slots__ = ("_endpointer", "_voicing")

    def __init__(self, voicing: Voicing, *, min_speech_ms: int, min_silence_ms: int) -> None:
        self._voicing = voicing
        self._endpointer = Endpointer.for_voicing(
            voicing, min_speech_ms=min_speech_ms, min_silence_ms=min_silence_ms
        )

    def feed(self, pcm: bytes) -> list[VadEvent]:
        step = self._endpointer.step
        events: list[VadEvent] = []
        for level in self._voicing.feed(pcm):
            event = step(level)
            if event is not None:
                events.append(event)
        return events

    def reset(self) -> None:
        self._voicing.reset()
        self._endpointer.reset()


class WebRtcVad(_OneView):
    """`WebRtcVoicing` with one endpointer; `mode` 0 (least) to 3 (most eager to reject noise)."""

    __slots__ = ()

    def __init__(
        self,
        *,
        rate: int = 16000,
        mode: int = 2,
        min_speech_ms: int = 120,
        min_silence_ms: int = 400,
    ) -> None:
        super().__init__(
            WebRtcVoicing(rate=rate, mode=mode),
            min_speech_ms=min_speech_ms,
            min_silence_ms=min_silence_ms,
        )


class EnergyVad(_OneView):
    """`EnergyVoicing` with one endpointer: cheap and dependency-free, but fooled by loud noise."""

    __slots__ = ()

    def __init__(
        self,
        *,
        rate: int = 16000,
        threshold_dbfs: float = -35.0,
        hysteresis_db: float = 6.0,
        min_speech_ms: int = 120,
        min_silence_ms: int = 400,
    ) -> None:
        super().__init__(
            EnergyVoicing(rate=rate, threshold_dbfs=threshold_dbfs, hysteresis_db=hysteresis_db),
            min_speech_ms=min_speech_ms,
            min_silence_ms=min_silence_ms,
        )


def make_voicing(name: Literal["webrtc", "energy"], **kw: int) -> Voicing:
    """Build a frame classifier by its settings name; `kw` are that class's keyword arguments."""
    if name == "webrtc":
        return WebRtcVoicing(**kw)
    if name == "energy":
        return EnergyVoicing(**kw)
    raise ValueError(f"unknown VAD {name!r}; expected 'webrtc' or 'energy'")


def make_vad(name: Literal["webrtc", "energy"], **kw: int) -> VoiceActivityDetector:
    """Build a detector by its settings name; `kw` are the chosen class's keyword arguments."""
    if name == "webrtc":
        return WebRtcVad(**kw)
    if name == "energy":
        return EnergyVad(**kw)
    raise ValueError(f"unknown VAD {name!r}; expected 'webrtc' or 'energy'")
