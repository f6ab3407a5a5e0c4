"""Whether two recognisers heard the same sounds, whatever words they spelt them with.

The grammar recogniser can only answer with its own words; the open decoder of the second look answers
with any English word. When the grammar's words are unsure but the open decoder heard the same consonants
in the same order ("yes" Y EH S and "us" AH S, awb's Scottish "yes"), the two agree on what was said, and
the grammar's words are the meaning of it. Vowels are where accents and the American model part most, and
a leading glide or "h" is the first sound a model loses, so the comparison keeps consonants and where the
vowels fall, nothing more, and needs them equal: one consonant apart is another word ("this" DH IH S is
not "yes").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

__all__ = ["sound_skeleton", "sound_alike"]

_VOWELS = frozenset({
    "AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW",
})
_WEAK_ONSETS = frozenset({"Y", "W", "HH"})


def sound_skeleton(phones: Iterable[str]) -> tuple[str, ...]:
    """One word's phones as consonants and vowel places: "Y EH S" -> ("V", "S")."""
    skeleton: list[str] = []
    for phone in phones:
        phone = phone.rstrip("012")  # stress marks, where a dictionary keeps them
        if phone in _WEAK_ONSETS and not skeleton:
            continue
        if phone in _VOWELS:
            phone = "V"
            if skeleton and skeleton[-1] == "V":  # a diphthong split in two by one dictionary
                continue
        skeleton.append(phone)
    return tuple(skeleton)


def sound_alike(
    first: Iterable[str], second: Iterable[str], pronounce: Callable[[str], str | None]
) -> bool:
    """Whether two word sequences share a sound skeleton; `pronounce` gives a word's phones ("Y EH S").

    A word with no pronunciation never sounds like anything, nor do vowels alone ("hi", "oh", "a" and
    "you" would all sound alike). Word edges are not compared: "that's right" and "that's write" do.
    """
    skeletons = []
    for words in (list(first), list(second)):
        if not words:
            return False
        skeleton: list[str] = []
        for word in words:
            spoken = pronounce(word)
            if not spoken:
                return False
            skeleton += sound_skeleton(spoken.split())
        skeletons.append(skeleton)
    return skeletons[0] == skeletons[1] and any(p != "V" for p in skeletons[0])
