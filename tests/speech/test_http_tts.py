"""The agent's voice from an OpenAI-compatible /v1/audio/speech endpoint on loopback."""

import pytest

from orchestrator.errors import ConfigError
from orchestrator.speech.choice import SpeechChoice, build_voice
from orchestrator.speech.http_tts import HttpTts
from orchestrator.speech.tts import EspeakTts, TtsError
from tests.fakes.openai_audio import FakeAudioServer


async def _endpoint(aiohttp_server, fake: FakeAudioServer) -> str:
    server = await aiohttp_server(fake.app())
    return str(server.make_url("/v1"))


async def test_http_tts_asks_for_wav_and_resamples_it_to_the_call_rate(aiohttp_server):
    """The endpoint's 24 kHz WAV comes back as 16 kHz PCM of the same duration."""
    fake = FakeAudioServer(speech_rate=24000)
    url = await _endpoint(aiohttp_server, fake)
    tts = HttpTts(base_url=url, model="kokoro", voice="af_heart", api_key="sk-local", rate=16000)
    pcm = await tts.synthesize("Your order is out for delivery.")
    expected_ms = 40 * len("Your order is out for delivery.")
    assert abs(len(pcm) // 32 - expected_ms) <= 5
    sent = fake.speeches[0]
    assert sent["response_format"] == "wav"
    assert (sent["model"], sent["voice"], sent["input"]) == (
        "kokoro",
        "af_heart",
        "Your order is out for delivery.",
    )
    assert sent["auth"] == "Bearer sk-local"


async def test_http_tts_at_another_rate_keeps_its_endpoint(aiohttp_server):
    """at_rate changes only the output rate (an 8 kHz call gets 8 kHz audio)."""
    url = await _endpoint(aiohttp_server, FakeAudioServer(speech_rate=22050))
    tts = HttpTts(base_url=url).at_rate(8000)
    pcm = await tts.synthesize("Hello.")
    assert abs(len(pcm) // 16 - 40 * len("Hello.")) <= 5


@pytest.mark.parametrize(
    ("fault", "message"),
    [("http_500", "HTTP 500"), ("slow", "timed out"), ("not_wav", "WAV")],
)
async def test_http_tts_failures_are_tts_errors(aiohttp_server, fault, message):
    """An error, a reply slower than the timeout or audio that is not WAV is a TtsError saying which."""
    url = await _endpoint(aiohttp_server, FakeAudioServer(fault=fault, slow_s=2.0))
    with pytest.raises(TtsError, match=message):
        await HttpTts(base_url=url, timeout_s=0.5).synthesize("Hello.")


def test_voice_choice_builds_espeak_by_default_and_the_endpoint_on_request():
    """ORCHESTRATOR_TTS=espeak gives espeak-ng; openai needs ORCHESTRATOR_TTS_URL."""
    assert isinstance(build_voice(SpeechChoice(), voice="en-us", speed=1.0), EspeakTts)
    remote = build_voice(
        SpeechChoice(tts="openai", tts_url="http://127.0.0.1:8880/v1", tts_voice="af_heart"),
        voice="en-us",
        speed=1.1,
    )
    assert isinstance(remote, HttpTts)
    assert (remote.voice, remote.speed) == ("af_heart", 1.1)
    with pytest.raises(ConfigError, match="ORCHESTRATOR_TTS_URL"):
        build_voice(SpeechChoice(tts="openai"), voice="en-us", speed=1.0)
