"""A loopback fake of the OpenAI audio endpoints, as whisper.cpp, speaches, Kokoro or Piper servers serve them.

`POST /v1/audio/transcriptions` takes the multipart upload (`file`, `model`, `language`,
`response_format`) and answers the configured text, with Whisper-style segments for `verbose_json`.
`POST /v1/audio/speech` takes the JSON body (`model`, `input`, `voice`, `response_format`) and answers a
16-bit mono WAV at `speech_rate`, 40 ms of audio per character. Faults: `http_500`, `slow` (longer than a
client's timeout), `not_wav`. Every request is recorded for assertions.
"""

from __future__ import annotations

import asyncio
import io
import math
import struct
import wave
from dataclasses import dataclass, field

from aiohttp import web

__all__ = ["FakeAudioServer"]


@dataclass(slots=True, kw_only=True)
class FakeAudioServer:
    transcript: str = "Is my order out for delivery?"
    avg_logprob: float | None = -0.3  # None: no segments in the answer
    no_speech_prob: float = 0.01
    speech_rate: int = 24000
    fault: str | None = None  # http_500 | slow | not_wav
    slow_s: float = 3.0
    transcriptions: list[dict[str, object]] = field(default_factory=list)
    speeches: list[dict[str, object]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/audio/transcriptions", self._transcribe)
        app.router.add_post("/v1/audio/speech", self._speak)
        return app

    async def _fault(self) -> web.Response | None:
        if self.fault == "http_500":
            return web.json_response({"error": {"message": "model crashed"}}, status=500)
        if self.fault == "slow":
            await asyncio.sleep(self.slow_s)
        return None

    async def _transcribe(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        upload = form["file"]
        assert isinstance(upload, web.FileField)
        audio = upload.file.read()
        upload.file.close()  # before any fault: a cancelled handler must leave nothing open
        with wave.open(io.BytesIO(audio)) as wav:
            seen = {
                "rate": wav.getframerate(),
                "channels": wav.getnchannels(),
                "width": wav.getsampwidth(),
                "frames": wav.getnframes(),
            }
        self.transcriptions.append(
            {**seen, **{k: str(v) for k, v in form.items() if k != "file"},
             "auth": request.headers.get("Authorization")}
        )
        if (failed := await self._fault()) is not None:
            return failed
        body: dict[str, object] = {"text": self.transcript}
        if form.get("response_format") == "verbose_json" and self.avg_logprob is not None:
            body["segments"] = [
                {"id": 0, "text": self.transcript, "avg_logprob": self.avg_logprob,
                 "no_speech_prob": self.no_speech_prob}
            ]
        return web.json_response(body)

    async def _speak(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.speeches.append({**body, "auth": request.headers.get("Authorization")})
        if (failed := await self._fault()) is not None:
            return failed
        if self.fault == "not_wav":
            return web.Response(body=b"ID3 this is an mp3", content_type="audio/mpeg")
        frames = self.speech_rate * 40 * len(str(body["input"])) // 1000
        samples = b"".join(
            struct.pack("<h", int(8000 * math.sin(2 * math.pi * 220 * n / self.speech_rate)))
            for n in range(frames)
        )
        out = io.BytesIO()
        with wave.open(out, "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(self.speech_rate)
            wav.writeframes(samples)
        return web.Response(body=out.getvalue(), content_type="audio/wav")
