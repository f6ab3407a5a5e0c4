"""What the grammar cannot explain gets a second look: open-vocabulary words, then a number among them.

Real pocketsphinx, natural flite voices: the lines below are in no grammar of the flow's, as callers say them.
"""

import pytest

from orchestrator.brains.cascade import policy_config
from orchestrator.flow import load_flow
from orchestrator.speech.asr import MIN_CONFIDENCE, SEARCH_NUMBERS, GrammarDecoder
from orchestrator.speech.grammar import parse_order_number
from orchestrator.speech.voices import add_noise, synthesize_caller
from tests.flows import ORDER_STATUS

CONFIG = policy_config(load_flow(ORDER_STATUS))
_PAD = b"\x00\x00" * 3200  # 200 ms of silence either side, as a caller leaves


@pytest.fixture(scope="module")
def decoder():
    return GrammarDecoder(CONFIG.grammars())


def _said(text: str, voice: str) -> bytes:
    return _PAD + synthesize_caller(text, voice) + _PAD  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("line", "voice", "number"),
    [
        ("They sent me a text with D X one zero six zero.", "kal16", "DX1060"),
        ("Could you look up D X one zero five five for me?", "slt", "DX1055"),
    ],
)
def test_a_number_after_words_no_grammar_holds_is_heard_on_the_second_look(decoder, line, voice, number):
    """The lead-in is explained by the words an open decode heard, the number by the flow's shapes."""
    decoded = decoder.recognize(_said(line, voice), SEARCH_NUMBERS)
    assert parse_order_number(decoded.text, CONFIG.shapes) == number, decoded
    assert decoded.confidence >= MIN_CONFIDENCE
    assert not decoded.open_vocabulary


@pytest.mark.parametrize(
    ("line", "number"),
    [
        ("Hi, I have a reference here, it says D X one zero four two.", "DX1042"),  # "...the excellence era far to you"
        ("Okay, the order is D X one zero four two.", "DX1042"),  # "okay the yard areas the excellent air authority of"
    ],
)
def test_a_number_the_open_decode_heard_only_as_words_is_found_after_the_callers_own(decoder, line, number):
    """slt's "D X one zero four two" after a lead-in comes back from the open decode with no digit at all.
    Offered before the number in the order heard, the words that were the number leave the grammar no path
    to its end; with fewer of them offered, the caller's own words explain the lead-in and the shape the
    number."""
    decoded = decoder.recognize(_said(line, "slt"), SEARCH_NUMBERS)
    assert parse_order_number(decoded.text, CONFIG.shapes) == number, decoded
    assert decoded.confidence >= MIN_CONFIDENCE
    assert not decoded.open_vocabulary
    assert decoded.heard_as_words  # the words it was found among, for a known caller's question


@pytest.mark.parametrize(
    ("line", "number"),
    [
        ("Could you check on D X one zero seven one for me?", "DX1071"),  # open: "t excellent era seven one"
        ("Please look at order P K two zero nine five seven.", "PK20957"),  # open: "p kane is aaron nine ..."
    ],
)
def test_a_number_whose_letters_the_open_decode_heard_as_words_is_still_found(decoder, line, number):
    """slt's letters come back from the open decode as other words; those words are not offered as the
    number's lead-in, so the letters and digits explain that audio instead."""
    decoded = decoder.recognize(_said(line, "slt"), SEARCH_NUMBERS)
    assert parse_order_number(decoded.text, CONFIG.shapes) == number, decoded
    assert decoded.confidence >= MIN_CONFIDENCE


@pytest.mark.parametrize(
    ("line", "number"),
    [
        ("P K two zero nine three one.", "PK20931"),
        ("It's P K two seven three zero five.", "PK27305"),
        ("Um, P K two six six one nine, thanks.", "PK26619"),
    ],
)
def test_a_two_run_into_a_letter_is_heard_as_two(line, number):
    """slt says "P K two" as "kay-yoo": the grammar alone, no second look, hears "two", not "zero"
    (each came back as "p k zero ...", confidence 0.95-0.97, before "two_run_in")."""
    grammar_only = GrammarDecoder(CONFIG.grammars(), second_look=False)
    decoded = grammar_only.recognize(_said(line, "slt"), SEARCH_NUMBERS)
    assert parse_order_number(decoded.text, CONFIG.shapes) == number, decoded
    assert decoded.confidence >= MIN_CONFIDENCE
    assert "two_run_in" not in decoded.text  # the text says the digit word


