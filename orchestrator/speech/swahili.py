"""Swahili words for the offline recogniser: spelling -> the English acoustic model's phones.

pocketsphinx ships only an English (en-us) acoustic model, and nothing offline on PyPI or Debian brings a
Swahili one. Swahili spelling is close to phonemic (five vowels, one sound per letter or digraph), so a word's
pronunciation can be written in CMU phones by rule: "kwaheri" -> K W AA HH EH R IY. A grammar of a few dozen
Swahili phrases decoded with these pronunciations is a phrase spotter, not Swahili speech recognition: it can
tell "ndiyo" from "hapana" and read Swahili digits, but nothing outside the grammar, and English phones miss
some Swahili sounds (a trilled r, implosive-free but prenasalised mb/nd/ng). Its accuracy on the only Swahili
voice available offline (espeak-ng's `sw`) is measured by bench/swahili_grammar.py.
Imports nothing from the orchestrator.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable, Mapping
from functools import lru_cache

from orchestrator.audio.resample import resample
from orchestrator.errors import ConfigError

__all__ = [
    "SWAHILI_DIGIT_WORDS",
    "swahili_caller",
    "swahili_phones",
    "swahili_pronunciations",
]

# Digits as Swahili callers say them; Kenyan callers also read numbers in English, so a Swahili grammar
# keeps the English digit words too.
SWAHILI_DIGIT_WORDS: Mapping[str, str] = {
    "sifuri": "0",
    "moja": "1",
    "mbili": "2",
    "tatu": "3",
    "nne": "4",
    "tano": "5",
    "sita": "6",
    "saba": "7",
    "nane": "8",
    "tisa": "9",
}

# Longest spellings first: "ng'" before "ng", "ch" before "c".
_GRAPHEMES: tuple[tuple[str, str], ...] = (
    ("ng'", "NG"),
    ("ng", "N G"),
    ("ny", "N Y"),
    ("ch", "CH"),
    ("sh", "SH"),
    ("th", "TH"),
    ("dh", "DH"),
    ("gh", "G"),
    ("kh", "HH"),
    ("a", "AA"),
    ("e", "EH"),
    ("i", "IY"),
    ("o", "OW"),
    ("u", "UW"),
    ("b", "B"),
    ("c", "K"),
    ("d", "D"),
    ("f", "F"),
    ("g", "G"),
    ("h", "HH"),
    ("j", "JH"),
    ("k", "K"),
    ("l", "L"),
    ("m", "M"),
    ("n", "N"),
    ("p", "P"),
    ("q", "K"),
    ("r", "R"),
    ("s", "S"),
    ("t", "T"),
    ("v", "V"),
    ("w", "W"),
    ("x", "K S"),
    ("y", "Y"),
    ("z", "Z"),
)


def swahili_phones(word: str) -> str:
    """The CMU phones of a Swahili word, by its spelling: "tafadhali" -> "T AA F AA DH AA L IY".

    >>> swahili_phones("ng'ombe")
    'NG OW M B EH'
    >>> swahili_phones("nyumbani")
    'N Y UW M B AA N IY'
    """
    text = word.lower()
    phones: list[str] = []
    at = 0
    while at < len(text):
        for spelling, sound in _GRAPHEMES:
            if text.startswith(spelling, at):
                phones.append(sound)
                at += len(spelling)
                break
        else:
            at += 1  # an apostrophe or a letter with no sound of its own
    return " ".join(phones)


def swahili_pronunciations(phrases: Iterable[str]) -> dict[str, str]:
    """Every word of these phrases with its phones (letters spoken by name are left to the dictionary)."""
    words = {word for phrase in phrases for word in phrase.split() if len(word) > 1}
    return {word: swahili_phones(word) for word in sorted(words)}


_ESPEAK_RATE = 22050


def swahili_caller(voice: str = "sw", speed_wpm: int = 150) -> _SwahiliCaller:
    """A simulator voice hook speaking Swahili with espeak-ng (`sw`, or a variant such as `sw+m3`).

    The only Swahili voice that installs offline; a formant voice, so it measures the grammar's floor, not
    how a person on a phone line is heard (voices.py: recognisers do worse on espeak-ng than on people).
    """
    return _SwahiliCaller(voice=voice, speed_wpm=speed_wpm)


class _SwahiliCaller:
    __slots__ = ("speed_wpm", "voice")

    def __init__(self, *, voice: str, speed_wpm: int) -> None:
        self.voice = voice
        self.speed_wpm = speed_wpm

    def __call__(self, text: str, rate: int) -> bytes:
        return _espeak(text, self.voice, self.speed_wpm, rate)


@lru_cache(maxsize=256)
def _espeak(text: str, voice: str, speed_wpm: int, rate: int) -> bytes:
    from orchestrator.speech.tts import wav_payload

    command = ["espeak-ng", "-v", voice, "-s", str(speed_wpm), "--stdout", "--", text]
    try:
        done = subprocess.run(  # noqa: S603  # fixed executable, text is an argument, no shell
            command, capture_output=True, timeout=10.0, check=True
        )
    except FileNotFoundError as exc:
        raise ConfigError("espeak-ng is not installed (apt-get install espeak-ng)") from exc
    except (subprocess.SubprocessError, OSError) as exc:
        raise ConfigError(f"espeak-ng failed: {exc}") from exc
    return resample(wav_payload(done.stdout), _ESPEAK_RATE, rate)
