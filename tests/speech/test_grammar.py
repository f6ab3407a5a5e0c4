"""Grammars from the flow's policy, and reading order numbers and intents back out of recognised words."""

from orchestrator.speech.grammar import (
    GrammarSpec,
    LeadIn,
    build_jsgf,
    build_lead_in_jsgf,
    content_span,
    grammar_words,
    lead_in_runs,
    match_intent,
    number_took_intent,
    parse_order_number,
    spoken_base_word,
    spoken_order_number,
)
from orchestrator.speech.swahili import SWAHILI_DIGIT_WORDS

SPEC = GrammarSpec(
    shapes=("DX####", "#####"),
    intents={"human": ("speak to a person",), "goodbye": ("bye", "no thanks")},
    fillers=("hello", "my order number is"),
)


def test_build_jsgf_spells_shapes_as_letters_and_digits():
    """A shape becomes its letter names followed by exactly that many spoken digits."""
    text = build_jsgf(SPEC)
    assert "( d x ( <digit> | two_run_in ) <digit> <digit> <digit> )" in text
    assert "( <digit> <digit> <digit> <digit> <digit> )" in text
    assert "<intent_human> = ( speak to a person );" in text


def test_a_two_run_into_a_letter_is_a_word_of_its_own_only_right_after_the_letters():
    """slt says "P K two" as "kay-yoo": the digit after a shape's letters may also be "two_run_in" (Y UW),
    and nowhere else: between digits, that short word was heard in any glide ("three one" as "three two
    one"), and the digit rule every position uses is the plain one."""
    text = build_jsgf(SPEC)
    assert "<digit> = zero | oh | one | two | three | four | five | six | seven | eight | nine;" in text
    assert text.count("two_run_in") == 1  # after "d x"; the all-digit shape has no letter to run into


def test_a_swahili_grammar_has_no_run_in_digit():
    """A Swahili line's grammar (English digits too) is left as it was: with "two" said Y UW anywhere in the
    dictionary, "habari oda yangu iko wapi" was no longer heard."""
    swahili = GrammarSpec(shapes=SPEC.shapes, intents=SPEC.intents, digits={**SWAHILI_DIGIT_WORDS, "two": "2"})
    assert "two_run_in" not in build_jsgf(swahili)
    assert "( d x <digit> <digit> <digit> <digit> )" in build_jsgf(swahili)


def test_a_run_in_digit_reads_as_its_digit():
    """Decoded "two_run_in" is the digit two, in text and in the order number."""
    assert spoken_base_word("two_run_in") == "two"
    assert spoken_base_word("the(2)") == "the"
    assert parse_order_number("p k two_run_in zero nine three one", ["PK#####"]) == "PK20931"


def test_build_jsgf_intents_only_leaves_numbers_out():
    """The intents-only search has no order-number rule."""
    assert "<order_number>" not in build_jsgf(SPEC, numbers=False)


def test_grammar_words_lists_every_word_the_decoder_must_know():
    """Letters of shapes, digit words, filler and phrase words are all listed."""
    assert {"d", "x", "oh", "nine", "hello", "person", "thanks"} <= grammar_words(SPEC)


def test_parse_order_number_reads_letters_and_digit_words():
    """Carrier words are skipped and "oh" reads as zero."""
    assert parse_order_number("my order number is d x one oh four two", SPEC.shapes) == "DX1042"
    assert parse_order_number("five five five five five please", SPEC.shapes) == "55555"


def test_parse_order_number_needs_a_whole_shape():
    """Too few digits, or no number at all, is no order number."""
    assert parse_order_number("d x one two", SPEC.shapes) is None
    assert parse_order_number("speak to a person", SPEC.shapes) is None


def test_parse_order_number_takes_the_last_number_a_caller_said():
    """A caller who corrects themselves says the right number last; a trailing digit is not a second one."""
    said = "p k two zero nine four four wait no sorry p k two zero nine three one"
    assert parse_order_number(said, ["PK#####"]) == "PK20931"
    assert parse_order_number("d x one zero four two two", ["DX####", "#####"]) == "DX1042"


def test_parse_order_number_takes_one_letter_heard_alike():
    """"D K" for "P K" and "B X" for "D X" fit, read as the shape's letters; two letters off do not."""
    shapes = ["DX####", "PK#####", "#####"]
    assert parse_order_number("d k two zero nine four four", shapes) == "PK20944"
    assert parse_order_number("b x one zero four two", shapes) == "DX1042"
    assert parse_order_number("t g one zero four two", ["DX####"]) is None
    assert parse_order_number("m k two zero nine four four", ["PK#####"]) is None  # m is nothing like p


def test_match_intent_prefers_whole_words_and_longest_phrase():
    """"no thanks bye" is goodbye; "byelaw" would not match "bye"."""
    assert match_intent("hello i want to speak to a person", SPEC.intents) == "human"
    assert match_intent("no thanks bye", SPEC.intents) == "goodbye"
    assert match_intent("byelaw", SPEC.intents) is None