def test_a_question_no_grammar_holds_comes_back_as_the_callers_words(decoder):
    """Instead of grammar words forced onto it (an invented number), the caller's own words, marked open."""
    decoded = decoder.recognize(_said("I'd like to know where my order is please.", "slt"), SEARCH_NUMBERS)
    assert decoded.open_vocabulary, decoded
    assert {"where", "my"} <= set(decoded.text.split())
    assert parse_order_number(decoded.text, CONFIG.shapes) is None


def test_an_off_topic_remark_comes_back_as_words_with_no_number(decoder):
    """A remark to someone else in the room is heard as what it is, never as an order number."""
    decoded = decoder.recognize(_said("Sorry, my little boy is shouting in the background.", "kal16"), SEARCH_NUMBERS)
    assert decoded.open_vocabulary, decoded
    assert parse_order_number(decoded.text, CONFIG.shapes) is None


def test_speech_the_grammar_holds_takes_no_second_look(decoder):
    """A clear answer is the grammar's result, at no extra cost."""
    decoded = decoder.recognize(_said("Yes, that's right.", "kal16"), SEARCH_NUMBERS)
    assert decoded.text.endswith("yes that's right")
    assert not decoded.open_vocabulary


def test_without_the_second_look_off_grammar_speech_stays_below_the_cut():
    """`second_look=False`: the grammar's forced words, rejected by their confidence (the old behaviour)."""
    grammar_only = GrammarDecoder(CONFIG.grammars(), second_look=False)
    decoded = grammar_only.recognize(_said("I'd like to know where my order is please.", "slt"), SEARCH_NUMBERS)
    assert not decoded.open_vocabulary
    assert decoded.confidence < MIN_CONFIDENCE, decoded


def test_speech_the_grammar_swallowed_as_silence_leaves_the_utterance_unexplained():
    """"My tracking number is P K ..." came back as "my package the number is" and 1.9 s of "silence":
    a silence that long inside an utterance is swallowed speech, so the whole confidence is 0 and the
    second look hears the number."""
    line = _said("My tracking number is P K two zero nine four four.", "kal16")
    forced = GrammarDecoder(CONFIG.grammars(), second_look=False).recognize(line, SEARCH_NUMBERS)
    assert forced.text == "my package the number is"
    assert forced.whole_confidence == 0.0
    decoded = GrammarDecoder(CONFIG.grammars()).recognize(line, SEARCH_NUMBERS)
    assert parse_order_number(decoded.text, CONFIG.shapes) == "PK20944"


# --- the open decoder listens when the decoder has time --------------------------------------------


def _streamed(decoder: GrammarDecoder, pcm: bytes) -> None:
    decoder.begin(SEARCH_NUMBERS)
    for at in range(0, len(pcm), 6400):  # 200 ms chunks, as the brain sends them
        decoder.feed(pcm[at : at + 6400])


def test_an_open_decoder_left_behind_catches_up_when_a_second_look_needs_it():
    """`open_when_idle`: feeding leaves the open decoder behind; a finish that needs its words hears the
    whole utterance then, so the words are the same as if it had kept up."""
    idle = GrammarDecoder(CONFIG.grammars(), open_when_idle=True)
    _streamed(idle, _said("I've been waiting all week and honestly I just want to speak to a person.", "kal16"))
    decoded = idle.finish()
    assert decoded.rescued and decoded.second_look_ms is not None
    assert "speak to a person" in decoded.text


def test_an_utterance_the_grammar_explains_never_feeds_the_open_decoder_after_its_finish():
    """Explained at once: the finish does not wait for the open decoder, and its backlog is dropped."""
    idle = GrammarDecoder(CONFIG.grammars(), open_when_idle=True)
    _streamed(idle, _said("My order number is P K two zero nine three one.", "kal16"))
    assert idle.catch_up(3200) is True  # 100 ms heard, the rest of the utterance still waiting
    decoded = idle.finish()
    assert parse_order_number(decoded.text, CONFIG.shapes) == "PK20931"
    assert decoded.second_look_ms is None
    assert idle.catch_up() is False  # nothing more to hear for this utterance


