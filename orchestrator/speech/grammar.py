"""JSGF grammars for the offline recogniser, generated from what the flow expects callers to say.

A grammar is the recogniser's whole world: pocketsphinx can only return sentences it allows, which is what
makes a small acoustic model accurate on order numbers (98% on five digits, measured, against 66% open
vocabulary). So the grammar is built per call from the flow's policy: order-number shapes (`DX####`: letters
spoken one by one, then exactly four digits), intent phrases and carrier phrases ("my order number is ...").
This module is pure text: no decoder, no audio, no flow import — `GrammarSpec` is plain data.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from orchestrator.speech.swahili import SWAHILI_DIGIT_WORDS

__all__ = [
    "DIGIT_WORDS",
    "RUN_IN_PHONES",
    "GrammarSpec",
    "LeadIn",
    "build_jsgf",
    "build_lead_in_jsgf",
    "content_span",
    "grammar_words",
    "lead_in_runs",
    "match_intent",
    "number_took_intent",
    "parse_order_number",
    "spoken_base_word",
    "spoken_order_number",
]

DIGIT_WORDS: Mapping[str, str] = {
    "zero": "0",
    "oh": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}
# Digit words as callers run them into the letter just before: slt says "P K two zero" as "kay-yoo zero",
# the T lost in the glide out of K's EY, and the grammar heard "p k zero zero", confidently, every time.
# Each is a dictionary word of its own (decoded text says the digit word it stands for), offered only in
# English grammars and only right after a shape's letters. As a variant `two(2)` of the dictionary's
# "two" it was everywhere: in a Swahili grammar (which takes English digits too: "habari oda yangu iko
# wapi" was lost) and between any two digits ("three one" streamed as "three two one").
_RUN_IN_DIGITS: Mapping[str, str] = {"two_run_in": "two"}
RUN_IN_PHONES: Mapping[str, str] = {"two_run_in": "Y UW"}
# Any digit word a grammar may return, in any of its languages: reading the result needs no language.
_READ_DIGITS: Mapping[str, str] = {
    **DIGIT_WORDS,
    **SWAHILI_DIGIT_WORDS,
    **{word: DIGIT_WORDS[digit] for word, digit in _RUN_IN_DIGITS.items()},
}
_SPOKEN_DIGIT = {"0": "zero", **{v: k for k, v in DIGIT_WORDS.items() if k not in ("zero", "oh")}}
# Letter names as the CMU dictionary spells them ("d" is D IY); a caller says "dee ex", the grammar "d x".
_LETTER = re.compile(r"[a-z]")
_WORD = re.compile(r"[a-z']+")
# An open decode that heard no number heard its letters and first digits as about this many words before
# the first digit word it did hear ("t excellent era seven one" for "D X one zero seven one"): measured on
# four flite voices, leaving out 2 recovered the most numbers, 3 began to leave out the lead-in itself.
_MISHEARD_BEFORE_DIGITS = 2


@dataclass(frozen=True, slots=True, kw_only=True)
class GrammarSpec:
    """What callers may say: order-number shapes, intents by name, and carrier phrases around them."""

    shapes: tuple[str, ...] = ()
    intents: Mapping[str, tuple[str, ...]]
    fillers: tuple[str, ...] = ()
    # The words a digit may be spoken as (a Swahili grammar adds "moja", "mbili", ...).
    digits: Mapping[str, str] = field(default_factory=lambda: DIGIT_WORDS)
    # Phones of words the English dictionary lacks or says otherwise (speech/swahili.py), added to the decoder.
    pronunciations: Mapping[str, str] = field(default_factory=dict)


def build_jsgf(spec: GrammarSpec, *, numbers: bool = True, name: str = "caller") -> str:
    """The JSGF text of one search: intents, and order numbers too when `numbers` is true.

    Shape: `[filler] [filler] (order_number | intent) [filler]` — carrier phrases cover "hello, it's D X one
    oh four two, thanks" without letting the grammar wander into free text.
    """
    rules = [
        "#JSGF V1.0;",
        f"grammar {name};",
        "<digit> = " + " | ".join(spec.digits) + ";",
    ]
    bodies: list[str] = []
    if numbers and spec.shapes:
        run_in = dict(spec.digits) == dict(DIGIT_WORDS)  # English digits only: not a Swahili grammar's
        shapes = " | ".join(f"( {_shape_rule(shape, run_in=run_in)} )" for shape in spec.shapes)
        rules.append(f"<order_number> = {shapes};")
        bodies.append("<order_number>")
    for intent, phrases in spec.intents.items():
        rules.append(f"<intent_{intent}> = " + " | ".join(f"( {p} )" for p in phrases) + ";")
        bodies.append(f"<intent_{intent}>")
    if not bodies:
        raise ValueError("a grammar needs order-number shapes or intents")
    if spec.fillers:
        rules.append("<filler> = " + " | ".join(f"( {f} )" for f in spec.fillers) + ";")
        # At most two carrier phrases before and one after: an open `<filler>*` loop made decoding
        # ten times slower and let the grammar absorb noise as filler words.
        body = " | ".join(bodies)
        rules.append(f"public <{name}> = [<filler>] [<filler>] ( {body} ) [<filler>];")
    else:
        rules.append(f"public <{name}> = {' | '.join(bodies)};")
    return "\n".join(rules) + "\n"


class LeadIn(NamedTuple):
    """The caller's own words around an order number, as an open decode heard them (`lead_in_runs`)."""

    before: list[str]
    after: list[str]
    placed: bool  # the open words held a digit: where the number lies is known


