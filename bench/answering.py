"""Answering-machine detection on synthetic answers: who answered, and when a voicemail's greeting was over.

For each flite voice, a few ways a person picks up ("Hello?") and a few voicemail greetings (with and without
a beep) are run through the same detectors a live outbound call uses (the turn VAD as the service sets it up
from the flow's `vad:` and `outbound:`, the beep detector, `AnsweringDetector`), frame by frame on audio time.
Prints one JSON object: verdicts per case, how long after the true end of a greeting the message would start,
and the beep detector's CPU per second of audio.

    python bench/answering.py [--flow flows/order_status.yaml]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from orchestrator.audio.beep import BeepDetector
from orchestrator.audio.vad import Endpointer, make_voicing
from orchestrator.call.answering import AnsweringDetector
from orchestrator.flow import load_flow
from orchestrator.flow.model import Flow
from orchestrator.speech.voices import caller_voice

RATE = 16000
FRAME = RATE * 2 // 50  # 20 ms of S16LE
VOICES = ("kal16", "slt", "awb", "rms")
HELLOS = ("Hello?", "Hello, who is this?", "Yes?", "Hello, Wanjiru speaking.")
GREETINGS = (
    "Hello, you have reached Wanjiru. I cannot take your call right now. Please leave a message after the tone.",
    "The person you are calling is not available. Please leave your message after the beep.",
)


def _beep() -> bytes:
    t = np.arange(int(RATE * 0.4)) / RATE
    return bytes(RATE) + (9000 * np.sin(2 * np.pi * 1000.0 * t)).astype("<i2").tobytes()


def _detect(flow: Flow, audio: bytes) -> tuple[str | None, int | None]:
    """The verdict, and the audio time (ms) the message would start (None: not a voicemail)."""
    assert flow.outbound is not None
    vad = flow.vad
    kwargs = {"mode": vad.aggressiveness} if vad.detector == "webrtc" else {}
    voicing = make_voicing(vad.detector, rate=RATE, **kwargs)
    turns = Endpointer.for_voicing(
        voicing, min_speech_ms=vad.min_speech_ms, min_silence_ms=vad.end_of_turn_ms
    )
    beeps = BeepDetector(rate=RATE)
    detector = AnsweringDetector(
        greeting_ms=flow.outbound.greeting_ms, quiet_answer_ms=flow.outbound.quiet_answer_ms
    )
    padded = audio + bytes(RATE * 2 * 6)  # then the line goes quiet
    for start in range(0, len(padded) - FRAME + 1, FRAME):
        frame = padded[start : start + FRAME]
        for level in voicing.feed(frame):
            turns.step(level)
        beep = beeps.feed(frame)
        event = detector.step(
            at_ms=turns.position_ms, speaking=turns.in_speech or beeps.in_tone, beep=beep
        )
        if event == "person":
            return "person", None
        if event == "greeting_over":
            return "voicemail", turns.position_ms
    return detector.verdict, None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flow", type=Path, default=Path("flows/order_status.yaml"))
    flow = load_flow(parser.parse_args().flow)
    cases: list[dict[str, object]] = []
    for name in VOICES:
        voice = caller_voice(name)
        for text in HELLOS:
            verdict, _ = _detect(flow, voice(text, RATE))
            cases.append({"voice": name, "kind": "person", "text": text, "verdict": verdict})
        for text in GREETINGS:
            speech = voice(text, RATE)
            for beep in (True, False):
                audio = speech + (_beep() if beep else b"")
                verdict, ready_ms = _detect(flow, audio)
                end_ms = len(audio) * 1000 // (2 * RATE)
                cases.append({
                    "voice": name, "kind": "voicemail", "beep": beep, "greeting_ms": end_ms,
                    "verdict": verdict,
                    "message_starts_after_end_ms": None if ready_ms is None else ready_ms - end_ms,
                })
    tone = bytes(_beep()) * 10
    started = time.perf_counter()
    BeepDetector(rate=RATE).feed(tone)
    beep_cpu_ms_per_s = (time.perf_counter() - started) * 1000 / (len(tone) / (2 * RATE))
    correct = sum(1 for c in cases if c["verdict"] == c["kind"])
    print(json.dumps({
        "cases": len(cases),
        "correct": correct,
        "people_taken_for_voicemail": [c for c in cases if c["kind"] == "person" and c["verdict"] != "person"],
        "voicemails_missed": [c for c in cases if c["kind"] == "voicemail" and c["verdict"] != "voicemail"],
        "message_start_after_greeting_end_ms": sorted(
            c["message_starts_after_end_ms"] for c in cases
            if c["kind"] == "voicemail" and c["message_starts_after_end_ms"] is not None
        ),
        "beep_detector_cpu_ms_per_audio_s": round(beep_cpu_ms_per_s, 2),
    }, indent=2))


if __name__ == "__main__":
    main()
