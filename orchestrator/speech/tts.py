"""Offline text-to-speech for the agent: espeak-ng (a Debian package), resampled to the call's rate.

espeak-ng's formant voice is robotic but clear, starts in milliseconds and needs no model files; it is the
agent's voice only (it makes a poor *test caller*: recognisers are not trained on it — see voices.py).
Each synthesis runs the `espeak-ng --stdout` process from a worker thread with a timeout, so the event loop
never waits on it and a fast-forwarded test clock still accounts for the time it takes.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from collections import OrderedDict
from dataclasses import dataclass, replace

from orchestrator.audio.resample import resample
from orchestrator.errors import BrainError, ConfigError

__all__ = ["ESPEAK_RATE", "EspeakTts", "TtsError", "split_sentences", "wav_payload"]

ESPEAK_RATE = 22050
_WORDS_PER_MINUTE = 165
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
# Sentences already spoken, by voice, speed, rate and text. A flow's fixed sentences ("Let me check the
# orders placed from this number.", "Is there anything else?") come back in every call; each synthesis is
# an espeak-ng process, tens of milliseconds idle and hundreds with five calls on two cores, on the way to
# the reply's first audio. Bounded: ~3 s of 16 kHz audio is ~100 kB, so the cache holds at most ~13 MB.
_CACHE_SENTENCES = 128
_spoken: OrderedDict[tuple[str, str, float, int, str], bytes] = OrderedDict()


class TtsError(BrainError):
    """espeak-ng failed or timed out: the brain cannot speak (the flow's brain_failed route)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EspeakTts:
    """Speaks text as S16LE mono PCM at `rate`.

        tts = EspeakTts(voice="en-us", rate=16000)
        pcm = await tts.synthesize("Your order is out for delivery.")
    """

    voice: str = "en-us"
    speed: float = 1.0
    rate: int = 16000
    timeout_s: float = 5.0
    executable: str = "espeak-ng"

    def at_rate(self, rate: int) -> EspeakTts:
        """The same voice, speaking at another sample rate (the call's)."""
        return replace(self, rate=rate)

    def check(self) -> None:
        """Fail early, at start-up, when espeak-ng is not installed."""
        if shutil.which(self.executable) is None:
            raise ConfigError(f"{self.executable} is not installed (apt-get install espeak-ng)")

    async def synthesize(self, text: str) -> bytes:
        key = (self.executable, self.voice, self.speed, self.rate, text)
        pcm = _spoken.get(key)
        if pcm is not None:
            _spoken.move_to_end(key)
            return pcm
        wav = await asyncio.to_thread(self._run, text)
        pcm = resample(wav_payload(wav), ESPEAK_RATE, self.rate)
        _spoken[key] = pcm
        while len(_spoken) > _CACHE_SENTENCES:
            _spoken.popitem(last=False)
        return pcm

    def _run(self, text: str) -> bytes:
        command = [
            self.executable,
            "-v",
            self.voice,
            "-s",
            str(round(_WORDS_PER_MINUTE * self.speed)),
            "--stdout",
            "--",  # the text never reads as an option
            text,
        ]
        try:
            done = subprocess.run(  # noqa: S603  # fixed executable, text is an argument, no shell
                command, capture_output=True, timeout=self.timeout_s, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise TtsError(f"espeak-ng failed: {exc}") from exc
        if done.returncode != 0 or len(done.stdout) <= 44:
            detail = done.stderr.decode(errors="replace").strip()[:200]
            raise TtsError(f"espeak-ng exited {done.returncode}: {detail}")
        return done.stdout


def wav_payload(wav: bytes) -> bytes:
    """The samples of a RIFF/WAVE file's `data` chunk.

    espeak-ng writing to a pipe cannot seek back to fix the sizes in its header, so the data chunk's
    declared length is unreliable: everything after the chunk header is taken.
    """
    if wav[:4] != b"RIFF" or wav[8:12] != b"WAVE":
        raise TtsError("espeak-ng did not write a WAV file")
    at = 12
    while at + 8 <= len(wav):
        chunk, size = wav[at : at + 4], int.from_bytes(wav[at + 4 : at + 8], "little")
        if chunk == b"data":
            payload = wav[at + 8 :]
            return payload[: len(payload) - len(payload) % 2]
        at += 8 + size + size % 2
    raise TtsError("no data chunk in espeak-ng's WAV output")


def split_sentences(text: str) -> list[str]:
    """Sentences to speak one by one, so the first can play while the rest are synthesised."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]
