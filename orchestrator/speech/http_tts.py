"""The agent's voice from any OpenAI-compatible `POST /v1/audio/speech` (Kokoro, Piper or speaches servers).

`Synthesizer` is what the cascade brain speaks with: espeak-ng (`EspeakTts`, the offline default) or
`HttpTts`. The server is asked for WAV, whose header carries the sample rate (Kokoro speaks at 24 kHz,
Piper at 22.05 kHz, OpenAI at 24 kHz); the samples are resampled to the call's rate. Every request has a
timeout, and any failure is a `TtsError`: the brain's failure route, which the caller hears.
"""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass, replace
from typing import Protocol

import httpx

from orchestrator.audio.resample import resample
from orchestrator.errors import ConfigError
from orchestrator.speech.tts import TtsError, wav_payload

__all__ = ["HttpTts", "Synthesizer"]


class Synthesizer(Protocol):
    """Text in, S16LE mono PCM at `rate` out."""

    @property
    def rate(self) -> int: ...

    async def synthesize(self, text: str) -> bytes: ...

    def at_rate(self, rate: int) -> Synthesizer: ...

    def check(self) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class HttpTts:
    """An OpenAI-compatible speech endpoint.

        tts = HttpTts(base_url="http://127.0.0.1:8880/v1", model="kokoro", voice="af_heart")
        pcm = await tts.synthesize("Your order is out for delivery.")
    """

    base_url: str
    model: str = "tts-1"
    voice: str = "alloy"
    api_key: str | None = None
    speed: float = 1.0
    rate: int = 16000
    timeout_s: float = 10.0

    def at_rate(self, rate: int) -> HttpTts:
        return replace(self, rate=rate)

    def check(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"the speech endpoint must be an http(s) URL, not {self.base_url!r}")

    async def synthesize(self, text: str) -> bytes:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        body = {
            "model": self.model,
            "input": text,
            "voice": self.voice,
            "response_format": "wav",
            "speed": self.speed,
        }
        url = self.base_url.rstrip("/") + "/audio/speech"
        try:
            async with httpx.AsyncClient(timeout=self.timeout_s) as client:
                response = await client.post(url, json=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise TtsError(f"speech endpoint timed out after {self.timeout_s:g} s") from exc
        except httpx.HTTPError as exc:
            raise TtsError(f"speech endpoint request failed: {exc}") from exc
        if response.status_code != 200:
            raise TtsError(f"speech endpoint answered HTTP {response.status_code}: {response.text[:200]}")
        samples, source_rate = _wav_samples(response.content)
        return resample(samples, source_rate, self.rate)


def _wav_samples(data: bytes) -> tuple[bytes, int]:
    """16-bit mono samples and their rate from a WAV body (a streamed header's sizes may be wrong)."""
    try:
        with wave.open(io.BytesIO(data)) as wav:
            if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
                raise TtsError("the speech endpoint must send 16-bit mono WAV")
            rate = wav.getframerate()
    except (wave.Error, EOFError) as exc:
        raise TtsError(f"the speech endpoint did not send a WAV file: {exc}") from exc
    return wav_payload(data), rate