def build_lead_in_jsgf(lead: LeadIn, shapes: Iterable[str], *, name: str = "lead_in") -> str:
    """A grammar for one utterance: exactly one order number among the caller's own words (`lead`).

    Callers introduce numbers with words no flow can list ("the code they texted me is D X ..."), and a
    closed grammar then mishears the number too. Offered the words an open-vocabulary decode heard in the
    same audio, the lead-in is explained by words that fit it and the number region by the shapes:
    - placed (the open words held a digit, so the number's own words are already left out): any of the
      words, any number of times, before and after the number;
    - not placed: `before` each at most once, in the order heard, any of them left out. The open decode
      heard the number as words too (slt's "it says D X one zero four two" as "it says the excellence era
      far to you"), and a loop let them soak up its audio again. In order they can only come before the
      number, where the audio is the caller's own words; offered, they leave no path to the grammar's end
      (an empty decode), and `GrammarDecoder._number_among` offers fewer.
    """
    number = " | ".join(f"( {_shape_rule(shape, run_in=True)} )" for shape in shapes)
    if not number:
        raise ValueError("a lead-in grammar needs order-number shapes")
    rules = [
        "#JSGF V1.0;",
        f"grammar {name};",
        "<digit> = " + " | ".join(DIGIT_WORDS) + ";",
        f"<order_number> = {number};",
    ]
    words = sorted({*lead.before, *lead.after})
    if not words:
        rules.append(f"public <{name}> = <order_number>;")
    elif lead.placed:
        rules.append("<lead> = " + " | ".join(words) + ";")
        rules.append(f"public <{name}> = <lead>* <order_number> <lead>*;")
    else:
        sentence = [*(f"[ {w} ]" for w in lead.before), "<order_number>", *(f"[ {w} ]" for w in lead.after)]
        rules.append(f"public <{name}> = {' '.join(sentence)};")
    return "\n".join(rules) + "\n"


def lead_in_runs(heard: list[str], shapes: tuple[str, ...]) -> LeadIn:
    """The words an open decode heard that may be the caller's own words before and after the order number.

    The open model hears letters and the digits next to them as words ("P K two zero" as "p kane is
    aaron", "D X one zero" as "t excellent era"); offered as lead-in, those words explain the number's
    audio better than its letters do, and the number is lost. So:
    - when the open words already hold a number of a shape, the words around it are the lead-in, digit
      words included ("the one I'm after is P K ..." has a "one" of its own);
    - otherwise the number's start was misheard: the words just before the first digit word heard are
      left out, and no digit word is lead-in (it would swallow the number's digits);
    - with no digit word at all, every word may come before the number: some of them were the number
      (not `placed`: the grammar keeps them in order, `build_lead_in_jsgf`);
    - letters of the shapes are never lead-in: they belong to the number.
    """
    tokens = [_token(word) for word in heard]
    span = _number_span(tokens, shapes)
    digits = [i for i, token in enumerate(tokens) if token is not None and token.isdigit()]
    if span is not None:
        before, after = heard[: span[0]], heard[span[1] :]
    else:
        if digits:
            before = heard[: max(0, digits[0] - _MISHEARD_BEFORE_DIGITS)]
            after = heard[digits[-1] + 1 :]
        else:
            before, after = heard, []
        before = [word for word in before if word not in DIGIT_WORDS]
        after = [word for word in after if word not in DIGIT_WORDS]
    letters = {ch.lower() for shape in shapes for ch in shape if ch != "#"}

    def kept(words: list[str]) -> list[str]:
        return [word for word in words if _WORD.fullmatch(word) and word not in letters]

    return LeadIn(kept(before), kept(after), placed=bool(digits))


