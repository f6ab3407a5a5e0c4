"""Every recognition carries a confidence: in-grammar speech is trusted, speech the grammar cannot hold is not."""

from pathlib import Path

import pytest

from orchestrator.brains.cascade import policy_config
from orchestrator.flow import load_flow
from orchestrator.speech.asr import (
    MIN_CONFIDENCE,
    SEARCH_INTENTS,
    SEARCH_NUMBERS,
    GrammarDecoder,
    Recognition,
    confidence_from_margin,
)
from orchestrator.speech.voices import add_noise, synthesize_caller

ROOT = Path(__file__).parents[2]
_PAD = b"\x00\x00" * 3200  # 200 ms of silence either side, as a caller leaves


@pytest.fixture(scope="module")
def decoder():
    # The grammar's own confidence; what a second look makes of rejected audio: test_second_look.py.
    config = policy_config(load_flow(ROOT / "flows" / "order_status.yaml"))
    return GrammarDecoder(config.grammar(), second_look=False)


def _said(text: str, voice: str = "kal16", snr_db: float | None = None) -> bytes:
    pcm = _PAD + synthesize_caller(text, voice) + _PAD  # type: ignore[arg-type]
    return pcm if snr_db is None else add_noise(pcm, snr_db)


@pytest.mark.parametrize(
    ("line", "voice", "search"),
    [
        ("my order number is d x one oh four two", "slt", SEARCH_NUMBERS),
        ("speak to a person", "awb", SEARCH_INTENTS),
        ("that's correct", "kal16", SEARCH_NUMBERS),
    ],
)
def test_grammar_result_in_the_grammar_is_confident(decoder, line, voice, search):
    """A line the grammar holds comes back with its words and a confidence above the cut."""
    decoded = decoder.recognize(_said(line, voice), search)
    assert decoded.text.endswith(line.split(" ", 2)[-1] if search == SEARCH_NUMBERS else line)
    assert decoded.confidence >= MIN_CONFIDENCE


@pytest.mark.parametrize(
    "line",
    [
        "what's the weather like in nairobi today",
        "i ordered a blue jacket last week and it has not come",
        "sorry, my little boy is shouting in the background",
    ],
)
def test_grammar_result_for_off_topic_speech_is_below_the_cut(decoder, line):
    """Speech the grammar cannot hold is forced onto grammar words, but its confidence says so."""
    decoded = decoder.recognize(_said(line, "kal16", 30.0), SEARCH_NUMBERS)
    assert decoded.confidence < MIN_CONFIDENCE, decoded


def test_grammar_result_of_silence_has_no_words_and_no_confidence(decoder):
    """Silence gives empty text and confidence 0."""
    decoded = decoder.recognize(b"\x00\x00" * 16000, SEARCH_NUMBERS)
    assert decoded.text == ""
    assert decoded.confidence == 0.0


def test_confidence_scale_is_monotone_with_the_cut_at_the_threshold():
    """The scale rises with the acoustic margin, stays in [0, 1] and is 0 without words."""
    margins = [-12.0, -6.0, -4.0, -3.0, -2.0, 0.0]
    values = [confidence_from_margin(m) for m in margins]
    assert values == sorted(values)
    assert all(0.0 <= v <= 1.0 for v in values)
    assert confidence_from_margin(None) == 0.0
    assert min(v for v in values if v >= MIN_CONFIDENCE) > max(v for v in values if v < MIN_CONFIDENCE)


def test_recognition_is_understood_only_with_words_above_the_cut():
    """`understood` needs both words and a confidence at or above MIN_CONFIDENCE."""
    common = {"search": SEARCH_NUMBERS, "speech_ms": 900, "decode_ms": 40.0}
    assert Recognition(text="goodbye", confidence=0.9, **common).understood
    assert not Recognition(text="goodbye", confidence=0.2, **common).understood
    assert not Recognition(text="", confidence=1.0, **common).understood
