"""Callers on a hissing line: the recogniser measures each utterance's own cepstral mean, so steady noise
is normalised away instead of being heard as fricatives ("five eight ..." before the number)."""

from pathlib import Path

import numpy as np
import pytest

from orchestrator.audio.resample import resample
from orchestrator.brains.cascade import policy_config
from orchestrator.flow import load_flow
from orchestrator.speech.asr import (
    MIN_CONFIDENCE,
    SEARCH_INTENTS,
    SEARCH_NUMBERS,
    GrammarDecoder,
    _is_narrowband,
)
from orchestrator.speech.grammar import match_intent, parse_order_number
from orchestrator.speech.voices import add_noise, synthesize_caller, telephone_line

ROOT = Path(__file__).parents[2]
CONFIG = policy_config(load_flow(ROOT / "flows" / "order_status.yaml"))
_PAD = b"\x00\x00" * 3200  # 200 ms of silence either side, as a caller leaves
_CHUNK = 200 * 32  # the brain hands the decoder 200 ms at a time


@pytest.fixture(scope="module")
def decoder():
    return GrammarDecoder(CONFIG.grammar(), second_look=False)


def _streamed(decoder: GrammarDecoder, pcm: bytes, search: str = SEARCH_NUMBERS) -> str:
    """Decoded as the brain does it: the utterance fed in chunks while the caller talks; the order
    number heard, else the words."""
    decoder.begin(search)
    for at in range(0, len(pcm), _CHUNK):
        decoder.feed(pcm[at : at + _CHUNK])
    decoded = decoder.finish()
    assert decoded.confidence >= MIN_CONFIDENCE, decoded
    return parse_order_number(decoded.text, CONFIG.shapes) or decoded.text


@pytest.mark.parametrize(
    ("line", "voice", "number"),
    [
        ("Hello, it is D X one oh four three.", "slt", "DX1043"),
        ("P K two zero nine four four.", "awb", "PK20944"),
        ("The order number is D X one oh five five, thank you.", "slt", "DX1055"),
    ],
)
def test_an_order_number_said_over_white_noise_at_30_db_is_heard(decoder, line, voice, number):
    """White noise 30 dB under the speech: the number comes back whole, with nothing invented before it."""
    pcm = add_noise(_PAD + synthesize_caller(line, voice) + _PAD, 30.0)
    assert _streamed(decoder, pcm) == number


def test_an_order_number_over_a_noisy_phone_line_is_heard(decoder):
    """Telephone audio: noise on the 8 kHz line, then up to the recogniser's 16 kHz, as the brain hears it."""
    line = synthesize_caller("P K two zero nine four four.", "awb", rate=8000)
    pcm = resample(add_noise(b"\x00\x00" * 1600 + line + b"\x00\x00" * 1600, 30.0), 8000, 16000)
    assert _streamed(decoder, pcm) == "PK20944"


def test_the_same_line_clean_and_noisy_gives_the_same_number(decoder):
    """Measuring each utterance's mean costs clean speech nothing: clean, then noisy, then clean again."""
    clean = _PAD + synthesize_caller("My order number is P K two one oh oh two.", "kal16") + _PAD
    heard = [_streamed(decoder, pcm) for pcm in (clean, add_noise(clean, 30.0), clean)]
    assert heard == ["PK21002"] * 3


# --- a narrowband phone line, clean ---------------------------------------------------------------


def test_a_telephone_line_carries_nothing_above_4_khz():
    """The test callers' phone line: same length, same loudness, the band above 4 kHz emptied."""
    wide = synthesize_caller("Where is my order?", "slt")
    phone = telephone_line(wide)
    assert len(phone) == len(wide)
    power = np.abs(np.fft.rfft(np.frombuffer(phone, dtype="<i2").astype(float))) ** 2
    assert power[power.size // 2 :].sum() < power.sum() * 1e-6
    assert abs(_rms(phone) / _rms(wide) - 1) < 0.05


def test_a_phone_line_is_told_from_a_wideband_one_clean_or_noisy():
    line = _PAD + synthesize_caller("It's D X one oh four two.", "kal16") + _PAD
    assert _is_narrowband(telephone_line(line)) is True
    assert _is_narrowband(line) is False
    assert _is_narrowband(add_noise(line, 30.0)) is False
    assert _is_narrowband(_PAD) is None  # silence: nothing to tell by


@pytest.mark.parametrize(
    ("line", "voice", "number"),
    [
        ("Hello, it is D X one oh four three.", "kal16", "DX1043"),
        ("P K two zero nine four four.", "awb", "PK20944"),
        ("The order number is D X one oh five five, thank you.", "rms", "DX1055"),
        ("Hello, it is P K two zero nine three one.", "slt", "PK20931"),
    ],
)
def test_an_order_number_over_a_clean_phone_line_is_heard(decoder, line, voice, number):
    """8 kHz mu-law, nothing above 4 kHz: from the wideband speech mean every number was misheard."""
    assert _streamed(decoder, telephone_line(_PAD + synthesize_caller(line, voice) + _PAD)) == number


@pytest.mark.parametrize(
    ("line", "voice", "intent"),
    [
        ("Yes.", "kal16", "yes"),
        ("Yes, correct.", "slt", "yes"),
        ("Yes please.", "rms", "yes"),
        ("No.", "slt", "no"),
        ("No.", "kal16", "no"),
        ("Correct.", "awb", "yes"),
    ],
)
def test_a_short_answer_over_a_phone_line_is_heard(decoder, line, voice, intent):
    """Shorter than the mean's measure: decoded again from the phone-band mean at its end, and scored on
    the wideband scale (a narrowband line's margins all sit ~0.5 lower)."""
    words = _streamed(decoder, telephone_line(_PAD + synthesize_caller(line, voice) + _PAD), SEARCH_INTENTS)
    assert match_intent(words, {rule.name: rule.phrases for rule in CONFIG.intents}) == intent


def _rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(float)
    return float(np.sqrt(np.mean(samples**2)))