def number_took_intent(heard: list[str], decoded: list[str], spec: GrammarSpec) -> bool:
    """Whether a number decoded among the open decode's words (`build_lead_in_jsgf`) took the place of
    any word of an intent's phrase among them.

    The lead-in grammar offers the heard words, in order, before the number; those it kept are the decoded
    words before the number, and the rest were explained by the number's own sounds. When one of those is
    part of an intent's phrase as heard ("where's my delivery" decoded as "where's nine oh one three eight",
    "by any updates on my delivery" as "by any updates on my eight oh oh one three"), the number was fitted
    over what the caller asked.

    >>> spec = GrammarSpec(shapes=("#####",), intents={"status": ("my delivery",)})
    >>> number_took_intent("where's my delivery".split(), "where's my nine oh one three eight".split(), spec)
    True
    >>> number_took_intent("my delivery is the excellence".split(), "my delivery is one two three four five".split(), spec)
    False
    """
    span = _number_span([_token(word) for word in decoded], spec.shapes)
    kept = decoded[: span[0]] if span is not None else decoded
    taken: set[int] = set()
    at = 0
    for index, word in enumerate(heard):
        if at < len(kept) and word == kept[at]:
            at += 1
        else:
            taken.add(index)
    lowered = [word.lower() for word in heard]
    return any(taken.intersection(range(start, end)) for start, end in _phrase_spans(lowered, spec.intents))


def grammar_words(spec: GrammarSpec) -> frozenset[str]:
    """Every word a grammar built from `spec` can contain (to check against the recogniser's dictionary)."""
    words = set(spec.digits)
    for shape in spec.shapes:
        words.update(ch.lower() for ch in shape if ch != "#")
    for text in (*spec.fillers, *(p for phrases in spec.intents.values() for p in phrases)):
        words.update(_WORD.findall(text))
    return frozenset(words)


def parse_order_number(text: str, shapes: Iterable[str]) -> str | None:
    """The order number in recognised text ("my order is d x one oh four two" -> "DX1042"), if one fits.

    The decoded words are read as letters and digits; a run that fits a shape is a number, and of several
    the last one wins: a caller who corrects themselves says the right number last ("P K two zero nine
    four four, wait, no, sorry, P K two zero nine three one"). Intent words never look like a shape, so a
    sentence without a number gives None.
    """
    tokens = [_token(word) for word in text.lower().split()]
    shapes = tuple(shapes)
    # A letter heard as one that sounds alike ("D K" for "P K", "B X" for "D X") still fits a shape when the
    # rest fits exactly; the number is read back before any lookup, so the caller hears what was taken.
    found = _last_run(tokens, shapes)
    if found is None:
        return None
    start, shape = found
    return "".join(
        want if want != "#" else str(token) for token, want in zip(tokens[start:], shape, strict=False)
    )


def _last_run(tokens: list[str | None], shapes: tuple[str, ...]) -> tuple[int, str] | None:
    """Where the last run of tokens that fits a shape starts, and the shape; runs are taken from the left
    without overlap, so a digit after a number does not make a second number out of the first's tail.
    At each place an exact fit comes first, then one with a letter heard alike."""
    found: tuple[int, str] | None = None
    at = 0
    while at < len(tokens):
        run = next(
            (
                (start, shape)
                for start in range(at, len(tokens))
                for alike in (False, True)
                for shape in shapes
                if _fits_run(tokens[start : start + len(shape)], shape, alike=alike)
            ),
            None,
        )
        if run is None:
            break
        found = run
        at = run[0] + len(run[1])
    return found


