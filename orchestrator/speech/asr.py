"""Offline streaming speech recognition: pocketsphinx constrained by grammars generated from the flow.

Two layers. `GrammarDecoder` is synchronous and owns one pocketsphinx decoder with one search per grammar
(order numbers and intents, or intents only); it must be used from one thread at a time. `StreamingRecognizer`
is the async edge a brain uses: it finds utterances with its own VAD (keeping a little pre-roll, because a VAD
confirms speech only after it started), feeds the decoder in chunks from a worker task through
`asyncio.to_thread` while the caller is still talking, and reports each finished utterance. The model is the
English one the pocketsphinx wheel ships: nothing is downloaded at run time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from orchestrator.audio.vad import make_vad
from orchestrator.errors import ConfigError
from orchestrator.speech.grammar import GrammarSpec, build_jsgf, grammar_words

__all__ = [
    "SEARCH_INTENTS",
    "SEARCH_NUMBERS",
    "GrammarDecoder",
    "Recognition",
    "StreamingRecognizer",
]

SEARCH_NUMBERS: Final = "numbers"  # order numbers and intents: the caller was asked for a number
SEARCH_INTENTS: Final = "intents"  # intents only: nothing here takes an order number

_RATE = 16000
_BYTES_PER_MS = _RATE * 2 // 1000
# The VAD confirms speech ~100-200 ms after it began; start the decoder this far back so no onset is lost.
_PREROLL_MS = 300
# Streaming decoding normalises cepstra with a running mean that starts from the model's default,
# far from real speech: the first utterance of a call was misrecognised until the estimate settled.
# Start from the mean the live estimate converges to on speech (measured on flite voices).
_SPEECH_CMN = "47.0,5.3,5.2,9.7,-1.2,1.3,-0.9,-0.2,-1.0,1.6,0.5,2.7,2.2"
# Hand audio to the decoder in chunks this big: fewer thread hops, and still streaming.
_CHUNK_MS = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class Recognition:
    """One recognised caller utterance."""

    text: str  # lowercase words from the grammar; "" when nothing was recognised
    search: str
    speech_ms: int  # audio decoded for this utterance
    decode_ms: float  # from end of speech (the VAD's decision) to this result, wall clock


class GrammarDecoder:
    """A pocketsphinx decoder with one search per grammar; synchronous, thread-confined."""

    def __init__(self, spec: GrammarSpec, *, sample_rate: int = _RATE) -> None:
        # Imported here: pocketsphinx is heavy and only the offline brain and the benchmark need it.
        from pocketsphinx import Decoder  # type: ignore[import-untyped]  # no type hints shipped

        if sample_rate != _RATE:
            raise ConfigError(f"the offline recogniser decodes 16 kHz audio, not {sample_rate} Hz")
        decoder = Decoder(samprate=sample_rate, loglevel="FATAL")
        missing = sorted(w for w in grammar_words(spec) if decoder.lookup_word(w) is None)
        if missing:
            raise ConfigError(f"words not in the recogniser's dictionary: {', '.join(missing)}")
        has_numbers = bool(spec.shapes)
        if has_numbers:
            decoder.add_jsgf_string(SEARCH_NUMBERS, build_jsgf(spec, numbers=True))
        if spec.intents:
            decoder.add_jsgf_string(SEARCH_INTENTS, build_jsgf(spec, numbers=False))
        decoder.set_cmn(_SPEECH_CMN)
        self._decoder = decoder
        self._searches: frozenset[str] = frozenset(
            name
            for name, present in (
                (SEARCH_NUMBERS, has_numbers),
                (SEARCH_INTENTS, bool(spec.intents)),
            )
            if present
        )
        self._fed = 0
        self._search = SEARCH_NUMBERS if has_numbers else SEARCH_INTENTS

    @property
    def searches(self) -> frozenset[str]:
        return self._searches

    def begin(self, search: str) -> None:
        """Start an utterance with the named grammar (falls back to the one there is)."""
        self._search = search if search in self._searches else next(iter(sorted(self._searches)))
        self._decoder.activate_search(self._search)
        self._decoder.start_utt()
        self._fed = 0

    def feed(self, pcm: bytes) -> None:
        self._decoder.process_raw(pcm, False, False)
        self._fed += len(pcm)

    def finish(self) -> tuple[str, int]:
        """End the utterance: the recognised words ("" for none) and how much audio was decoded (ms)."""
        self._decoder.end_utt()
        hyp = self._decoder.hyp()
        return (hyp.hypstr if hyp is not None else ""), self._fed // _BYTES_PER_MS

    def decode(self, pcm: bytes, search: str) -> str:
        """A whole utterance at once (benchmarks and tests): normalised over the whole utterance."""
        self.begin(search)
        self._decoder.process_raw(pcm, False, True)
        self._fed += len(pcm)
        return self.finish()[0]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Begin:
    search: str
    audio: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class _Audio:
    pcm: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class _End:
    at: float  # perf_counter when the VAD decided the caller stopped


_Op = _Begin | _Audio | _End


class StreamingRecognizer:
    """Caller PCM (16 kHz) in, `Recognition`s out through `on_result`, decoding while the caller talks.

        recognizer = StreamingRecognizer(lambda: GrammarDecoder(spec), on_result=print)
        await recognizer.start()
        recognizer.feed(pcm)          # any chunk size, never blocks
        await recognizer.close()
    """

    def __init__(
        self,
        make_decoder: Callable[[], GrammarDecoder],
        *,
        on_result: Callable[[Recognition], None],
        on_speech_started: Callable[[], None] | None = None,
    ) -> None:
        self._make_decoder = make_decoder
        self._on_result = on_result
        self._on_speech_started = on_speech_started
        self._vad = make_vad("webrtc", rate=_RATE)
        self._ops: asyncio.Queue[_Op] = asyncio.Queue()
        self._recent = bytearray()  # the last _PREROLL_MS of audio while not in speech
        self._pending = bytearray()
        self._in_speech = False
        self._position = 0  # bytes fed so far: the VAD's clock
        self._search: str = SEARCH_NUMBERS
        self._worker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load the model (in a worker thread: it takes about half a second) and start decoding."""
        decoder = await asyncio.to_thread(self._make_decoder)
        self._worker = asyncio.get_running_loop().create_task(self._work(decoder))

    def use_search(self, search: str) -> None:
        """The grammar for the next utterance (the policy's expectation for this turn)."""
        self._search = search

    def feed(self, pcm: bytes) -> None:
        events = self._vad.feed(pcm)
        self._position += len(pcm)
        if self._in_speech:
            self._pending += pcm
        else:
            self._recent += pcm
            del self._recent[: max(0, len(self._recent) - _PREROLL_MS * _BYTES_PER_MS * 2)]
        for event in events:
            if event.kind == "speech_started" and not self._in_speech:
                self._in_speech = True
                # The VAD reports where speech began; keep from a little before it.
                self._ops.put_nowait(_Begin(search=self._search, audio=self._preroll(event.at_ms)))
                self._recent.clear()
                if self._on_speech_started is not None:
                    self._on_speech_started()
            elif event.kind == "speech_stopped" and self._in_speech:
                self._in_speech = False
                self._flush()
                self._ops.put_nowait(_End(at=time.perf_counter()))
        if self._in_speech and len(self._pending) >= _CHUNK_MS * _BYTES_PER_MS:
            self._flush()

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    def _preroll(self, started_at_ms: int) -> bytes:
        keep_ms = min(
            self._position // _BYTES_PER_MS - started_at_ms + _PREROLL_MS,
            len(self._recent) // _BYTES_PER_MS,
        )
        return bytes(self._recent[len(self._recent) - max(0, keep_ms) * _BYTES_PER_MS :])

    def _flush(self) -> None:
        if self._pending:
            self._ops.put_nowait(_Audio(pcm=bytes(self._pending)))
            self._pending.clear()

    async def _work(self, decoder: GrammarDecoder) -> None:
        active = False
        search = SEARCH_NUMBERS
        while True:
            op = await self._ops.get()
            if isinstance(op, _Begin):
                if active:
                    await asyncio.to_thread(decoder.finish)
                await asyncio.to_thread(_begin, decoder, op.search, op.audio)
                active = True
                search = op.search
            elif isinstance(op, _Audio) and active:
                await asyncio.to_thread(decoder.feed, op.pcm)
            elif isinstance(op, _End) and active:
                text, speech_ms = await asyncio.to_thread(decoder.finish)
                active = False
                self._on_result(
                    Recognition(
                        text=text,
                        search=search,
                        speech_ms=speech_ms,
                        decode_ms=(time.perf_counter() - op.at) * 1000,
                    )
                )


def _begin(decoder: GrammarDecoder, search: str, audio: bytes) -> None:
    decoder.begin(search)
    if audio:
        decoder.feed(audio)
