"""Voice activity detection on the caller's audio: when did speech start, and when did it stop.

Two detectors share one contract and one endpointer: `WebRtcVad` (the webrtcvad GMM, robust to
noise) and `EnergyVad` (an RMS threshold, no dependency). Each classifies 20 ms frames as voiced
or not; the endpointer turns that stream of booleans into `speech_started` / `speech_stopped`
events placed at the audio position where the speech really began or ended, not where the
detector became sure of it — barge-in and latency figures need the true position.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import webrtcvad  # type: ignore[import-untyped]  # ships no stubs or py.typed

from orchestrator.audio.frames import FrameSplitter, ms_to_bytes

__all__ = ["EnergyVad", "VadEvent", "VoiceActivityDetector", "WebRtcVad", "make_vad"]

_FRAME_MS = 20
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


class _Endpointer:
    """Turns per-frame voiced/unvoiced decisions into debounced speech edges.

    `onset_hangover` and `offset_hangover` are frames a detector keeps saying "voiced" after the
    sound stopped (webrtcvad does this itself: a few frames after a short sound, more after a long
    one). Confirming speech needs that much more voiced audio, so a cough plus its hangover does
    not pass for `min_speech_ms` of speech, and the end of speech is placed before the hangover.
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

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    def reset(self) -> None:
        self._window.clear()
        self._position = 0
        self._in_speech = False
        self._started_at = 0
        self._last_voiced_end = 0

    def step(self, voiced: bool) -> VadEvent | None:
        start = self._position
        self._position += _FRAME_MS
        if self._in_speech:
            if voiced:
                self._last_voiced_end = self._position
            # The detector's own hangover is counted as silence already heard.
            speech_end = max(self._started_at + _FRAME_MS, self._last_voiced_end - self._offset_ms)
            if self._position - speech_end >= self._silence_ms:
                self._in_speech = False
                self._window.clear()
                return VadEvent(kind="speech_stopped", at_ms=speech_end)
            return None
        window = self._window
        window.append(voiced)
        if len(window) < self._size or sum(window) < self._need:
            return None
        # Speech began at the first voiced frame of the confirming window.
        first = next(i for i, v in enumerate(window) if v)
        self._in_speech = True
        self._started_at = start - (len(window) - 1 - first) * _FRAME_MS
        self._last_voiced_end = self._position
        return VadEvent(kind="speech_started", at_ms=self._started_at)


class WebRtcVad:
    """webrtcvad on 20 ms frames; `mode` 0 (least) to 3 (most eager to reject non-speech)."""

    __slots__ = ("_endpointer", "_rate", "_splitter", "_vad")

    def __init__(
        self,
        *,
        rate: int = 16000,
        mode: int = 2,
        min_speech_ms: int = 120,
        min_silence_ms: int = 400,
    ) -> None:
        if rate not in _WEBRTC_RATES:
            raise ValueError(f"webrtcvad needs a rate in {sorted(_WEBRTC_RATES)}, got {rate}")
        if not 0 <= mode <= 3:
            raise ValueError(f"mode must be 0-3, got {mode}")
        self._rate = rate
        self._vad = webrtcvad.Vad(mode)
        self._splitter = FrameSplitter(ms_to_bytes(_FRAME_MS, rate))
        onset, offset = _WEBRTC_HANGOVER[mode]
        self._endpointer = _Endpointer(
            min_speech_ms=min_speech_ms,
            min_silence_ms=min_silence_ms,
            onset_hangover=onset,
            offset_hangover=offset,
        )

    def feed(self, pcm: bytes) -> list[VadEvent]:
        events: list[VadEvent] = []
        is_speech = self._vad.is_speech
        step = self._endpointer.step
        rate = self._rate
        for frame in self._splitter.feed(pcm):
            event = step(is_speech(frame, rate))
            if event is not None:
                events.append(event)
        return events

    def reset(self) -> None:
        self._splitter.flush()
        self._endpointer.reset()


class EnergyVad:
    """RMS threshold with hysteresis; cheap and dependency-free, but fooled by loud noise.

    A frame is voiced above `threshold_dbfs`, and once speech has started it stays voiced down to
    `threshold_dbfs - hysteresis_db`, so a speaker trailing off is not cut mid-word.
    """

    __slots__ = ("_endpointer", "_high", "_low", "_splitter")

    def __init__(
        self,
        *,
        rate: int = 16000,
        threshold_dbfs: float = -35.0,
        hysteresis_db: float = 6.0,
        min_speech_ms: int = 120,
        min_silence_ms: int = 400,
    ) -> None:
        if hysteresis_db < 0:
            raise ValueError(f"hysteresis_db must not be negative, got {hysteresis_db}")
        # Compare mean squares with precomputed linear thresholds: no log per frame.
        self._high = _FULL_SCALE_SQUARED * 10 ** (threshold_dbfs / 10)
        self._low = _FULL_SCALE_SQUARED * 10 ** ((threshold_dbfs - hysteresis_db) / 10)
        self._splitter = FrameSplitter(ms_to_bytes(_FRAME_MS, rate))
        self._endpointer = _Endpointer(min_speech_ms=min_speech_ms, min_silence_ms=min_silence_ms)

    def feed(self, pcm: bytes) -> list[VadEvent]:
        frames = self._splitter.feed(pcm)
        if not frames:
            return []
        samples = np.frombuffer(b"".join(frames), dtype="<i2").astype(np.float64)
        powers = np.mean(np.square(samples.reshape(len(frames), -1)), axis=1)
        events: list[VadEvent] = []
        endpointer = self._endpointer
        for power in powers.tolist():
            threshold = self._low if endpointer.in_speech else self._high
            event = endpointer.step(power >= threshold)
            if event is not None:
                events.append(event)
        return events

    def reset(self) -> None:
        self._splitter.flush()
        self._endpointer.reset()


def make_vad(name: Literal["webrtc", "energy"], **kw: int) -> VoiceActivityDetector:
    """Build a detector by its settings name; `kw` are the chosen class's keyword arguments."""
    if name == "webrtc":
        return WebRtcVad(**kw)
    if name == "energy":
        return EnergyVad(**kw)
    raise ValueError(f"unknown VAD {name!r}; expected 'webrtc' or 'energy'")