def test_a_number_read_out_is_not_taken_for_an_intent_the_grammar_preferred_by_a_hair(decoder):
    """slt's "Hello? It's P K two zero nine three one" is "hello it is speak to a human can i" on the grammar's
    best path (key words 0.90, whole 0.65): the number read from the same audio fits better, and is taken
    (it is read back; a request for a person would have transferred the caller)."""
    decoded = decoder.recognize(_said("Hello? It's P K two zero nine three one.", "slt"), SEARCH_NUMBERS)
    assert parse_order_number(decoded.text, CONFIG.shapes) == "PK20931", decoded


@pytest.mark.parametrize(
    "line", ["I want to speak to a person.", "Is my order out for delivery?", "No, that's all, thank you."]
)
def test_an_intent_said_plainly_stays_an_intent(decoder, line):
    """The number reading of a plain intent fits worse than the intent: nothing changes."""
    decoded = decoder.recognize(_said(line, "kal16"), SEARCH_NUMBERS)
    assert parse_order_number(decoded.text, CONFIG.shapes) is None, decoded


def test_a_short_answer_both_recognisers_heard_alike_is_understood(decoder):
    """awb's "Yes." scores 0.22 in the grammar and comes back from the open decode as "us": the same sounds,
    so the grammar's "yes" stands, as sure as the open decode and, like it, never decisive alone."""
    decoded = decoder.recognize(_said("Yes.", "awb"), SEARCH_NUMBERS)
    assert decoded.text == "yes", decoded
    assert decoded.confidence >= MIN_CONFIDENCE
    assert decoded.rescued


def test_open_words_that_sound_like_one_of_the_grammars_phrases_are_that_phrase(decoder):
    """At 30 dB the grammar hears awb's "Yes." as "no it's" (0.01) and the open decode as "us" (0.67): every
    word of it sounds like the phrase "yes" and no other, so it is "yes", never decisive alone."""
    decoded = decoder.recognize(_PAD + add_noise(synthesize_caller("Yes.", "awb"), 30, seed=3) + _PAD, SEARCH_NUMBERS)
    assert decoded.text == "yes", decoded
    assert decoded.confidence >= MIN_CONFIDENCE
    assert decoded.rescued
    assert not decoded.open_vocabulary


def test_open_words_that_sound_like_no_phrase_stay_the_callers_words(decoder):
    """"This." is one consonant away from "yes": it stays what the caller said, not an answer."""
    decoded = decoder.recognize(_said("This.", "kal16"), SEARCH_NUMBERS)
    assert decoded.text == "this", decoded
    assert decoded.open_vocabulary


def test_an_intent_the_grammar_explained_only_loosely_gets_the_second_look(decoder):
    """slt's "Hi, any update on my delivery?" is "hi an agent the number is" to the grammar (key words 0.94,
    whole 0.35): a request for a person the policy would have asked about. The open decode heard the
    caller's question, and its words are the result."""
    decoded = decoder.recognize(_said("Hi, any update on my delivery?", "slt"), SEARCH_NUMBERS)
    assert "agent" not in decoded.text, decoded
    assert "delivery" in decoded.text.split(), decoded
    assert decoded.rescued


def test_a_number_is_not_fitted_over_an_intents_own_words(decoder):
    """"Any updates on my delivery?": the open decode heard it right (0.92), no digit; a number fits the
    audio of "my delivery" at 0.82. What the caller asked stands, and no number is read back."""
    decoded = decoder.recognize(_said("Any updates on my delivery?", "slt"), SEARCH_NUMBERS)
    assert parse_order_number(decoded.text, CONFIG.shapes) is None, decoded
    assert "delivery" in decoded.text.split(), decoded



def test_a_number_whose_carrier_words_were_forced_gets_the_second_look(decoder):
    """slt's "Sorry, it's D X one zero five one." is "it's i would like to one zero five oh one" to the
    grammar (0.96, whole 0.59): "sorry" and the letters forced onto a filler and a digit. The open decode
    placed the digits after "sorry it's", and the number found there is surer."""
    decoded = decoder.recognize(_said("Sorry, it's D X one zero five one.", "slt"), SEARCH_NUMBERS)
    assert parse_order_number(decoded.text, CONFIG.shapes) == "DX1051", decoded
