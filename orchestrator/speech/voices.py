"""Natural-sounding test callers: flite's built-in voices, for tests, the demo and the ASR benchmark.

Recognisers are trained on human speech; flite's diphone and clustergen voices behave like recordings
(measured: 98% five-digit accuracy), while espeak-ng's formant speech does not (39%) — so callers are
never espeak-ng. `synthesize_caller` is synchronous because the simulator's voice hook is a plain
`(text, rate) -> pcm` callable; results are cached, since tests say the same lines again and again.
"""

from __future__ import annotations

import subprocess
from functools import lru_cache
from typing import Literal

import numpy as np

from orchestrator.audio.resample import resample
from orchestrator.errors import ConfigError

__all__ = [
    "CALLER_VOICES",
    "CallerVoice",
    "add_noise",
    "caller_voice",
    "synthesize_caller",
    "telephone_line",
]

CallerVoice = Literal["kal16", "slt", "awb", "rms"]
CALLER_VOICES: tuple[CallerVoice, ...] = ("kal16", "slt", "awb", "rms")
_FLITE_RATE = 16000
_TIMEOUT_S = 10.0


def synthesize_caller(
    text: str, voice: CallerVoice = "kal16", speed: float = 1.0, rate: int = 16000
) -> bytes:
    """`text` spoken by a flite voice at `speed` (1.0 = normal), as S16LE mono PCM at `rate`."""
    if voice not in CALLER_VOICES:
        raise ConfigError(
            f"unknown caller voice {voice!r}; choose one of {', '.join(CALLER_VOICES)}"
        )
    if not 0.5 <= speed <= 2.0:
        raise ConfigError(f"caller speed {speed} is outside 0.5-2.0")
    return _flite(text, voice, round(speed, 3), rate)


def caller_voice(voice: CallerVoice = "kal16", speed: float = 1.0) -> _CallerVoiceFn:
    """A simulator voice hook: `SimulatorOptions(voice=caller_voice("slt"))`."""
    return _CallerVoiceFn(voice=voice, speed=speed)


class _CallerVoiceFn:
    __slots__ = ("speed", "voice")

    def __init__(self, *, voice: CallerVoice, speed: float) -> None:
        self.voice = voice
        self.speed = speed

    def __call__(self, text: str, rate: int) -> bytes:
        return synthesize_caller(text, self.voice, self.speed, rate)


def add_noise(pcm: bytes, snr_db: float, *, seed: int = 0) -> bytes:
    """White noise mixed in at `snr_db` below the speech's RMS level (a seeded, repeatable line)."""
    speech = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    if speech.size == 0:
        return pcm
    power = float(np.mean(speech**2)) or 1.0
    noise = np.random.default_rng(seed).normal(
        0.0, np.sqrt(power / 10 ** (snr_db / 10)), speech.size
    )
    return np.clip(np.rint(speech + noise), -32768, 32767).astype("<i2").tobytes()


def telephone_line(pcm: bytes, rate: int = 16000) -> bytes:
    """`pcm` as a narrowband phone call carries it: 8 kHz, G.711 mu-law, then back to `rate`.

    Most mobile and PSTN calls still reach a media server as 8 kHz mu-law; a 16 kHz stream from such a
    call holds nothing above 4 kHz, which a wideband acoustic model was trained to hear.
    """
    if not pcm:
        return pcm
    narrow = np.frombuffer(resample(pcm, rate, 8000), dtype="<i2").astype(np.float64) / 32768.0
    mu = 255.0
    # Continuous mu-law, quantised to G.711's 8 bits: the same steps a codec takes, close enough for speech.
    code = np.rint(np.sign(narrow) * np.log1p(mu * np.abs(narrow)) / np.log1p(mu) * 127.0) / 127.0
    decoded = np.sign(code) * np.expm1(np.abs(code) * np.log1p(mu)) / mu
    line = np.clip(np.rint(decoded * 32768.0), -32768, 32767).astype("<i2").tobytes()
    return resample(line, 8000, rate)


@lru_cache(maxsize=512)
def _flite(text: str, voice: str, speed: float, rate: int) -> bytes:
    from orchestrator.speech.tts import wav_payload

    command = ["flite", "-voice", voice, "--setf", f"duration_stretch={1 / speed:.3f}"]
    command += ["-t", text, "-o", "/dev/stdout"]
    try:
        done = subprocess.run(  # noqa: S603  # fixed executable, no shell
            command, capture_output=True, timeout=_TIMEOUT_S, check=True
        )
    except FileNotFoundError as exc:
        raise ConfigError("flite is not installed (apt-get install flite)") from exc
    except (subprocess.SubprocessError, OSError) as exc:
        raise ConfigError(f"flite failed: {exc}") from exc
    return resample(wav_payload(done.stdout), _FLITE_RATE, rate)
