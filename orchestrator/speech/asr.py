"""Offline streaming speech recognition: pocketsphinx constrained by grammars generated from the flow.

Two layers. `GrammarDecoder` is synchronous and owns one pocketsphinx decoder with one search per grammar
(order numbers and intents, or intents only); it must be used from one thread at a time. `StreamingRecognizer`
is the async edge a brain uses: it finds utterances with its own VAD (keeping a little pre-roll, because a VAD
confirms speech only after it started), feeds the decoder in chunks from a worker task through
`asyncio.to_thread` while the caller is still talking, and reports each finished utterance. The model is the
English one the pocketsphinx wheel ships: nothing is downloaded at run time.

A grammar always returns *something*: off-topic speech comes back as the nearest allowed sentence. So each
result carries a `confidence` (see `Recognition`): the grammar path's acoustic score compared, frame by
frame over the words that carry the meaning, with the best any sound could score on that frame, which is
what a free phone loop finds. Pocketsphinx already scores every frame relative to its best-scoring sound,
so the grammar path's own normalised score *is* that comparison: a separate phone-loop pass over the same
audio changed the margin by at most 0.02 on 13 test lines while costing 50-160 ms after every utterance,
so it is not run. Audio the grammar explains as well as free sounds do scores near 1; forced speech near 0.

What the grammar cannot explain gets a second look (`GrammarDecoder(second_look=True)`, the default): a
second decoder with the general English language model the wheel ships listens alongside the grammar, fed
the same audio as it comes, and its words are read when the grammar's result is not explained; when the
turn takes order numbers, the audio is decoded once more with a grammar of one number among those words
(`build_lead_in_jsgf`). "The code they texted me is D X one zero four two" is then heard as DX1042, and "I
bought a fridge and want to know when it's coming" as those words (`Decoded.open_vocabulary`), which the
policy reads for intents instead of a number the grammar invented. Only results below `MIN_CONFIDENCE` wait
for it (10-30 ms for the open words, 80-200 ms for the number pass); the open decoder's CPU is spent on
every utterance, while the caller talks.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, Protocol

import numpy as np

from orchestrator.audio.vad import Endpointer, make_voicing
from orchestrator.errors import ConfigError
from orchestrator.speech.grammar import (
    DIGIT_WORDS,
    RUN_IN_PHONES,
    GrammarSpec,
    LeadIn,
    build_jsgf,
    build_lead_in_jsgf,
    content_span,
    grammar_words,
    lead_in_runs,
    number_took_intent,
    parse_order_number,
    spoken_base_word,
)
from orchestrator.speech.sounds import sound_alike

__all__ = [
    "MIN_CONFIDENCE",
    "MIN_WHOLE_CONFIDENCE",
    "SEARCH_INTENTS",
    "SEARCH_NUMBERS",
    "SEARCH_OPEN",
    "Decoded",
    "GrammarDecoder",
    "Recognition",
    "DecoderSource",
    "StreamingRecognizer",
    "confidence_from_margin",
]

SEARCH_NUMBERS: Final = "numbers"  # order numbers and intents: the caller was asked for a number
SEARCH_INTENTS: Final = "intents"  # intents only: nothing here takes an order number
SEARCH_OPEN: Final = "open"  # any English words (the general language model): no grammar at all

# Below this a recognition is "not understood": never an action, reprompt instead. The confidence scale is
# calibrated so that this cut keeps ~99% of correct grammar results on natural voices, clean and at 30 dB
# (bench/asr_accuracy.py prints retention and off-topic rejection at this threshold).
MIN_CONFIDENCE: Final = 0.5
# Below this over the whole utterance (carrier phrases included), the grammar forced its carrier phrases
# over words it lacks: the utterance is not explained, whatever its key words score. A clean "okay thank you
# goodbye" scores ~0.57 on flite voices, "hi I have a reference here, it says D X..." forced onto "hi it's
# bye i want to track order" 0.06.
MIN_WHOLE_CONFIDENCE: Final = 0.25
# A silence or noise this long inside an utterance is speech the grammar swallowed (a real pause that long
# ends the caller's turn; the edges hold at most the 300 ms pre-roll and the VAD's 400 ms hangover): "my
# tracking number is P K two zero nine four four" came back as "my package the number is" and 1.9 s of
# "silence". The utterance as a whole is then not explained (whole confidence 0).
_SWALLOWED_MS = 800
# Mean per-frame log acoustic margin (grammar path against the best sound per frame, over the words that
# carry the meaning) that maps to MIN_CONFIDENCE, and how many log units move the confidence 0.5 -> ~0.73.
_MARGIN_AT_THRESHOLD = -3.6
_MARGIN_SCALE = 0.5
# "(NULL)": the forward pass's null transitions between grammar states (no frames, no sound).
_NON_WORDS = frozenset({"<s>", "</s>", "<sil>", "[NOISE]", "[SPEECH]", "NULL", "(NULL)"})
# The second look's searches: open vocabulary, then one order number among the words it heard.
_SECOND_OPEN: Final = "second_open"
_SECOND_LEAD_IN: Final = "second_lead_in"
# Shorter audio is a click or a breath: nothing a second look could make words of.
_SECOND_LOOK_MIN_MS = 300
# A number the second look finds where its open decode heard no digit at all is a shape fitted to words:
# right at 0.86-0.96 (slt's "it says D X one zero four two"), invented at 0.64-0.66 from "the thing I
# ordered last week" and "I don't have the number with me" (awb, known callers who then heard a number read
# back instead of their order).
_UNPLACED_NUMBER_CONFIDENCE = 0.75
# ...and finding it may take a few decodes of the whole utterance (`_number_among`); past this, the caller
# is waiting: a long utterance with many words took 1.2 s on an idle core.
_NUMBER_AMONG_BUDGET_S = 0.5
# A result explained over the whole utterance less well than this gets the second look too: an intent the
# policy would ask about before acting on it (its default `sure_whole`), or a number whose carrier words
# were forced. slt's "Hi, any update on my delivery?" was forced onto "hi an agent the number is" (key
# words 0.94, whole 0.35), where the open decode heard "by any update on my delivery"; slt's "Sorry, it's
# D X one zero four two" onto "it's i would like to one zero four two eight".
_LOOSE_WHOLE = 0.6
# An intent heard in less than this is a "yes", "bye", "a person": too short to hide an order number.
_NUMBER_CHECK_MIN_MS = 1500
# The grammar searches' settings (read by pocketsphinx when a search is added; the language model keeps
# the defaults, which it needs). Narrower beams than the defaults (1e-48) halved decoding time on the
# flow's grammars with the same results for everything they hold (flite voices, 16 lines in and out of
# them): what they prune is forced, off-grammar explanations the confidence rejects anyway.
#
# And no lattice: the words and their scores come from the forward pass's own best path. Building the
# lattice and its best path in `hyp()` took 150-900 ms after every utterance on an idle core (a one-word
# "yes" 900 ms: every frame of the grammar's filler loops leaves word exits) and seconds with five calls
# on two cores, while the forward pass itself keeps up with the caller. On the flow's English grammars the
# words were the same and the confidences within a few hundredths (bench/asr_accuracy.py: same accuracy,
# same calibration margins). Another language's grammar keeps the defaults, lattice included: with its
# loose fit the forward pass alone heard Swahili "ndiyo" as "ndiyo eight one oh oh oh".
_GRAMMAR_SEARCH: dict[str, float | bool] = {"beam": 1e-35, "wbeam": 1e-25, "bestpath": False}
# pocketsphinx keeps the forward pass's scores shifted right by 10 bits (SENSCR_SHIFT) from the log scale
# the lattice uses, and reports a segment's score from them unshifted: multiplied back, a word's log
# acoustic score is the lattice's (the same to the unit where both put the word's edges in one place).
_FORWARD_SCORE_SCALE = 1024.0

_RATE = 16000
_BYTES_PER_MS = _RATE * 2 // 1000
_FRAME_MS = 10  # pocketsphinx's frame rate: 100 frames a second
# pocketsphinx holds the GIL while it decodes: hand it audio in pieces this small, so the event loop runs
# between them (a 200 ms piece held it ~50-100 ms under load).
_PIECE_BYTES = 50 * _BYTES_PER_MS
# The VAD confirms speech ~100-200 ms after it began; start the decoder this far back so no onset is lost.
_PREROLL_MS = 300
# Streaming decoding normalises cepstra with a running mean that starts from the model's default,
# far from real speech: the first utterance of a call was misrecognised until the estimate settled.
# Start from the mean the live estimate converges to on speech (measured on flite voices).
_SPEECH_CMN = "47.0,5.3,5.2,9.7,-1.2,1.3,-0.9,-0.2,-1.0,1.6,0.5,2.7,2.2"
# ... but noise moves the mean a long way (white noise at 30 dB fills the bands flite's speech leaves
# empty), and pocketsphinx weighs the starting mean as 500 frames (CMN_WIN) and re-reads it only past
# 800: through a whole turn the hiss was normalised as if it were speech energy and decoded as fricatives
# ("five eight ..." before the number; 40% of numbers right at 30 dB streaming, 98% with the utterance's
# own mean). So each utterance's own mean is measured from its first `_CMN_MEASURE_MS` (pre-roll
# included) and the decoder starts again from it (`GrammarDecoder._settle_cmn`). Shorter windows follow
# the words more than the line: measured over 800 ms a clean "okay thank you goodbye" was explained
# as a whole at 0.47 instead of 0.71 (the policy ends a call on one turn from 0.6); 1200 ms gave 0.57-0.63
# and the same numbers in noise.
_CMN_MEASURE_MS = 1200
# ... but only on a line with a noise floor: measured over 1.2 s the mean follows the words as well as
# the line, and on clean audio the starting mean (converged over whole utterances) is the better one
# (slt's clean "P K two zero nine three one" was heard "p k zero zero ..." from its own). The loudest
# 50 ms of the measure against the quietest: white noise at SNR x dB gives x + 5-8 dB; digital silence
# or a quiet line far more.
_QUIET_LINE_DB = 45.0
# A narrowband phone line (8 kHz, G.711 or AMR-NB, however the platform resamples it) carries nothing above
# 4 kHz, and its cepstral mean lies far from the wideband speech mean above: every number from such a line
# was misheard with `_SPEECH_CMN` (bench/asr_accuracy.py --conditions phone_8k: 0 of 40, intents 45%). A
# line whose energy above 4 kHz sits this far below the whole is one (measured on flite voices: phone-band
# -74 to -90 dB, wideband -12 to -40 dB, clean or at 30 dB), checked once `_BAND_CHECK_MS` are kept; the
# utterance then starts again from the mean measured on phone-band speech, and measures its own
# (`_settle_cmn`) whatever the line's floor, since digital silence above 4 kHz is no sign of a quiet line.
_NARROWBAND_DB = -55.0
_BAND_CHECK_MS = 500
_BAND_FRAME = 512  # samples per windowed frame of the check
# ... and its margins against the phone loop sit lower: measured with `bench/asr_accuracy.py --calibrate`
# (40 numbers, 40 intents, 24 off-topic lines, four voices), correct results' 1st / 5th percentiles were
# -3.04 / -2.43 wideband and -3.58 / -3.31 over the phone line, and off-topic lines' moved by as much
# (median -3.30 -> -3.84). Shifted back, one cut serves both lines.
_NARROWBAND_MARGIN = 0.5
_PHONE_CMN = "42.8,27.2,-23.8,45.5,-17.5,2.7,14.7,-22.7,14.8,-11.7,4.5,10.7,-9.9"
_CMN_PRIOR_FRAMES = 500  # pocketsphinx's CMN_WIN: the weight set_cmn() gives the starting mean
_FE_WINDOW = 410  # samples in pocketsphinx's analysis window (25.625 ms at 16 kHz), one frame per 160
_FE_SHIFT = 160
# Hand audio to the decoder in chunks this big: fewer thread hops, and still streaming.
_CHUNK_MS = 200
# Audio kept after the speech's end (the VAD's estimate, its own hangover already taken off). The VAD
# decides the caller stopped only after 400 ms of silence; the decoder needs only the start of it: every
# frame of trailing silence adds word exits to the grammar's history, and building the lattice from that
# history (in `hyp()`, seconds with five calls on two cores) grows faster than the audio. So the last
# `_HOLD_MS` heard are held back while the caller speaks, and at the end only `_TAIL_MS` of them is fed.
_TAIL_MS = 200
_HOLD_MS = 250
# The VAD's end of turn: this much silence after the speech (its own hangover taken off) ends it. The
# decoder has all it will be fed `_TAIL_MS` into that silence, so the utterance is finished then, while the
# VAD still listens ("early finish"); if the caller goes on, the decoder starts the utterance again from the
# audio kept, and the early result is dropped. Either way it decodes exactly the audio it would otherwise.
_END_OF_TURN_MS = 400
_MIN_SPEECH_MS = 120


@dataclass(frozen=True, slots=True, kw_only=True)
class Recognition:
    """One recognised caller utterance, with how far to trust it.

    `confidence` is in [0, 1]: how well the words that carry the meaning (the order number, else the intent
    phrase) explain the audio, compared with the best unconstrained explanation (a phone loop) of the same
    frames. It is not a probability of being right, but it rises with it and is calibrated so that
    `MIN_CONFIDENCE` (0.5) keeps ~99% of correct results on natural voices, clean and at 30 dB: below it,
    treat the utterance as not understood (`understood` is False). Empty text always has confidence 0.
    Open-vocabulary backends report their own calibrated figure on the same scale (see their modules).
    """

    text: str  # lowercase words from the grammar; "" when nothing was recognised
    search: str
    speech_ms: int  # audio decoded for this utterance
    decode_ms: float  # from end of speech (the VAD's decision) to this result, wall clock
    confidence: float = 0.0
    # True: `text` is open-vocabulary words (any English, the caller's own wording), not a grammar
    # sentence: intents are read from its words, and nothing decisive is done on keywords alone.
    open_vocabulary: bool = False
    # The same scale over every word heard, carrier phrases included (None: as `confidence`). A short
    # "bye" can fit well inside speech the grammar otherwise forced onto fillers; ending a call on one
    # turn needs the whole utterance explained (at least MIN_WHOLE_CONFIDENCE), not just its key word.
    whole_confidence: float | None = None
    # Where the turn's time went before `decode_ms` began and inside it (TurnTiming reports them):
    # audio the VAD heard after the speech ended before it decided the caller had stopped, the decoder's
    # first pass and its second look (None: not taken); the rest of `decode_ms` is queueing and transport.
    endpoint_ms: int = 0
    first_pass_ms: float = 0.0
    second_look_ms: float | None = None
    # True: `text` is the second look's open decode of audio the grammar could not explain, a language
    # model's best guess that runs sounds into likely phrases ("hello it is speak to a human can i" for
    # "Hello? It's P K two zero nine three one"). Read it for intents, but never end or hand over a call
    # on it alone: ask first.
    rescued: bool = False
    # When `text` is an order number (the second look's, or the grammar's loose one it kept) where the open
    # decode heard no digit: those words ("sorry about that is my parcel on the way" for "...is my parcel
    # oh one two one eight"), what the caller may have asked instead. A caller with orders on record who
    # asked about them is answered from those (the policy); anyone else hears the number read back.
    heard_as_words: str | None = None

    @property
    def understood(self) -> bool:
        """Words were recognised and they are trusted enough to act on."""
        return bool(self.text) and self.confidence >= MIN_CONFIDENCE


@dataclass(frozen=True, slots=True, kw_only=True)
class Decoded:
    """One finished utterance from a decoder (the synchronous layer's result)."""

    text: str
    speech_ms: int
    confidence: float
    margin: float | None = None  # the raw score behind the confidence, for calibration (None: no words)
    open_vocabulary: bool = False  # `text` is any English words, not a sentence of the grammar
    whole_confidence: float | None = None  # over every word, carrier phrases included
    # Where the finish went, in the decoder's own wall-clock milliseconds: the first pass (end of the
    # utterance, the lattice's best path, the scores), and the second look (None: not taken).
    first_pass_ms: float = 0.0
    second_look_ms: float | None = None
    rescued: bool = False  # the second look's open words (see `Recognition.rescued`)
    heard_as_words: str | None = None  # see `Recognition.heard_as_words`


def confidence_from_margin(margin: float | None) -> float:
    """The confidence scale: a logistic of the per-frame acoustic margin, 0.5 at the calibrated cut."""
    if margin is None:
        return 0.0
    # Clamped: a forced path over long silence can sit thousands of log units below the cut.
    exponent = min(-(margin - _MARGIN_AT_THRESHOLD) / _MARGIN_SCALE, 700.0)
    return round(1.0 / (1.0 + math.exp(exponent)), 4)


class GrammarDecoder:
    """A pocketsphinx decoder with one search per grammar; synchronous, thread-confined.

    `spec=None` gives the open-vocabulary decoder instead: one search, `SEARCH_OPEN`, over the general
    English language model the wheel ships (any words, weaker on digits). A mapping of specs gives one
    search per name (order numbers in those whose spec has shapes): a dialogue's per-turn grammars.
    """

    def __init__(
        self,
        spec: GrammarSpec | Mapping[str, GrammarSpec] | None,
        *,
        sample_rate: int = _RATE,
        second_look: bool = True,
        open_when_idle: bool = False,
    ) -> None:
        # Imported here: pocketsphinx is heavy and only the offline brain and the benchmark need it.
        from pocketsphinx import Decoder  # type: ignore[import-untyped]  # no type hints shipped

        if sample_rate != _RATE:
            raise ConfigError(f"the offline recogniser decodes 16 kHz audio, not {sample_rate} Hz")
        # Built around the phone loop, so the general language model (60 MB more per decoder) is never
        # loaded; a grammar decoder then weighs ~30 MB.
        decoder = Decoder(samprate=sample_rate, loglevel="FATAL", allphone=_model_file("en-us-phone.lm.bin"))
        present: list[str] = []
        # The second look's open decoder listens alongside the grammar, fed the same audio as it comes, so
        # that a second look costs only its last pass instead of decoding the whole utterance again
        # (300-500 ms for a three-second line on an idle core).
        self._open: Any = None
        self._open_live = False  # an utterance is under way in `_open`
        self._open_heard = 0  # bytes of this utterance's audio fed to `_open`
        self._open_unwanted = False  # this utterance finished without a second look: stop feeding `_open`
        # True: `feed` leaves the open decoder behind and the owner calls `catch_up` when it has nothing
        # else to do (a decoder process between messages), so a busy machine keeps the grammar current.
        self._open_when_idle = open_when_idle
        if spec is None:  # open vocabulary: the general English language model
            decoder.add_lm_file(SEARCH_OPEN, _model_file("en-us.lm.bin"))
            present.append(SEARCH_OPEN)
        elif second_look:  # the same model, for a second look at what the grammar could not explain
            self._open = Decoder(samprate=sample_rate, loglevel="FATAL", allphone=_model_file("en-us-phone.lm.bin"))
            # Without the flat-lexicon pass its end takes 5-30 ms instead of 100-450 (busy box); on 30
            # lines of ours across three voices the words were as good (a few better, a few worse).
            self._open.config["fwdflat"] = False
            self._open.add_lm_file(_SECOND_OPEN, _model_file("en-us.lm.bin"))
            self._open.activate_search(_SECOND_OPEN)
        specs = {} if spec is None else _grammars(spec)
        words = frozenset[str]().union(*(grammar_words(each) for each, _ in specs.values()))
        _add_pronunciations(decoder, [each for each, _ in specs.values()])
        missing = sorted(w for w in words if decoder.lookup_word(w) is None)
        if missing:
            raise ConfigError(f"words not in the recogniser's dictionary: {', '.join(missing)}")
        defaults = {key: decoder.config[key] for key in _GRAMMAR_SEARCH}
        lattice = {SEARCH_OPEN, _SECOND_OPEN}  # searches whose scores are on the lattice's scale
        number_checks: set[str] = set()
        for name, (each, numbers) in specs.items():
            # Read when the search is added: narrow for English grammars; another language's words are
            # spelt in English phones, a loose fit the narrow beams would prune (a Swahili line misheard).
            for key, value in (_GRAMMAR_SEARCH if _is_english(each) else defaults).items():
                decoder.config[key] = value
            decoder.add_jsgf_string(name, build_jsgf(each, numbers=numbers))
            present.append(name)
            if not _is_english(each):
                lattice.add(name)
            elif numbers and each.shapes and each.intents:  # the number reading of an intent (`_number_instead`)
                decoder.add_jsgf_string(_number_search(name), build_jsgf(replace(each, intents={})))
                number_checks.add(_number_search(name))
        for key, value in _GRAMMAR_SEARCH.items():  # the second look's number pass, added per utterance
            decoder.config[key] = value
        decoder.set_cmn(_SPEECH_CMN)
        self._decoder = decoder
        self._specs = {name: each for name, (each, _) in specs.items()}  # by search; none when open
        self._searches: frozenset[str] = frozenset(present)
        self._lattice_searches = frozenset(lattice)
        self._number_checks = frozenset(number_checks)
        self._second_look = second_look and spec is not None
        self._audio = bytearray()  # this utterance's audio, for the second look
        self._cmn = _SPEECH_CMN  # this utterance's cepstral mean, once measured (`_settle_cmn`)
        self._cmn_settled = False
        self._band_checked = False  # whether this utterance's line has been checked for narrowband
        self._narrowband = False
        self._search = SEARCH_NUMBERS if SEARCH_NUMBERS in present else present[0]

    @property
    def searches(self) -> frozenset[str]:
        return self._searches

    def begin(self, search: str) -> None:
        """Start an utterance with the named grammar (falls back to the one there is)."""
        fallback = SEARCH_NUMBERS if SEARCH_NUMBERS in self._searches else min(self._searches)
        self._search = search if search in self._searches else fallback
        self._decoder.activate_search(self._search)
        # Decoders are shared between calls: each utterance starts from the speech-like mean, not
        # from whatever line the previous caller was on (and then measures its own, `_settle_cmn`).
        self._decoder.set_cmn(_SPEECH_CMN)
        self._decoder.start_utt()
        self._audio.clear()
        self._cmn = _SPEECH_CMN
        self._band_checked = False
        self._narrowband = False
        # Only English grammars measure their own. The open-vocabulary decoder (spec None: the chat
        # brain's, a transcriber's) keeps the starting mean: measured per utterance, its language model
        # ran a clean "my order number is d x one oh four two" into "my order numbers t ex model for two".
        # So does another language's grammar (Swahili words in English phones, a loose fit): espeak-ng's
        # Swahili caller was no longer heard (tests/brains/test_cascade_swahili.py).
        spec = self._specs.get(self._search)
        self._cmn_settled = spec is None or not _is_english(spec)
        if self._open is not None:
            if self._open_live:  # the last utterance needed no second look: its open decode is dropped
                self._open.end_utt()
            # The open decoder starts once the utterance's mean is known (`_settle_cmn`), or when a
            # second look needs it (`_open_words`).
            self._open_live = False
            self._open_heard = 0
            self._open_unwanted = False

    def feed(self, pcm: bytes) -> None:
        if not self._cmn_settled:  # measuring the mean: the grammar alone, up to `_CMN_MEASURE_MS`
            head = pcm[: _CMN_MEASURE_MS * _BYTES_PER_MS - len(self._audio)]
            pcm = pcm[len(head) :]
            self._keep(head)
            self._process(head)
            self._check_band()
            if len(self._audio) < _CMN_MEASURE_MS * _BYTES_PER_MS:
                return
            self._settle_cmn()
        if pcm:
            self._keep(pcm)
            self._process(pcm)
            self._check_band()
        if not self._open_when_idle:
            self.catch_up()

    def _check_band(self, *, at_end: bool = False) -> None:
        """Once enough is kept (or at the end of a shorter utterance): a narrowband line starts the
        utterance again from the phone-band mean (`_PHONE_CMN`)."""
        if self._band_checked or (not at_end and len(self._audio) < _BAND_CHECK_MS * _BYTES_PER_MS):
            return
        narrowband = _is_narrowband(bytes(self._audio))
        if narrowband is None:  # nothing but silence yet: look again with more
            self._band_checked = at_end
            return
        self._band_checked = True
        if not narrowband:
            return
        self._narrowband = True
        self._cmn = _PHONE_CMN
        self._decoder.end_utt()
        self._decoder.set_cmn(_PHONE_CMN)
        self._decoder.start_utt()
        self._process(bytes(self._audio))

    def _settle_cmn(self) -> None:
        """Start the utterance again from the cepstral mean of its own audio so far.

        The decoder has normalised what it heard with the speech-like starting mean; the running sum
        it keeps gives the mean of those frames back (`get_cmn(True)` is their sum and the starting
        mean's 500 frames' worth, divided by both counts). The grammar search starts again from that
        mean over the audio kept, and the open decoder, the second look's, starts with it (and catches
        up on the audio kept, `catch_up`). On a quiet line the starting mean stands, and the open
        decoder starts with that. An utterance shorter than the measure keeps the starting mean; its
        open decoder starts only if a second look needs it (`_open_words`).
        """
        self._cmn_settled = True
        audio = bytes(self._audio)
        # A noise floor, or a narrowband line (its digital silence above 4 kHz is no sign of a quiet
        # line, and its mean varies more between callers): the utterance's own mean.
        if self._narrowband or _dynamic_range_db(audio) <= _QUIET_LINE_DB:
            frames = _energy_frames(audio)
            if frames > 0:
                decoder = self._decoder
                blended = [float(x) for x in decoder.get_cmn(True).split(",")]
                prior = [float(x) for x in self._cmn.split(",")]
                total = _CMN_PRIOR_FRAMES + frames
                self._cmn = ",".join(
                    f"{(total * b - _CMN_PRIOR_FRAMES * p) / frames:.2f}"
                    for b, p in zip(blended, prior, strict=True)
                )
                decoder.end_utt()
                decoder.set_cmn(self._cmn)
                decoder.start_utt()
                self._process(audio)
        self._start_open()

    def _start_open(self) -> None:
        """The open decoder starts this utterance from its mean; `catch_up` feeds it the audio kept."""
        if self._open is None or self._open_live:
            return
        self._open.set_cmn(self._cmn)
        self._open.start_utt()
        self._open_live = True
        self._open_heard = 0

    def catch_up(self, limit: int | None = None) -> bool:
        """Feed the open decoder audio it has not heard yet (at most `limit` bytes); True while some is left.

        Its words are wanted only when the grammar's are not explained, so it may fall behind while the
        machine is busy: a finish that needs it catches up then, one that does not never waits for it.
        """
        if self._open is None or not self._open_live or self._open_unwanted:
            return False
        end = len(self._audio) if limit is None else min(len(self._audio), self._open_heard + limit)
        for at in range(self._open_heard, end, _PIECE_BYTES):
            self._open.process_raw(bytes(self._audio[at : min(at + _PIECE_BYTES, end)]), False, False)
        self._open_heard = max(self._open_heard, end)
        return self._open_heard < len(self._audio)

    def finish(self) -> Decoded:
        """End the utterance: the recognised words ("" for none), their confidence, the audio's length."""
        return self._finish()

    def recognize(self, pcm: bytes, search: str) -> Decoded:
        """A whole utterance at once (benchmarks and tests), decoded as the brain streams it: the
        running cepstral mean, measured from the utterance's start (`_settle_cmn`)."""
        self.begin(search)
        self.feed(pcm)
        return self._finish()

    def decode(self, pcm: bytes, search: str) -> str:
        """The words of a whole utterance (see `recognize`)."""
        return self.recognize(pcm, search).text

    def _keep(self, pcm: bytes) -> None:
        self._audio += pcm

    def _process(self, pcm: bytes) -> None:
        for at in range(0, len(pcm), _PIECE_BYTES):
            self._decoder.process_raw(pcm[at : at + _PIECE_BYTES], False, False)

    def _finish(self) -> Decoded:
        started = time.perf_counter()
        # Shorter than the measure ("yes", "no"): decoded from the starting mean, as it was. Measured over
        # so little, the mean is mostly the pre-roll's noise (a "no" at 30 dB fell from 0.64 to 0.07), and
        # decoding it again would be the end of the turn's time (~100 ms on a busy core), not the caller's.
        self._cmn_settled = True
        # A short utterance on a narrowband line is decoded again from the phone-band mean: a "yes" heard
        # through the wideband one is no word at all (~30 ms for a second of audio).
        self._check_band(at_end=True)
        decoder = self._decoder
        decoder.end_utt()
        spec = self._specs.get(self._search)
        first = self._result(self._search, spec)
        first = replace(first, first_pass_ms=round((time.perf_counter() - started) * 1000, 1))
        # Explained: the key words *and* the utterance as a whole (carrier phrases soaking up words the
        # grammar lacks, around a key word that happens to fit, are not an explanation).
        explained = first.confidence >= MIN_CONFIDENCE and (first.whole_confidence or 0.0) >= MIN_WHOLE_CONFIDENCE
        loose = explained and spec is not None and (first.whole_confidence or 0.0) < _LOOSE_WHOLE
        if (
            (explained and not loose)
            or not self._second_look
            or first.speech_ms < _SECOND_LOOK_MIN_MS
            or (spec is not None and not _is_english(spec))  # Swahili digits: the language model is English
        ):
            self._open_unwanted = True
            return self._number_instead(first, spec) if explained else first
        looked = time.perf_counter()
        second = self._look_again(first, explained=explained)
        return replace(
            second,
            first_pass_ms=first.first_pass_ms,
            second_look_ms=round((time.perf_counter() - looked) * 1000, 1),
        )

    def _number_instead(self, heard: Decoded, spec: GrammarSpec | None) -> Decoded:
        """An intent heard where an order number was asked for, and a number read from the same audio that
        fits at least as well: the number (read back, so a caller who meant the intent says no).

        The grammar's best path can take an intent phrase by a hair over a number: slt's "Hello? It's P K two
        zero nine three one" came back "hello it is speak to a human can i" (key words 0.90, whole 0.65) and
        transferred the caller. A read-back costs a turn; a wrong transfer or goodbye costs the call.
        """
        search = _number_search(self._search)
        if (
            spec is None
            or search not in self._number_checks  # no numbers here, or no intents to confuse them with
            or heard.speech_ms < _NUMBER_CHECK_MIN_MS
            or parse_order_number(heard.text, spec.shapes) is not None
        ):
            return heard
        checked = time.perf_counter()
        number = self._decode_again(search, replace(spec, intents={}))
        if (
            parse_order_number(number.text, spec.shapes) is None
            or number.confidence < max(MIN_CONFIDENCE, heard.confidence)
            or (number.whole_confidence or 0.0) < (heard.whole_confidence or 0.0)
        ):
            return heard
        return replace(
            number, first_pass_ms=round(heard.first_pass_ms + (time.perf_counter() - checked) * 1000, 1)
        )

    def _result(
        self, search: str, spec: GrammarSpec | None, *, open_vocabulary: bool = False, decoder: Any = None
    ) -> Decoded:
        """The decoder's words for the utterance just ended, scored over the words that carry the meaning."""
        decoder = self._decoder if decoder is None else decoder
        hyp = decoder.hyp()
        text = hyp.hypstr if hyp is not None else ""
        speech_ms = len(self._audio) // _BYTES_PER_MS
        if not text:
            return Decoded(text="", speech_ms=speech_ms, confidence=0.0, open_vocabulary=open_vocabulary)
        segments = list(decoder.seg() or ())
        scale = 1.0 if search in self._lattice_searches else _FORWARD_SCORE_SCALE
        words = self._content_frames(segments, spec, scale=scale)
        # A narrowband line scores every path lower against the phone loop: the same scale as a wideband one
        # once shifted back (`_NARROWBAND_MARGIN`).
        shift = _NARROWBAND_MARGIN if self._narrowband else 0.0
        margin = sum(words.values()) / len(words) + shift if words else None
        every = _frame_scores(segments, words_only=True, scale=scale)
        swallowed = any(
            seg.word in _NON_WORDS and (seg.end_frame - seg.start_frame + 1) * _FRAME_MS > _SWALLOWED_MS
            for seg in segments
        )
        return Decoded(
            text=" ".join(spoken_base_word(w) for w in text.split()),
            speech_ms=speech_ms,
            confidence=confidence_from_margin(margin),
            margin=margin,
            open_vocabulary=open_vocabulary,
            whole_confidence=0.0
            if swallowed
            else confidence_from_margin(sum(every.values()) / len(every) + shift if every else None),
        )

    def _look_again(self, first: Decoded, *, explained: bool = False) -> Decoded:
        """Audio the grammar could not explain (or explained only loosely, `explained`): any English words,
        then an order number among them."""
        heard = replace(self._open_words(), rescued=True)
        if first.text and sound_alike(first.text.split(), heard.text.split(), self._decoder.lookup_word):
            if explained:
                return first  # the open decode agrees: the grammar's result as it was
            if heard.confidence >= MIN_CONFIDENCE:
                # Both recognisers heard the same sounds (awb's "yes" the grammar scored 0.22, the open
                # decoder "us" 0.59): the grammar's words, as sure as the open decode, and as it never
                # decisive alone.
                return replace(
                    first, confidence=heard.confidence, whole_confidence=heard.whole_confidence, rescued=True
                )
        spec = self._specs.get(self._search)
        # A number the grammar explained (loosely) stands unless the second look finds one more surely.
        first_number = explained and spec is not None and parse_order_number(first.text, spec.shapes) is not None
        phrase = None if first_number else self._phrase_alike(heard, spec)
        if phrase is not None:  # awb's "yes" at 30 dB: "no it's" to the grammar, "us" to the open decode
            return replace(heard, text=phrase, open_vocabulary=False)
        # Open words understood, else the grammar's own result if that was (its key words were clear).
        fallback = (
            heard
            if not first_number and (heard.confidence >= MIN_CONFIDENCE or first.confidence < MIN_CONFIDENCE)
            else first
        )
        if spec is None or not spec.shapes or not heard.text:
            return fallback if heard.text else first
        words = [w for w in heard.text.split() if self._decoder.lookup_word(w) is not None]
        lead = lead_in_runs(words, spec.shapes)
        if first_number and not lead.placed:
            # The grammar's number where the open decode heard no digit ("hello five oh one two five the
            # number is" for kal16's "Hello, I'm calling to find out where my stuff is" at 30 dB): it
            # stands unless a surer one is found, and carries the open words for a known caller's question.
            fallback = replace(first, heard_as_words=heard.text)
        number = self._number_among(lead, spec)
        trusted = MIN_CONFIDENCE if lead.placed else _UNPLACED_NUMBER_CONFIDENCE
        if number.confidence < trusted or parse_order_number(number.text, spec.shapes) is None:
            return fallback
        if not lead.placed and number_took_intent(words, number.text.split(), spec):
            # No digit heard, and the number took the place of an intent's own words: "where's my delivery"
            # (open decode, 0.70) fitted to "where's nine oh one three eight" (0.76). What was asked stands.
            return fallback
        if first_number and number.confidence < first.confidence:
            return fallback
        return number if lead.placed else replace(number, heard_as_words=heard.text)

    def _phrase_alike(self, heard: Decoded, spec: GrammarSpec | None) -> str | None:
        """The one intent phrase of the grammar that the open decode's words, all of them, sound like."""
        if spec is None or heard.confidence < MIN_CONFIDENCE or not heard.text:
            return None
        words = heard.text.split()
        alike = {
            phrase
            for phrases in spec.intents.values()
            for phrase in phrases
            if sound_alike(phrase.split(), words, self._decoder.lookup_word)
        }
        return alike.pop() if len(alike) == 1 else None

    def _number_among(self, lead: LeadIn, spec: GrammarSpec) -> Decoded:
        """An order number among the caller's own words (`build_lead_in_jsgf`); where the open decode heard
        no digit, from as many of the words before it as still let the decode reach the number.

        Words the open decode heard for the number itself, offered before it in order, leave no path to
        the grammar's end (an empty decode). Fewer words then, the most that still decode: one of a word
        count's halvings, a few decodes of ~50 ms each. Measured on slt's "okay the order is D X one zero
        four two" (open: "okay the yard areas the excellent air authority of"): 4 to 7 words decode to
        DX1042, 8 or more to nothing, 3 or fewer to another number.
        """
        numbers_only = replace(spec, intents={})

        def decode(offered: LeadIn) -> Decoded:
            self._decoder.add_jsgf_string(_SECOND_LEAD_IN, build_lead_in_jsgf(offered, spec.shapes))
            return self._decode_again(_SECOND_LEAD_IN, numbers_only)

        started = time.perf_counter()
        whole = decode(lead)
        if whole.text or lead.placed or not lead.before:
            return whole
        low, high = 0, len(lead.before) - 1  # the most words in [low, high] that still decode
        decoded: dict[int, Decoded] = {}
        while low < high and time.perf_counter() - started < _NUMBER_AMONG_BUDGET_S:
            middle = (low + high + 1) // 2
            decoded[middle] = decode(LeadIn(lead.before[:middle], [], placed=False))
            if decoded[middle].text:
                low = middle
            else:
                high = middle - 1
        if low == high:
            return decoded[low] if low in decoded else decode(LeadIn(lead.before[:low], [], placed=False))
        return decoded.get(low, whole)  # out of time: the most words that decoded, else nothing

    def _open_words(self) -> Decoded:
        """The open decoder's words for this utterance (it heard the audio as it came)."""
        self._start_open()  # an utterance shorter than the measure: from its start now
        self.catch_up()
        self._open.end_utt()
        self._open_live = False
        return self._result(_SECOND_OPEN, None, open_vocabulary=True, decoder=self._open)

    def _decode_again(self, search: str, spec: GrammarSpec | None) -> Decoded:
        decoder = self._decoder
        decoder.activate_search(search)
        decoder.set_cmn(self._cmn)
        decoder.start_utt()
        self._process(bytes(self._audio))
        decoder.end_utt()
        return self._result(search, spec)


    def _content_frames(
        self, segments: list[Any], spec: GrammarSpec | None, *, scale: float
    ) -> dict[int, float]:
        """Per-frame scores of the words that carry the meaning (the number or intent), else all words."""
        spoken = [seg for seg in segments if seg.word not in _NON_WORDS]
        if spec is None:
            return _frame_scores(spoken, words_only=True, scale=scale)
        span = content_span([spoken_base_word(seg.word) for seg in spoken], spec)
        chosen = spoken if span is None else spoken[span[0] : span[1]]
        return _frame_scores(chosen, words_only=True, scale=scale)


def _number_search(name: str) -> str:
    """The search that reads the same audio as an order number only (see `_number_instead`)."""
    return f"{name}#number"


def _grammars(
    spec: GrammarSpec | Mapping[str, GrammarSpec],
) -> dict[str, tuple[GrammarSpec, bool]]:
    """Search name -> (spec, whether it takes order numbers)."""
    if isinstance(spec, GrammarSpec):
        grammars: dict[str, tuple[GrammarSpec, bool]] = {}
        if spec.shapes:
            grammars[SEARCH_NUMBERS] = (spec, True)
        if spec.intents:
            grammars[SEARCH_INTENTS] = (spec, False)
    else:
        grammars = {name: (each, bool(each.shapes)) for name, each in spec.items()}
    if not grammars:
        raise ConfigError("the recogniser needs order-number shapes or intent phrases")
    return grammars


def _add_pronunciations(decoder: Any, specs: list[GrammarSpec]) -> None:
    """Words the grammars pronounce their own way (Swahili by spelling): new words, or a variant `word(2)`.

    The run-in digit words ("two_run_in") are always added: a dictionary word only the grammars that list
    it can hear (English ones, after a shape's letters), so it costs the others nothing.
    """
    own = {w: p for spec in specs for w, p in spec.pronunciations.items()}
    for word, phones in {**RUN_IN_PHONES, **own}.items():
        variant, index = word, 1
        while (known := decoder.lookup_word(variant)) is not None:
            if known == phones:
                break
            index += 1
            variant = f"{word}({index})"
        else:
            decoder.add_word(variant, phones, True)


def _is_english(spec: GrammarSpec) -> bool:
    """Digits said as English words: the grammar of an English line (a Swahili one adds "moja", "mbili")."""
    return dict(spec.digits) == dict(DIGIT_WORDS)


def _model_file(name: str) -> str:
    from pocketsphinx import get_model_path

    return os.path.join(get_model_path(), "en-us", name)


def _dynamic_range_db(pcm: bytes) -> float:
    """Loudest against quietest 50 ms of `pcm` (every 10 ms), in dB: how far the line's floor lies below
    the speech (infinite over digital silence).

    Digital silence before the line's first sample and after its last is no floor: the platform's (or a
    simulator's) zero frames before the caller's first word, kept by the pre-roll, said "quiet line" over
    a hiss at 30 dB, and whole calls there were 33% right. Within the line it is one (a clean recording).
    """
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float64)
    sounding = np.flatnonzero(samples)
    if sounding.size:
        samples = samples[sounding[0] : sounding[-1] + 1]
    window = 50 * _RATE // 1000
    if samples.size < window:
        return math.inf
    power = np.concatenate(([0.0], np.cumsum(samples**2)))
    starts = np.arange(0, samples.size - window + 1, _RATE // 100)
    energy = (power[starts + window] - power[starts]) / window
    quietest = float(energy.min())
    return math.inf if quietest <= 1e-6 else 10 * math.log10(max(float(energy.max()), 1e-6) / quietest)


def _is_narrowband(pcm: bytes) -> bool | None:
    """Whether `pcm` (16 kHz) came over a narrowband line: nothing above 4 kHz (None: too little sound
    to say)."""
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float64)
    if samples.size < _BAND_FRAME or float(np.dot(samples, samples)) / samples.size < 100.0:  # ~-50 dBFS
        return None
    # Windowed frames, not one transform of the whole: the edge where the audio kept so far cuts a word
    # would leak across the band (-50 dB) and hide a phone line.
    frames = samples[: samples.size - samples.size % _BAND_FRAME].reshape(-1, _BAND_FRAME)
    power = (np.abs(np.fft.rfft(frames * np.hanning(_BAND_FRAME), axis=1)) ** 2).sum(axis=0)
    high = float(power[power.size // 2 :].sum())  # above 4 kHz: the upper half of 0-8 kHz
    return high <= float(power.sum()) * 10 ** (_NARROWBAND_DB / 10)


def _energy_frames(pcm: bytes) -> int:
    """Frames pocketsphinx's running mean counts in `pcm`: all but those of pure digital silence."""
    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2")
    if samples.size < _FE_WINDOW:
        return 0
    nonzero = np.concatenate(([0], np.cumsum(samples != 0)))
    starts = np.arange(0, samples.size - _FE_WINDOW + 1, _FE_SHIFT)
    return int(np.count_nonzero(nonzero[starts + _FE_WINDOW] - nonzero[starts]))


def _frame_scores(segments: Any, *, words_only: bool, scale: float = 1.0) -> dict[int, float]:
    """Each frame's share of its segment's log acoustic score (segments spread evenly over their frames).

    `scale` brings the forward pass's scores to the lattice's log scale (`_FORWARD_SCORE_SCALE`).
    """
    scores: dict[int, float] = {}
    for seg in segments or ():  # pocketsphinx's segments: word, start_frame, end_frame, ascore
        if words_only and seg.word in _NON_WORDS:
            continue
        frames = max(1, seg.end_frame - seg.start_frame + 1)
        per_frame = math.log(max(seg.ascore, 1e-300)) * scale / frames
        for frame in range(seg.start_frame, seg.start_frame + frames):
            scores[frame] = per_frame
    return scores




@dataclass(frozen=True, slots=True, kw_only=True)
class _Begin:
    search: str
    audio: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class _Audio:
    pcm: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class _FinishEarly:
    """All the audio is in: finish now, keep the result for the `_End` that should follow."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Resume:
    """The caller went on after an early finish: the same utterance again, from its start."""

    search: str
    audio: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class _End:
    at: float  # perf_counter when the VAD decided the caller stopped
    endpoint_ms: int  # audio heard after the speech ended, until that decision


_Op = _Begin | _Audio | _FinishEarly | _Resume | _End


class UtteranceDecoder(Protocol):
    """Decodes one utterance at a time; synchronous, used by one thread at a time."""

    def begin(self, search: str) -> None: ...

    def feed(self, pcm: bytes) -> None: ...

    def finish(self) -> Decoded: ...


class DecoderSource(Protocol):
    """Where a call's recogniser borrows a decoder for each utterance (a `DecoderPool`, a backend)."""

    async def acquire(self) -> UtteranceDecoder: ...

    def release(self, decoder: UtteranceDecoder) -> None: ...

    def discard(self, decoder: UtteranceDecoder) -> None: ...

    async def warm(self) -> None: ...


class StreamingRecognizer:
    """Caller PCM (16 kHz) in, `Recognition`s out through `on_result`, decoding while the caller talks.

        recognizer = StreamingRecognizer(DecoderPool(lambda: GrammarDecoder(spec)), on_result=print)
        await recognizer.start()
        recognizer.feed(pcm)          # any chunk size, never blocks
        await recognizer.close()

    A decoder is borrowed from `source` when the caller starts speaking and given back with the result,
    so a call holds no decoder while it listens to silence or the agent speaks. A decoder that fails is
    reported through `on_error` (the brain's failure route), never silently.
    """

    def __init__(
        self,
        source: DecoderSource,
        *,
        on_result: Callable[[Recognition], None],
        on_speech_started: Callable[[], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self._source = source
        self._on_result = on_result
        self._on_speech_started = on_speech_started
        self._on_error = on_error
        self._voicing = make_voicing("webrtc", rate=_RATE)
        self._endpointer = Endpointer.for_voicing(
            self._voicing, min_speech_ms=_MIN_SPEECH_MS, min_silence_ms=_END_OF_TURN_MS
        )
        self._ops: asyncio.Queue[_Op] = asyncio.Queue()
        self._recent = bytearray()  # the last _PREROLL_MS of audio while not in speech
        self._pending = bytearray()  # heard in speech, not yet handed to the decoder; ends at _pending_end
        self._pending_end = 0
        self._sent = bytearray()  # this utterance's audio handed to the decoder, to start again from
        self._finished_at: int | None = None  # the speech end the decoder finished early on, if it did
        self._in_speech = False
        self._position = 0  # bytes fed so far: the VAD's clock
        self._search: str = SEARCH_NUMBERS
        self._search_now: str = SEARCH_NUMBERS  # the utterance's own, kept when it starts again
        self._worker: asyncio.Task[None] | None = None
        self._held: UtteranceDecoder | None = None  # borrowed for the utterance being decoded

    async def start(self) -> None:
        """Make sure a decoder is ready (building one takes about half a second) and start decoding."""
        await self._source.warm()
        self._worker = asyncio.get_running_loop().create_task(self._work())

    def use_search(self, search: str) -> None:
        """The grammar for the next utterance (the policy's expectation for this turn)."""
        self._search = search

    def feed(self, pcm: bytes) -> None:
        levels = self._voicing.feed(pcm)
        self._position += len(pcm)
        if self._in_speech:
            self._pending += pcm
            self._pending_end = self._position
        else:
            self._recent += pcm
            del self._recent[: max(0, len(self._recent) - _PREROLL_MS * _BYTES_PER_MS * 2)]
        for level in levels:
            event = self._endpointer.step(level)
            if event is None:
                if self._in_speech:
                    self._finish_early_or_resume()
            elif event.kind == "speech_started" and not self._in_speech:
                self._in_speech = True
                # The VAD reports where speech began; keep from a little before it.
                preroll = self._preroll(event.at_ms)
                self._sent[:] = preroll
                self._finished_at = None
                self._search_now = self._search
                self._ops.put_nowait(_Begin(search=self._search, audio=preroll))
                self._recent.clear()
                if self._on_speech_started is not None:
                    self._on_speech_started()
            elif event.kind == "speech_stopped" and self._in_speech:
                self._in_speech = False
                if self._finished_at is None:
                    self._trim_to((event.at_ms + _TAIL_MS) * _BYTES_PER_MS)
                    self._flush()
                self._pending.clear()
                heard_ms = self._position // _BYTES_PER_MS
                self._ops.put_nowait(
                    _End(at=time.perf_counter(), endpoint_ms=max(0, heard_ms - event.at_ms))
                )
        if (
            self._in_speech
            and self._finished_at is None
            and len(self._pending) >= (_CHUNK_MS + _HOLD_MS) * _BYTES_PER_MS
        ):
            self._flush(hold=_HOLD_MS * _BYTES_PER_MS)

    def _finish_early_or_resume(self) -> None:
        """In speech, after each frame: finish once the decoder has all it will get; start the utterance
        again if the caller went on after that."""
        speech_end = self._endpointer.speech_end_ms
        if self._finished_at is not None and speech_end != self._finished_at:
            self._finished_at = None
            self._ops.put_nowait(_Resume(search=self._search_now, audio=bytes(self._sent)))
        if self._finished_at is None and self._endpointer.position_ms - speech_end >= _TAIL_MS:
            upto = (speech_end + _TAIL_MS) * _BYTES_PER_MS - (self._pending_end - len(self._pending))
            self._flush(hold=max(0, len(self._pending) - max(0, upto)))
            self._finished_at = speech_end
            self._ops.put_nowait(_FinishEarly())

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        if self._held is not None:
            # Possibly still in a worker thread's hands: never lend it again.
            self._source.discard(self._held)
            self._held = None

    def _preroll(self, started_at_ms: int) -> bytes:
        keep_ms = min(
            self._position // _BYTES_PER_MS - started_at_ms + _PREROLL_MS,
            len(self._recent) // _BYTES_PER_MS,
        )
        return bytes(self._recent[len(self._recent) - max(0, keep_ms) * _BYTES_PER_MS :])

    def _flush(self, *, hold: int = 0) -> None:
        """Hand the decoder what is pending but the last `hold` bytes."""
        upto = len(self._pending) - hold
        if upto > 0:
            pcm = bytes(self._pending[:upto])
            self._ops.put_nowait(_Audio(pcm=pcm))
            self._sent += pcm
            del self._pending[:upto]

    def _trim_to(self, position: int) -> None:
        """Drop pending audio from `position` (bytes on the VAD's clock) on: silence after the speech."""
        start = self._pending_end - len(self._pending)
        del self._pending[max(0, position - start) :]

    async def _work(self) -> None:
        try:
            await self._decode_utterances()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a decoder or a transcription service failed: the brain's failure route
            if self._on_error is None:
                raise
            self._on_error(exc)

    async def _decode_utterances(self) -> None:
        search = SEARCH_NUMBERS
        early: Decoded | None = None  # finished before the VAD's decision
        while True:
            op = await self._ops.get()
            if isinstance(op, _Begin):
                if self._held is not None:  # a new start without an end: drop the old utterance
                    if early is None:
                        await asyncio.to_thread(self._held.finish)
                    self._give_back()
                early = None
                self._held = await self._source.acquire()
                await asyncio.to_thread(_begin, self._held, op.search, op.audio)
                search = op.search
            elif isinstance(op, _Audio) and self._held is not None:
                await asyncio.to_thread(self._held.feed, op.pcm)
            elif isinstance(op, _FinishEarly) and self._held is not None:
                early = await asyncio.to_thread(self._held.finish)
            elif isinstance(op, _Resume) and self._held is not None:
                early = None
                await asyncio.to_thread(_begin, self._held, op.search, op.audio)
            elif isinstance(op, _End) and self._held is not None:
                decoded = early if early is not None else await asyncio.to_thread(self._held.finish)
                early = None
                self._give_back()
                self._on_result(
                    Recognition(
                        text=decoded.text,
                        search=search,
                        speech_ms=decoded.speech_ms,
                        decode_ms=(time.perf_counter() - op.at) * 1000,
                        confidence=decoded.confidence,
                        open_vocabulary=decoded.open_vocabulary,
                        whole_confidence=decoded.whole_confidence,
                        endpoint_ms=op.endpoint_ms,
                        first_pass_ms=decoded.first_pass_ms,
                        second_look_ms=decoded.second_look_ms,
                        rescued=decoded.rescued,
                        heard_as_words=decoded.heard_as_words,
                    )
                )

    def _give_back(self) -> None:
        if self._held is not None:
            self._source.release(self._held)
            self._held = None


def _begin(decoder: UtteranceDecoder, search: str, audio: bytes) -> None:
    decoder.begin(search)
    if audio:
        decoder.feed(audio)
