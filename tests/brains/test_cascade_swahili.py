"""The offline brain on a line of two languages: Swahili grammars over English phones, espeak-ng's `sw` voice.

pocketsphinx has only an English acoustic model, so these calls check the plumbing and what the grammar
does hear (bench/swahili_grammar.py measures how much); they never claim Swahili speech recognition.
"""

import pytest

from orchestrator.brains.base import AgentAudio, AgentUtteranceEnd, CallInfo, StateBrief
from orchestrator.brains.cascade import make_offline_brain_factory
from orchestrator.flow import load_flow
from orchestrator.simulator import SimulatorOptions
from orchestrator.speech.swahili import swahili_caller
from orchestrator.speech.tts import EspeakTts
from orchestrator.speech.voices import caller_voice
from orchestrator.telephony.webhook import parse_webhook_fields
from orchestrator.testing import run_scripted_call
from tests.flows import BILINGUAL, OFFLINE_SCRIPTS

FLOW = load_flow(BILINGUAL)


async def _call(name: str, voice):
    return await run_scripted_call(
        OFFLINE_SCRIPTS / f"{name}.yaml",
        flow=FLOW,
        brain_factory=make_offline_brain_factory(FLOW),
        simulator=SimulatorOptions(voice=voice),
    )


@pytest.mark.looptime
async def test_cascade_swahili_line_answers_a_swahili_caller_in_swahili():
    """The Swahili line's caller (espeak-ng `sw+f2`) hears Swahili throughout; their order is found and narrated."""
    record = await _call("swahili_line", swahili_caller("sw+f2"))
    transcript = record.render()
    assert '<Say language="sw-KE">Habari, asante kwa kupiga simu Duka Express.' in transcript
    assert "language  sw-KE (the number called)" in transcript
    assert "Naona oda iliyowekwa kutoka namba hii." in transcript
    assert 'caller    "habari oda yangu iko wapi"' in transcript
    assert "Oda P K mbili sifuri tisa tatu moja imetumwa." in transcript
    # The goodbye in Swahili: the caller's "hapana, asante, kwaheri" understood ("Kwaheri."), or, when it is
    # not, the flow's own after three silences ("Kwaheri!").
    assert "Asante kwa kupiga simu Duka Express. Kwaheri" in transcript
    assert record.transcript.outcome == "resolved"


@pytest.mark.looptime
async def test_cascade_caller_switches_the_english_line_to_swahili_by_asking():
    """"Kiswahili tafadhali" calls set_language; the prompt, read-back and narration follow in Swahili."""
    record = await _call("switches_to_swahili", caller_voice("rms"))
    transcript = record.render()
    assert 'set_language {"language": "sw-KE"}' in transcript
    assert "language  en-KE -> sw-KE (set_language)" in transcript
    assert "identifying -> identifying (language_changed)" in transcript
    assert "Tafadhali niambie namba ya oda yako." in transcript
    assert "Oda P K mbili sifuri tisa tatu moja, ni sahihi?" in transcript
    assert 'lookup_order {"order_number": "PK20931"}' in transcript
    assert "Oda P K mbili sifuri tisa tatu moja imetumwa." in transcript
    assert record.transcript.outcome == "resolved"


async def test_cascade_speaks_swahili_states_with_the_swahili_voice():
    """After a state entered in sw-KE, the agent's words are espeak-ng's `sw` voice, sample for sample."""
    start = parse_webhook_fields({"CallSid": "HD_voice", "From": "+254722000111", "To": "+254711000001"})
    brain = make_offline_brain_factory(FLOW)(start)
    await brain.start(
        CallInfo(
            call_sid="HD_voice", caller=start.caller, sample_rate=16000, system_prompt="",
            voice="en-us", language="en-KE", tools=(), languages=("en-KE", "sw-KE"),
        )
    )
    await brain.enter_state(StateBrief(name="ended", instructions=None, tools=(), say="Kwaheri.", language="sw-KE"))
    await brain.say("Kwaheri.", utterance_id="bye")
    pcm = b""
    async for event in brain.events():
        if isinstance(event, AgentAudio) and event.utterance_id == "bye":
            pcm += event.pcm
        if isinstance(event, AgentUtteranceEnd) and event.utterance_id == "bye":
            break
    await brain.close()
    assert pcm == await EspeakTts(voice="sw", rate=16000).synthesize("Kwaheri.")
    assert pcm != await EspeakTts(voice="en-us", rate=16000).synthesize("Kwaheri.")


@pytest.mark.looptime
async def test_cascade_switch_after_narration_repeats_the_order_in_swahili():
    """Asking for Swahili once the order was read out reads it again with Swahili digits and status."""
    record = await _call("swahili_after_narration", caller_voice("rms"))
    transcript = record.render()
    assert "Order P K two zero nine three one is dispatched." in transcript
    assert "language  en-KE -> sw-KE (set_language)" in transcript
    assert "Oda P K mbili sifuri tisa tatu moja imetumwa." in transcript
    assert record.transcript.outcome == "resolved"
