"""The audio room: S16LE PCM framing, resampling, voice activity, paced playback, test audio, WAV.

Knows nothing of flows, calls or telephony; everything here works on bytes and sample rates.
"""

from __future__ import annotations

from orchestrator.audio.frames import (
    FrameSplitter,
    PcmAssembler,
    bytes_to_ms,
    ms_to_bytes,
    rms_dbfs,
    silence,
)
from orchestrator.audio.pacer import PacedWriter, PlayedSegment
from orchestrator.audio.resample import Resampler, resample
from orchestrator.audio.synth import noise_burst, synthesize_speech, white_noise, word_timings
from orchestrator.audio.vad import (
    Endpointer,
    EnergyVad,
    EnergyVoicing,
    VadEvent,
    VoiceActivityDetector,
    Voicing,
    WebRtcVad,
    WebRtcVoicing,
    make_vad,
    make_voicing,
)
from orchestrator.audio.wav import interleave, read_wav, write_wav

__all__ = [
    "Endpointer",
    "EnergyVad",
    "EnergyVoicing",
    "FrameSplitter",
    "PacedWriter",
    "PcmAssembler",
    "PlayedSegment",
    "Resampler",
    "VadEvent",
    "VoiceActivityDetector",
    "Voicing",
    "WebRtcVad",
    "WebRtcVoicing",
    "bytes_to_ms",
    "interleave",
    "make_vad",
    "make_voicing",
    "ms_to_bytes",
    "noise_burst",
    "read_wav",
    "resample",
    "rms_dbfs",
    "silence",
    "synthesize_speech",
    "white_noise",
    "word_timings",
    "write_wav",
]
