"""Which recogniser and which voice a cascade brain gets: settings in, shared backends out.

Built once per service at start-up (models load once, decoders are pooled) and shared by every call.
Decision records: docs/decisions/0014-speech-backends-and-shared-decoders.md (the backends, shared decoders)
and docs/decisions/0034-whisper-hears-callers-when-installed.md (`auto`, the service's default: the grammar
for read-out numbers and Whisper tiny.en for the rest when installed, else the grammar recogniser).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from orchestrator.errors import ConfigError
from orchestrator.speech.asr import DecoderSource, UtteranceDecoder
from orchestrator.speech.grammar import GrammarSpec
from orchestrator.speech.http_tts import HttpTts, Synthesizer
from orchestrator.speech.pool import DecoderPool
from orchestrator.speech.process import DecoderTemplate, start_decoder_processes
from orchestrator.speech.transcribers import (
    GrammarThenTranscriber,
    HttpTranscriber,
    TranscriberSource,
    WhisperTranscriber,
    bundled_whisper_model,
    numbers_prompt,
    whisper_installed,
)
from orchestrator.speech.tts import EspeakTts

__all__ = ["SpeechChoice", "build_recognizer", "build_voice", "chosen_asr"]

Recogniser = Literal["grammar", "whisper", "hybrid", "openai"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SpeechChoice:
    """The speech settings (ORCHESTRATOR_ASR=..., ORCHESTRATOR_TTS=..., their URLs), as plain data.

    `asr="auto"` (the service's default) is `hybrid` when Whisper is installed, else the grammar recogniser;
    as plain data the default is the grammar recogniser, so a library user's calls do not change with what
    happens to be installed.
    """

    asr: Literal["auto", "grammar", "whisper", "hybrid", "openai"] = "grammar"
    asr_url: str | None = None
    asr_model: str = "whisper-1"
    asr_api_key: str | None = None
    asr_timeout_s: float = 10.0
    asr_decoders: int = 6
    asr_decoders_at_start: int = 0  # built on demand; a served Settings asks for 2 ahead (prepare)
    whisper_model_dir: Path | None = None
    tts: Literal["espeak", "openai"] = "espeak"
    tts_url: str | None = None
    tts_model: str = "tts-1"
    tts_voice: str = "alloy"
    tts_api_key: str | None = None
    tts_timeout_s: float = 10.0


def build_recognizer(
    choice: SpeechChoice,
    grammar: GrammarSpec | Mapping[str, GrammarSpec] | None,
    *,
    shapes: Sequence[str] | None = None,
) -> DecoderSource:
    """Where each call's utterances are decoded; `grammar=None` asks for open vocabulary (the chat brain),
    a mapping gives the grammar recogniser one search per name (a dialogue's per-turn grammars).

    `shapes` (default: the grammar's) are the order-number shapes an open-vocabulary recogniser is told
    to expect."""
    asr = chosen_asr(choice)
    if asr == "hybrid" and grammar is None:
        asr = "whisper"  # open vocabulary asked for (the chat brain): there is no grammar to go first
    if asr in ("grammar", "hybrid"):
        # Decoders are pooled: a handful serve every call, lent one utterance at a time; each decodes in
        # its own process, because pocketsphinx holds the GIL while it decodes.
        start_decoder_processes()  # the fork server imports the recogniser now, not at the first caller
        # Every decoder built is kept: a process takes seconds to start under load, and freeing the ones
        # beyond a couple idle made concurrent calls start new ones mid-utterance, so callers went unheard.
        # Each decoder is forked from one built in a template process: milliseconds, models shared.
        pool: DecoderPool[UtteranceDecoder] = DecoderPool(
            DecoderTemplate(grammar).fork,
            max_size=choice.asr_decoders,
            keep_idle=choice.asr_decoders,
        )
        if asr == "grammar":
            return pool
        return GrammarThenTranscriber(
            pool,
            _whisper(choice, grammar, shapes),
            shapes=shapes if shapes is not None else _shapes_of(grammar),
        )
    if asr == "whisper":
        return TranscriberSource(_whisper(choice, grammar, shapes))
    if not choice.asr_url:
        raise ConfigError(
            "ORCHESTRATOR_ASR=openai needs ORCHESTRATOR_ASR_URL, an OpenAI-compatible base URL "
            "(e.g. http://127.0.0.1:8000/v1)"
        )
    return TranscriberSource(
        HttpTranscriber(
            base_url=choice.asr_url,
            model=choice.asr_model,
            api_key=choice.asr_api_key,
            timeout_s=choice.asr_timeout_s,
        )
    )


def _whisper(
    choice: SpeechChoice,
    grammar: GrammarSpec | Mapping[str, GrammarSpec] | None,
    shapes: Sequence[str] | None,
) -> WhisperTranscriber:
    return WhisperTranscriber(
        choice.whisper_model_dir or bundled_whisper_model(),
        prompt=numbers_prompt(shapes if shapes is not None else _shapes_of(grammar)),
    )


def _shapes_of(grammar: GrammarSpec | Mapping[str, GrammarSpec] | None) -> list[str]:
    specs = [grammar] if isinstance(grammar, GrammarSpec) else list((grammar or {}).values())
    return list(dict.fromkeys(shape for spec in specs for shape in spec.shapes))


def chosen_asr(choice: SpeechChoice) -> Recogniser:
    """The recogniser `choice` names; `auto` is `hybrid` (the grammar for read-out order numbers, Whisper
    tiny.en for everything else) when faster-whisper and a local model are installed (the `[whisper]`
    extra, or ORCHESTRATOR_WHISPER_MODEL_DIR), else the grammar recogniser alone."""
    if choice.asr != "auto":
        return choice.asr
    return "hybrid" if whisper_installed(choice.whisper_model_dir) else "grammar"


def build_voice(choice: SpeechChoice, *, voice: str, speed: float) -> Synthesizer:
    """The agent's voice; checked now, so a missing espeak-ng or a bad URL fails at start-up."""
    tts: Synthesizer
    if choice.tts == "espeak":
        tts = EspeakTts(voice=voice, speed=speed)
    elif not choice.tts_url:
        raise ConfigError(
            "ORCHESTRATOR_TTS=openai needs ORCHESTRATOR_TTS_URL, an OpenAI-compatible base URL "
            "(e.g. http://127.0.0.1:8880/v1 for Kokoro)"
        )
    else:
        tts = HttpTts(
            base_url=choice.tts_url,
            model=choice.tts_model,
            voice=choice.tts_voice,
            api_key=choice.tts_api_key,
            speed=speed,
            timeout_s=choice.tts_timeout_s,
        )
    tts.check()
    return tts
