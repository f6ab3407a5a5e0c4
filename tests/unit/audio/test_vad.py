"""Voice activity detection: speech found where it starts, noise and short bursts ignored."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.audio import (
    Endpointer,
    EnergyVad,
    EnergyVoicing,
    VadEvent,
    WebRtcVad,
    make_vad,
    make_voicing,
    noise_burst,
    silence,
    synthesize_speech,
    white_noise,
    word_timings,
)
from orchestrator.audio.vad import SILENT, VOICED, VOICED_IN_SPEECH

SENTENCE = "Hi, I am calling about my order. The number is one two three four five."


def _feed_in_chunks(vad: WebRtcVad | EnergyVad, pcm: bytes, chunk: int = 641) -> list[VadEvent]:
    return [event for i in range(0, len(pcm), chunk) for event in vad.feed(pcm[i : i + chunk])]


def _mix(a: bytes, b: bytes) -> bytes:
    x = np.frombuffer(a, dtype="<i2").astype(np.int32)
    y = np.frombuffer(b, dtype="<i2").astype(np.int32)
    return np.clip(x + y, -32768, 32767).astype("<i2").tobytes()


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_webrtc_vad_finds_synthesized_speech_where_it_begins_and_ends(mode: int) -> None:
    """Speech starting at 730 ms is reported within 60 ms of 730, and its end near its true end."""
    speech = synthesize_speech(SENTENCE)
    end_ms = 730 + word_timings(SENTENCE)[-1][2]
    audio = silence(730, 16000) + speech + silence(1000, 16000)
    events = _feed_in_chunks(WebRtcVad(mode=mode), audio)
    assert [e.kind for e in events] == ["speech_started", "speech_stopped"]
    assert abs(events[0].at_ms - 730) <= 60
    assert abs(events[1].at_ms - end_ms) <= 60


def test_webrtc_vad_finds_speech_over_background_noise() -> None:
    """Speech mixed with -50 dBFS noise is still found, at its true start."""
    audio = silence(500, 16000) + synthesize_speech("Where is my parcel?") + silence(800, 16000)
    noisy = _mix(audio, white_noise(len(audio) // 32, 16000, -50, seed=7))
    events = WebRtcVad().feed(noisy)
    assert events[0].kind == "speech_started"
    assert abs(events[0].at_ms - 500) <= 60


def test_webrtc_vad_reports_speech_start_at_its_beginning_not_its_confirmation() -> None:
    """speech_started arrives only after min_speech_ms, yet names the position speech began."""
    vad = WebRtcVad(min_speech_ms=200)
    assert vad.feed(silence(400, 16000)) == []
    speech = synthesize_speech("Hello there, good morning.")
    assert vad.feed(speech[: len(speech) // 20]) == []  # too little to be sure yet
    events = vad.feed(speech[len(speech) // 20 :])
    assert events[0] == VadEvent(kind="speech_started", at_ms=400)


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_webrtc_vad_ignores_silence_and_quiet_white_noise(mode: int) -> None:
    """Three seconds of silence or of -50 dBFS white noise produce no events."""
    assert WebRtcVad(mode=mode).feed(silence(3000, 16000)) == []
    assert WebRtcVad(mode=mode).feed(white_noise(3000, 16000, -50, seed=1)) == []


@pytest.mark.parametrize("level", [-30, -20, -10])
def test_webrtc_vad_ignores_a_60ms_noise_burst(level: float) -> None:
    """A cough-like 60 ms burst is shorter than min_speech_ms=120 and starts no speech."""
    audio = silence(310, 16000) + noise_burst(60, 16000, level) + silence(1000, 16000)
    assert WebRtcVad(min_speech_ms=120).feed(audio) == []


def test_webrtc_vad_treats_pauses_between_words_as_one_utterance() -> None:
    """Gaps between words and at commas stay under min_silence_ms: one start, one stop."""
    audio = synthesize_speech("Yes, it is order number seven, eight, nine.") + silence(1000, 16000)
    events = WebRtcVad().feed(audio)
    assert [e.kind for e in events] == ["speech_started", "speech_stopped"]


def test_webrtc_vad_reset_forgets_state_and_position() -> None:
    """After reset the detector behaves as new: positions restart at 0."""
    vad = WebRtcVad()
    vad.feed(silence(300, 16000) + synthesize_speech("hello there"))
    vad.reset()
    events = vad.feed(silence(200, 16000) + synthesize_speech("good morning"))
    assert events[0] == VadEvent(kind="speech_started", at_ms=200)


def test_webrtc_vad_rejects_rates_webrtcvad_cannot_take() -> None:
    """webrtcvad works at 8, 16, 32 or 48 kHz only; other rates fail at construction."""
    with pytest.raises(ValueError, match="rate"):
        WebRtcVad(rate=24000)


def test_energy_vad_finds_speech_and_ignores_quiet_noise() -> None:
    """The energy fallback finds synthesized speech near its start and ignores -50 dBFS noise."""
    audio = silence(600, 16000) + synthesize_speech(SENTENCE) + silence(1000, 16000)
    events = _feed_in_chunks(EnergyVad(), audio)
    assert [e.kind for e in events] == ["speech_started", "speech_stopped"]
    assert abs(events[0].at_ms - 600) <= 60
    assert EnergyVad().feed(white_noise(3000, 16000, -50, seed=2)) == []


def test_energy_vad_hysteresis_keeps_speech_through_a_dip() -> None:
    """Once started, speech continues while the level stays above threshold minus hysteresis."""
    loud = white_noise(500, 16000, -20, seed=3)
    dip = white_noise(600, 16000, -38, seed=4)  # under -35 but above -35 - 6
    vad = EnergyVad(threshold_dbfs=-35, hysteresis_db=6, min_silence_ms=400)
    events = vad.feed(loud + dip + silence(600, 16000))
    assert events == [
        VadEvent(kind="speech_started", at_ms=0),
        VadEvent(kind="speech_stopped", at_ms=1100),
    ]
    assert EnergyVad(threshold_dbfs=-35).feed(dip) == []  # the dip alone is not speech


def test_make_vad_builds_the_named_detector() -> None:
    """Settings name the detector; keyword arguments reach its constructor."""
    assert isinstance(make_vad("webrtc", mode=3), WebRtcVad)
    assert isinstance(make_vad("energy", min_silence_ms=300), EnergyVad)
    with pytest.raises(ValueError, match="unknown VAD"):
        make_vad("silero")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["webrtc", "energy"])
def test_one_voicing_read_by_two_endpointers_matches_two_separate_detectors(name: str) -> None:
    """Frames classified once and read by a slow and a quick endpointer give each the events its own detector would."""
    audio = silence(400, 16000) + synthesize_speech("Yes. Order seven.") + silence(300, 16000)
    audio += synthesize_speech("Mhmm") + silence(900, 16000)
    voicing = make_voicing(name)
    slow = Endpointer.for_voicing(voicing, min_speech_ms=120, min_silence_ms=400)
    quick = Endpointer.for_voicing(voicing, min_speech_ms=120, min_silence_ms=160)
    slow_events, quick_events = [], []
    for i in range(0, len(audio), 641):
        for level in voicing.feed(audio[i : i + 641]):
            slow_events += [e for e in (slow.step(level),) if e is not None]
            quick_events += [e for e in (quick.step(level),) if e is not None]
    assert slow_events == _feed_in_chunks(make_vad(name, min_silence_ms=400), audio)
    assert quick_events == _feed_in_chunks(make_vad(name, min_silence_ms=160), audio)
    assert len(quick_events) > len(slow_events)  # the quick view ends speech at the short pause
    assert slow.position_ms == quick.position_ms == len(audio) // 640 * 20


def test_endpointer_places_the_end_of_ongoing_speech_at_its_last_voiced_frame() -> None:
    """While speech goes on, speech_end_ms is where the caller's last voiced frame ended."""
    endpointer = Endpointer(min_speech_ms=60, min_silence_ms=400)
    for level in [VOICED] * 10 + [SILENT] * 5:
        endpointer.step(level)
    assert endpointer.in_speech
    assert endpointer.speech_end_ms == 200
    assert endpointer.position_ms == 300


