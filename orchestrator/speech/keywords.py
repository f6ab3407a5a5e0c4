"""Intents in open-vocabulary words: the flow's own phrases first, then the words only one intent uses.

A grammar result either holds an intent's phrase or it does not. Open-vocabulary words — a Whisper
transcript, or pocketsphinx's second look at audio its grammar could not explain — are the caller's own
wording: "I ordered a fridge and it hasn't arrived" holds no phrase of the flow, yet plainly asks about an
order. The keywords come from the flow's phrases (the words one intent uses and no other), so a flow tunes
them where it tunes everything else, and nothing here knows about orders. This module is pure text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

__all__ = ["intent_keywords", "keywords_heard", "match_keywords", "stem", "words_after_last"]

_WORD = re.compile(r"[a-z']+")
# Words that say nothing about what the caller wants, whichever phrase they appear in.
_STOP = frozenset(
    "a an the my me i i'm i'd it it's is are was be been will would do does did have has had this that "
    "these those to of for on in at with and or but so please can could you your what when how yes no "
    "not okay ok hello hi there here just".split()
)
_SUFFIXES = ("ing", "ed", "es", "s")


def stem(word: str) -> str:
    """A crude stem, enough to meet "arrived" with "arrive" and "orders" with "order"."""
    word = word.removesuffix("'s")
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)].rstrip("e")
    return word.rstrip("e") if len(word) > 4 else word  # "arrive" meets "arrived"; "care" stays "care"


def intent_keywords(
    intents: Mapping[str, Iterable[str]], *, exclude: Iterable[str] = ()
) -> dict[str, frozenset[str]]:
    """Intent -> the stems of its phrases' words that no other intent's phrases use (stop words left out).

    `exclude` names intents that must be said in their own words (yes and no: a stray "no" in a sentence
    is not an answer).
    """
    skipped = set(exclude)
    stems = {
        name: {stem(w) for phrase in phrases for w in _WORD.findall(phrase.lower()) if w not in _STOP}
        for name, phrases in intents.items()
        if name not in skipped
    }
    keywords: dict[str, frozenset[str]] = {}
    for name, own in stems.items():
        others = set().union(*(words for other, words in stems.items() if other != name))
        keywords[name] = frozenset(own - others)
    return keywords


def match_keywords(text: str, keywords: Mapping[str, frozenset[str]]) -> str | None:
    """The one intent with the most keywords in `text`; None when none is heard or two tie."""
    heard = {stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP}
    scores = sorted(
        ((len(heard & words), name) for name, words in keywords.items() if heard & words), reverse=True
    )
    if not scores or (len(scores) > 1 and scores[0][0] == scores[1][0]):
        return None
    return scores[0][1]


def keywords_heard(text: str, keywords: frozenset[str]) -> int:
    """How many of one intent's `keywords` (stems) occur in `text`."""
    return len({stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP} & keywords)


# What callers add after a goodbye without saying anything more: "bye, thank you very much, have a nice day".
_PLEASANTRIES = frozenset(
    "thank thanks you very much so a have good nice great day evening morning afternoon night then okay ok "
    "bye goodbye take care again asante sana kwaheri".split()
)


def words_after_last(text: str, phrases: Iterable[str]) -> int | None:
    """How many words, pleasantries aside, follow the last whole-word occurrence of any of `phrases` in
    `text`; None when none occurs.

    A goodbye is the last thing a caller says: "bye" with a question after it is a greeting misheard
    (Whisper heard slt's "Hello? Yes, hi. I'd like to check on my things..." as "hello yes bye i'd like...").
    """
    words = _WORD.findall(text.lower())
    last_end: int | None = None
    for phrase in phrases:
        target = _WORD.findall(phrase.lower())
        width = len(target)
        for start in range(len(words) - width + 1):
            if width and words[start : start + width] == target:
                end = start + width
                last_end = end if last_end is None else max(last_end, end)
    return None if last_end is None else sum(w not in _PLEASANTRIES for w in words[last_end:])