def _fits_run(window: list[str | None], shape: str, *, alike: bool) -> bool:
    if len(window) != len(shape):
        return False
    if all(_fits(token, want) for token, want in zip(window, shape, strict=True)):
        return True
    if not alike:
        return False
    letters = [(token, want) for token, want in zip(window, shape, strict=True) if want != "#"]
    misses = [(token, want) for token, want in letters if token != want]
    return (
        len(letters) > 1
        and len(misses) == 1
        and _sounds_alike(*misses[0])
        and all(_fits(token, want) for token, want in zip(window, shape, strict=True) if want == "#")
    )


# Letters a phone line or a recogniser confuses: the E-set ("bee", "dee", "pee"...), the A-set, m/n, s/f/x.
_ALIKE_LETTERS = ("BCDEGPTVZ", "AJK", "MN", "FSX")


def _sounds_alike(token: str | None, want: str) -> bool:
    return token is not None and any(token in group and want in group for group in _ALIKE_LETTERS)


def content_span(words: list[str], spec: GrammarSpec) -> tuple[int, int] | None:
    """Where the meaning is in recognised words: the order number's words, else the intent phrase's.

    `(start, end)` indexes `words` (end exclusive); None when only carrier phrases were heard. Confidence
    is judged on these words: a filler said oddly must not sink a clear number, and a clear filler must
    not carry a number the grammar invented.
    """
    number = _number_span([_token(word) for word in words], spec.shapes)
    if number is not None:
        return number
    spans = list(_phrase_spans(words, spec.intents))
    return max(spans, key=lambda span: span[1] - span[0]) if spans else None  # the longest, first on ties


def _phrase_spans(words: list[str], intents: Mapping[str, tuple[str, ...]]) -> Iterator[tuple[int, int]]:
    """Every `(start, end)` of `words` (end exclusive) where one of the intents' phrases occurs whole."""
    for phrases in intents.values():
        for phrase in phrases:
            target = phrase.split()
            for start in range(len(words) - len(target) + 1):
                if words[start : start + len(target)] == target:
                    yield start, start + len(target)


def spoken_order_number(number: str) -> str:
    """How the agent reads an order number back: "DX1042" -> "D X one zero four two"."""
    return " ".join(_SPOKEN_DIGIT.get(ch, ch.upper()) for ch in number)


def match_intent(text: str, intents: Mapping[str, tuple[str, ...]]) -> str | None:
    """The intent whose phrase occurs in `text` as whole words; the longest phrase wins ties."""
    padded = f" {' '.join(_WORD.findall(text.lower()))} "
    best: tuple[int, str] | None = None
    for intent, phrases in intents.items():
        for phrase in phrases:
            if f" {phrase} " in padded and (best is None or len(phrase) > best[0]):
                best = (len(phrase), intent)
    return best[1] if best else None


def _number_span(tokens: list[str | None], shapes: tuple[str, ...]) -> tuple[int, int] | None:
    """Where the first run of tokens that fits a shape is (shapes in order), else None."""
    for shape in shapes:
        width = len(shape)
        for start in range(len(tokens) - width + 1):
            window = tokens[start : start + width]
            if all(_fits(token, want) for token, want in zip(window, shape, strict=True)):
                return start, start + width
    return None


def spoken_base_word(word: str) -> str:
    """The word a decoded dictionary word stands for: a variant "the(2)" -> "the", "two_run_in" -> "two"."""
    base = word.split("(", 1)[0]
    return _RUN_IN_DIGITS.get(base, base)


def _shape_rule(shape: str, *, run_in: bool = False) -> str:
    """A shape's words: its letters, and `<digit>` per "#" (the first after a letter may be run into it)."""
    words = []
    for at, ch in enumerate(shape):
        if ch != "#":
            words.append(ch.lower())
        elif run_in and at > 0 and shape[at - 1] != "#":
            words.append("( " + " | ".join(("<digit>", *_RUN_IN_DIGITS)) + " )")
        else:
            words.append("<digit>")
    return " ".join(words)


def _token(word: str) -> str | None:
    if word in _READ_DIGITS:
        return _READ_DIGITS[word]
    if len(word) == 1 and _LETTER.fullmatch(word):
        return word.upper()
    return None


def _fits(token: str | None, want: str) -> bool:
    if token is None:
        return False
    return token.isdigit() if want == "#" else token == want
