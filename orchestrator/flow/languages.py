"""Texts in several languages: `say: {en-KE: "...", sw-KE: "..."}` wherever a flow allows a text.

A flow declares its languages (`languages: [en-KE, sw-KE]`, the first is the default); a text is either one
string (the same words in every language) or a mapping from language to words. Picking the words for a call's
language happens here and only here, so the machine, the session and the offline policy agree on the rule:
the call's language, else the flow's default, else the first written.
Imports nothing from the orchestrator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

__all__ = [
    "LANGUAGE_EVENT",
    "SET_LANGUAGE_TOOL",
    "LocalText",
    "Phrases",
    "language_name",
    "missing_languages",
    "phrases_for",
    "text_for",
    "text_variants",
]

# A text as the flow writes it: the same in every language, or one per language.
LocalText: TypeAlias = str | Mapping[str, str]
# Phrases a caller may say: the same list in every language, or one list per language.
Phrases: TypeAlias = Sequence[str] | Mapping[str, Sequence[str]]

# The machine's event when the call's language changes (the caller asked, or the model heard it).
LANGUAGE_EVENT = "language_changed"
# The tool a model (or the offline policy) calls to change the call's language.
SET_LANGUAGE_TOOL = "set_language"

_NAMES: Mapping[str, str] = {
    "en": "English",
    "sw": "Swahili",
    "fr": "French",
    "so": "Somali",
    "am": "Amharic",
    "lg": "Luganda",
}


def text_for(text: LocalText | None, language: str, default: str) -> str | None:
    """The words of `text` in `language`, else in `default`, else the first written.

    >>> text_for({"en-KE": "Hello", "sw-KE": "Habari"}, "sw-KE", "en-KE")
    'Habari'
    >>> text_for("Hello", "sw-KE", "en-KE")
    'Hello'
    """
    if text is None or isinstance(text, str):
        return text
    found = text.get(language) or text.get(default)
    return found if found is not None else next(iter(text.values()), None)


def phrases_for(phrases: Phrases, language: str) -> tuple[str, ...]:
    """The phrases to listen for in `language`: a plain list counts in every language."""
    if isinstance(phrases, Mapping):
        return tuple(phrases.get(language, ()))
    return tuple(phrases)


def text_variants(text: LocalText) -> list[tuple[str | None, str]]:
    """Each written version of `text` with its language (None for a plain string)."""
    if isinstance(text, str):
        return [(None, text)]
    return list(text.items())


def missing_languages(text: LocalText, languages: Sequence[str]) -> list[str]:
    """The declared languages `text` has no words for; a plain string has only the default's."""
    if len(languages) < 2:
        return []
    if isinstance(text, str):
        return list(languages[1:])
    return [language for language in languages if not text.get(language)]


def language_name(code: str) -> str:
    """A language's English name for instructions to a model: "sw-KE" -> "Swahili (sw-KE)"."""
    name = _NAMES.get(code.split("-")[0].lower())
    return f"{name} ({code})" if name else code
