"""Offline speech for the cascade brain: grammar-constrained recognition, espeak-ng TTS, flite test callers.

Everything here runs without a network or a model download: pocketsphinx's wheel ships its English model,
espeak-ng and flite are Debian packages. CPU work runs in worker threads, never on the event loop.
"""

from orchestrator.speech.asr import (
    MIN_CONFIDENCE,
    SEARCH_INTENTS,
    SEARCH_NUMBERS,
    GrammarDecoder,
    Recognition,
    StreamingRecognizer,
)
from orchestrator.speech.grammar import GrammarSpec, build_jsgf, match_intent, parse_order_number
from orchestrator.speech.pool import DecoderPool
from orchestrator.speech.tts import EspeakTts, TtsError
from orchestrator.speech.voices import CALLER_VOICES, add_noise, caller_voice, synthesize_caller

__all__ = [
    "CALLER_VOICES",
    "DecoderPool",
    "EspeakTts",
    "GrammarDecoder",
    "GrammarSpec",
    "MIN_CONFIDENCE",
    "Recognition",
    "SEARCH_INTENTS",
    "SEARCH_NUMBERS",
    "StreamingRecognizer",
    "TtsError",
    "add_noise",
    "build_jsgf",
    "caller_voice",
    "match_intent",
    "parse_order_number",
    "synthesize_caller",
]