def test_energy_voicing_reports_the_hysteresis_band_as_its_own_level() -> None:
    """Loud frames are VOICED, frames in the hysteresis band VOICED_IN_SPEECH, quiet ones SILENT."""
    voicing = EnergyVoicing(threshold_dbfs=-35, hysteresis_db=6)
    loud = white_noise(20, 16000, -20, seed=3)
    band = white_noise(20, 16000, -38, seed=4)
    assert voicing.feed(loud + band + silence(20, 16000)) == [VOICED, VOICED_IN_SPEECH, SILENT]


def test_energy_voicing_gives_the_same_levels_frame_by_frame_as_in_one_chunk() -> None:
    """A live call feeds one 20 ms frame at a time (the quick path); a burst feeds many at once."""
    frames = [
        white_noise(20, 16000, level, seed=index)
        for index, level in enumerate((-20, -38, -60, -34.9, -41.1, -10, -50))
    ] + [silence(20, 16000), synthesize_speech("Where is my order?")[:640]]
    one_by_one = EnergyVoicing(threshold_dbfs=-35, hysteresis_db=6)
    at_once = EnergyVoicing(threshold_dbfs=-35, hysteresis_db=6)
    levels = [level for frame in frames for level in one_by_one.feed(frame)]
    assert levels == at_once.feed(b"".join(frames))
    assert levels[:3] == [VOICED, VOICED_IN_SPEECH, SILENT]
    assert all(type(level) is int for level in levels)
