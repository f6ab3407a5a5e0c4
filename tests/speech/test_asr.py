"""The offline recogniser on natural-sounding synthetic callers: accuracy on a generated set, and streaming."""

import asyncio
import importlib.util
import sys
from pathlib import Path

import pytest

from orchestrator.brains.cascade import policy_config
from orchestrator.errors import ConfigError
from orchestrator.flow import load_flow
from orchestrator.audio.vad import WebRtcVad
from orchestrator.speech.asr import (
    _PREROLL_MS,
    _TAIL_MS,
    MIN_CONFIDENCE,
    SEARCH_NUMBERS,
    Decoded,
    GrammarDecoder,
    Recognition,
    StreamingRecognizer,
)
from orchestrator.speech.grammar import GrammarSpec
from orchestrator.speech.pool import DecoderPool
from orchestrator.speech.voices import synthesize_caller
from tests.flows import ORDER_STATUS

ROOT = Path(__file__).parents[2]


def _bench():
    if "asr_accuracy" in sys.modules:
        return sys.modules["asr_accuracy"]
    spec = importlib.util.spec_from_file_location("asr_accuracy", ROOT / "bench" / "asr_accuracy.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["asr_accuracy"] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def config():
    return policy_config(load_flow(ORDER_STATUS))


@pytest.fixture(scope="module")
def decoder(config):
    return GrammarDecoder(config.grammar())


def test_grammar_decoder_clean_accuracy_on_generated_callers(config, decoder):
    """44 caller lines (4 flite voices, 3 speeds) give >=90% exact order numbers and intents, clean."""
    bench = _bench()
    dataset = bench.build_dataset(config, numbers=32, intents=12)
    assert len(dataset) >= 40
    assert len({u.voice for u in dataset}) > 1
    assert len({u.speed for u in dataset}) > 1
    score, _, misses = bench.evaluate(decoder, config, dataset, None)
    result = score.as_json()
    assert result["order_number_exact_match"] >= 0.9, misses
    assert result["intent_accuracy"] >= 0.9, misses


def test_grammar_decoder_intents_survive_light_noise(config, decoder):
    """Intent phrases with white noise at 30 dB SNR are still understood."""
    bench = _bench()
    dataset = [u for u in bench.build_dataset(config, numbers=0, intents=12)]
    score, _, misses = bench.evaluate(decoder, config, dataset, 30.0)
    assert score.as_json()["intent_accuracy"] >= 0.9, misses


def test_grammar_decoder_refuses_words_missing_from_the_dictionary():
    """A phrase the recogniser cannot say is a ConfigError naming the word."""
    with pytest.raises(ConfigError, match="zzyzxq"):
        GrammarDecoder(GrammarSpec(intents={"odd": ("zzyzxq",)}))


async def test_streaming_recognizer_finds_and_decodes_an_utterance(config):
    """Audio fed in 20 ms frames, silence around speech, yields one recognition of the whole line."""
    results: list[Recognition] = []
    recognized = asyncio.Event()

    def on_result(result: Recognition) -> None:
        results.append(result)
        recognized.set()

    pool = DecoderPool(lambda: GrammarDecoder(config.grammar()), max_size=1)
    recognizer = StreamingRecognizer(pool, on_result=on_result)
    await recognizer.start()
    recognizer.use_search(SEARCH_NUMBERS)
    silence = b"\x00\x00" * 16000
    audio = silence + synthesize_caller("my order number is D X one oh four two", "kal16") + silence
    try:
        for at in range(0, len(audio), 640):
            recognizer.feed(audio[at : at + 640])
            await asyncio.sleep(0)
        async with asyncio.timeout(20):
            await recognized.wait()
    finally:
        await recognizer.close()
    assert len(results) == 1
    assert results[0].text.endswith("d x one oh four two")
    assert results[0].speech_ms > 1000
    assert results[0].confidence >= MIN_CONFIDENCE
    assert pool.size == 1  # the decoder went back to the pool with the result


class _RecordingDecoder:
    """Keeps what it is fed; answers every utterance with a fixed word; counts begins and finishes."""

    def __init__(self) -> None:
        self.fed = bytearray()
        self.begins = 0
        self.finishes = 0

    def begin(self, search: str) -> None:
        self.fed.clear()
        self.begins += 1

    def feed(self, pcm: bytes) -> None:
        self.fed += pcm

    def finish(self) -> Decoded:
        self.finishes += 1
        return Decoded(text="yes", speech_ms=len(self.fed) // 32, confidence=0.9)


class _OneDecoder:
    def __init__(self, decoder: _RecordingDecoder) -> None:
        self.decoder = decoder

    async def acquire(self) -> _RecordingDecoder:
        return self.decoder

    def release(self, decoder: object) -> None:
        pass

    def discard(self, decoder: object) -> None:
        pass

    async def warm(self) -> None:
        pass


async def _feed(recognizer: StreamingRecognizer, audio: bytes) -> None:
    for at in range(0, len(audio), 640):
        recognizer.feed(audio[at : at + 640])
        await asyncio.sleep(0)


async def _settle() -> None:
    for _ in range(50):  # the recogniser's worker hops through threads
        await asyncio.sleep(0.01)


async def test_streaming_recognizer_finishes_the_utterance_while_the_vad_still_listens():
    """Once the decoder has all the audio it will get, the utterance is finished, before the VAD has heard
    the full end-of-turn silence; the result is handed over when it has, without decoding again."""
    decoder = _RecordingDecoder()
    results: list[Recognition] = []
    recognizer = StreamingRecognizer(_OneDecoder(decoder), on_result=results.append)
    await recognizer.start()
    audio = b"\x00\x00" * 8000 + synthesize_caller("yes please", "kal16") + b"\x00\x00" * 16000
    speech_end = WebRtcVad(rate=16000).feed(audio)[-1].at_ms
    split = (speech_end + 300) * 32  # 300 ms after the speech: short of the VAD's 400
    try:
        await _feed(recognizer, audio[:split])
        await _settle()
        assert decoder.finishes == 1
        assert results == []  # the caller may still go on
        await _feed(recognizer, audio[split:])
        await _settle()
    finally:
        await recognizer.close()
    assert len(results) == 1
    assert decoder.finishes == 1


async def test_streaming_recognizer_starts_again_when_the_caller_goes_on_after_an_early_finish():
    """A pause longer than the decoder's tail but shorter than the end of turn: the early result is dropped
    and the decoder hears the whole utterance again, both parts, as one turn."""
    decoder = _RecordingDecoder()
    results: list[Recognition] = []
    recognizer = StreamingRecognizer(_OneDecoder(decoder), on_result=results.append)
    await recognizer.start()
    silence = b"\x00\x00" * 16000
    first = b"\x00\x00" * 8000 + synthesize_caller("my order number is", "kal16")
    second = synthesize_caller("D X one oh four two", "kal16")
    first_end = WebRtcVad(rate=16000).feed(first + silence)[-1].at_ms
    second_start = WebRtcVad(rate=16000).feed(second + silence)[0].at_ms
    # 300 ms between the two parts' speech: past the decoder's tail, short of the VAD's end of turn
    audio = (first + silence)[: (first_end + 300) * 32] + second[second_start * 32 :] + silence
    edges = WebRtcVad(rate=16000).feed(audio)
    try:
        await _feed(recognizer, audio)
        async with asyncio.timeout(5):
            while not results:
                await asyncio.sleep(0.01)
    finally:
        await recognizer.close()
    assert [e.kind for e in edges] == ["speech_started", "speech_stopped"]  # one turn for the VAD too
    assert len(results) == 1
    assert decoder.begins == 2  # the utterance, and once more after the early finish
    assert decoder.finishes == 2
    started, stopped = (e.at_ms for e in edges)
    assert abs(results[0].speech_ms - (stopped - started + _PREROLL_MS + _TAIL_MS)) <= 40


async def test_streaming_recognizer_feeds_the_decoder_little_of_the_silence_that_ends_a_turn():
    """The turn still ends after the VAD's full silence, but the decoder gets only the speech, a pre-roll
    before it and a short tail after it: trailing silence only makes its lattice slower to build."""
    line = synthesize_caller("okay thank you goodbye", "kal16")
    audio = b"\x00\x00" * 8000 + line + b"\x00\x00" * 16000
    edges = WebRtcVad(rate=16000).feed(audio)
    started, stopped = (e.at_ms for e in edges)
    decoder = _RecordingDecoder()
    results: list[Recognition] = []
    recognizer = StreamingRecognizer(_OneDecoder(decoder), on_result=results.append)
    await recognizer.start()
    try:
        for at in range(0, len(audio), 640):
            recognizer.feed(audio[at : at + 640])
            await asyncio.sleep(0)
        async with asyncio.timeout(5):
            while not results:
                await asyncio.sleep(0.01)
    finally:
        await recognizer.close()
    fed_ms = len(decoder.fed) // 32
    assert abs(fed_ms - (stopped - started + _PREROLL_MS + _TAIL_MS)) <= 40
    assert results[0].endpoint_ms >= 400  # the caller was given the whole end-of-turn silence
