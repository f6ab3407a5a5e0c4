"""espeak-ng as the agent's offline voice, and the WAV and sentence helpers around it."""

import pytest

from orchestrator.speech.tts import EspeakTts, TtsError, split_sentences, wav_payload


async def test_espeak_tts_speaks_at_the_calls_rate():
    """Two seconds-ish of speech come back at 8 kHz when the call runs at 8 kHz."""
    pcm = await EspeakTts(voice="en-us", rate=8000).synthesize("Your order is out for delivery.")
    seconds = len(pcm) / (8000 * 2)
    assert 0.8 < seconds < 5
    assert len(pcm) % 2 == 0
    assert any(pcm)


async def test_espeak_tts_unknown_executable_is_a_brain_error():
    """A missing espeak-ng fails as TtsError (the flow's brain_failed route), not a crash."""
    with pytest.raises(TtsError):
        await EspeakTts(executable="/nonexistent/espeak-ng").synthesize("hello")


def test_wav_payload_ignores_the_bogus_length_of_a_piped_wav():
    """A data chunk whose declared size is wrong still yields every sample after its header."""
    header = b"RIFF\xff\xff\xff\x7fWAVEfmt " + (16).to_bytes(4, "little") + bytes(16)
    wav = header + b"data\xff\xff\xff\x7f" + b"\x01\x00\x02\x00"
    assert wav_payload(wav) == b"\x01\x00\x02\x00"


def test_wav_payload_rejects_non_wav():
    """Anything that is not RIFF/WAVE is a TtsError."""
    with pytest.raises(TtsError):
        wav_payload(b"hello")


def test_split_sentences_keeps_dotted_words_together():
    """Sentences end at punctuation followed by a space."""
    assert split_sentences("Order DX1042 is on its way. Anything else?") == [
        "Order DX1042 is on its way.",
        "Anything else?",
    ]


async def test_espeak_tts_speaks_a_sentence_once_and_replays_it(monkeypatch):
    """A sentence said before (a flow's fixed prompt, in every call) is not synthesised again; another
    sentence, rate or voice is."""
    runs: list[str] = []
    real_run = EspeakTts._run

    def counting_run(self: EspeakTts, text: str) -> bytes:
        runs.append(text)
        return real_run(self, text)

    monkeypatch.setattr(EspeakTts, "_run", counting_run)
    tts = EspeakTts(voice="en-us", rate=8000)
    sentence = "Let me check the orders placed from this number, just once."
    first = await tts.synthesize(sentence)
    again = await tts.synthesize(sentence)
    assert again == first
    assert runs == [sentence]
    await tts.at_rate(16000).synthesize(sentence)
    await EspeakTts(voice="en-gb", rate=8000).synthesize(sentence)
    await tts.synthesize("Is there anything else, just once?")
    assert len(runs) == 4