def test_spoken_order_number_reads_each_character():
    """The agent reads an order number back character by character."""
    assert spoken_order_number("DX1042") == "D X one zero four two"


def test_content_span_finds_the_number_before_the_intent_and_ignores_fillers():
    """The words that carry the meaning: the order number's, else the longest intent phrase's, else none."""
    spec = GrammarSpec(
        shapes=("DX####",),
        intents={"yes": ("yes", "that's right"), "goodbye": ("goodbye",)},
        fillers=("hello", "my order number is"),
    )
    words = ["hello", "my", "order", "number", "is", "d", "x", "one", "oh", "four", "two"]
    assert content_span(words, spec) == (5, 11)
    assert content_span(["yes", "that's", "right"], spec) == (1, 3)
    assert content_span(["hello", "goodbye"], spec) == (1, 2)
    assert content_span(["hello", "my", "order", "number", "is"], spec) is None


def test_build_lead_in_jsgf_puts_one_order_number_among_the_words_heard():
    """The second look's grammar where the open decode heard digits: the caller's words, any of them any
    number of times, around exactly one number."""
    jsgf = build_lead_in_jsgf(LeadIn(["they", "sent", "me"], ["please"], placed=True), ["DX####"])
    assert "<order_number> = ( d x ( <digit> | two_run_in ) <digit> <digit> <digit> );" in jsgf
    assert "<lead> = me | please | sent | they;" in jsgf
    assert "public <lead_in> = <lead>* <order_number> <lead>*;" in jsgf


def test_build_lead_in_jsgf_keeps_the_words_in_order_when_no_digit_placed_the_number():
    """No digit heard: each word at most once, in the order heard, any left out."""
    jsgf = build_lead_in_jsgf(LeadIn(["it", "says", "the"], [], placed=False), ["DX####"])
    assert "public <lead_in> = [ it ] [ says ] [ the ] <order_number>;" in jsgf


def test_lead_in_runs_leave_out_the_words_the_numbers_start_was_heard_as():
    """"Could you check on D X one zero seven one" heard openly as "t excellent era seven one": the two
    words before the first digit heard are the number's letters and first digits, not the caller's
    lead-in; offered as lead-in they would explain that audio better than "d x one zero" does."""
    heard = "could you check on t excellent era seven one for me".split()
    assert lead_in_runs(heard, ("DX####",)) == LeadIn(["could", "you", "check", "on", "t"], ["for", "me"], placed=True)


def test_lead_in_runs_around_a_number_the_open_decode_heard_keep_their_own_digits():
    """"The one I'm after is P K ...": the open words held a whole number, so everything around it is
    lead-in, the caller's own "one" included, and the number's letters never are."""
    heard = "right so the one i'm after is p k two zero nine four four thanks".split()
    assert lead_in_runs(heard, ("DX####", "PK#####")) == LeadIn(
        ["right", "so", "the", "one", "i'm", "after", "is"], ["thanks"], placed=True
    )


def test_lead_in_runs_never_offer_the_shapes_letters():
    """A stray "p" heard before a misheard number belongs to the number, not to the lead-in."""
    heard = "please look at order p kane is aaron nine five seven".split()
    assert lead_in_runs(heard, ("PK#####",)) == LeadIn(["please", "look", "at", "order", "kane"], [], placed=True)


def test_lead_in_runs_without_a_digit_heard_offer_every_word_before_the_number():
    """"It says D X one zero four two" heard openly as "it says the excellence era far to you": no digit
    says where the number began, so every word may come before it; the grammar keeps them in order, and the
    decoder offers fewer when the number's own words among them leave it no path (`_number_among`)."""
    heard = "it says the excellence era far to you".split()
    assert lead_in_runs(heard, ("DX####",)) == LeadIn(heard, [], placed=False)


def test_build_lead_in_jsgf_without_words_is_the_number_alone():
    """Nothing heard but digits: the grammar is one order number."""
    jsgf = build_lead_in_jsgf(LeadIn([], [], placed=True), ["#####"])
    assert "public <lead_in> = <order_number>;" in jsgf


def test_a_number_that_took_the_place_of_an_intents_words_is_noticed():
    """The lead-in grammar keeps some heard words before the number; the rest were the number's sounds."""
    spec = GrammarSpec(shapes=("DX####", "#####"), intents={"status": ("my delivery",), "human": ("a person",)})
    heard = ["by", "any", "updates", "on", "my", "delivery"]
    assert number_took_intent(heard, ["by", "any", "updates", "on", "my", "eight", "oh", "oh", "one", "three"], spec)
    assert number_took_intent(heard, ["by", "any", "updates", "on", "nine", "oh", "oh", "one", "three"], spec)
    # "my order is" kept before the number, only the words that were the number taken: the number stands
    lead_in = ["my", "delivery", "is", "the", "excellence", "era"]
    assert not number_took_intent(lead_in, ["my", "delivery", "is", "d", "x", "one", "zero", "four", "two"], spec)
