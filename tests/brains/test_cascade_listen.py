"""`listen:` per state: the offline policy's actions and grammar, flow check, and the hint LLM brains get."""

from pathlib import Path

import pytest

from orchestrator.brains.base import CallInfo, StateBrief, ToolCall
from orchestrator.brains.cascade import policy_config
from orchestrator.brains.policy import PolicyDialogue
from orchestrator.errors import FlowError
from orchestrator.flow import CallMachine, load_flow, load_flow_text
from orchestrator.speech.asr import GrammarDecoder, Recognition
from orchestrator.speech.grammar import build_jsgf

FLOW_PATH = Path(__file__).parent / "flows" / "offer_sms.yaml"
FLOW = load_flow(FLOW_PATH)
FLOW_TEXT = FLOW_PATH.read_text()
OFFER_SMS = StateBrief(
    name="offer_sms", instructions=None, tools=("send_tracking_sms", "end_call", "transfer_to_human")
)
IDENTIFYING = StateBrief(name="identifying", instructions=None, tools=("lookup_order", "transfer_to_human"))


def _dialogue() -> PolicyDialogue:
    dialogue = PolicyDialogue(policy_config(FLOW))
    dialogue.begin(
        CallInfo(call_sid="HD_1", caller="+254712345678", sample_rate=16000, system_prompt="",
                 voice="en-us", language="en-KE", tools=())
    )
    return dialogue


async def _steps(iterator) -> list:
    return [step async for step in iterator]


async def _say(dialogue: PolicyDialogue, text: str, confidence: float = 1.0) -> list:
    heard = Recognition(text=text, search="x", speech_ms=500, decode_ms=10.0, confidence=confidence)
    return await _steps(dialogue.on_caller(heard))


def _calls(steps: list) -> list[str]:
    return [step.name for step in steps if isinstance(step, ToolCall)]


async def test_yes_in_a_question_state_does_what_the_state_listens_for():
    """"Yes" to "tracking link by SMS?" says the entry's line and calls its tool."""
    dialogue = _dialogue()
    await _steps(dialogue.on_state(OFFER_SMS))
    steps = await _say(dialogue, "yes please")
    assert steps[0] == "Sending it now."
    assert _calls(steps) == ["send_tracking_sms"]


async def test_an_unsure_yes_that_would_end_the_call_is_asked_again_as_yes_or_no():
    """Sending the SMS ends the call here: a merely plausible yes gets "was that a yes or a no?" first."""
    dialogue = _dialogue()
    await _steps(dialogue.on_state(OFFER_SMS))
    assert await _say(dialogue, "yes", confidence=0.6) == ["Sorry, was that a yes or a no?"]
    steps = await _say(dialogue, "yes please", confidence=0.6)
    assert steps[0] == "Sending it now."
    assert _calls(steps) == ["send_tracking_sms"]


async def test_a_states_own_intent_is_heard_with_its_phrases():
    """A team's intent declared under `listen:` with phrases works in that state."""
    dialogue = _dialogue()
    await _steps(dialogue.on_state(OFFER_SMS))
    steps = await _say(dialogue, "maybe later")
    assert steps[0] == "No problem. Goodbye."
    assert _calls(steps) == ["end_call"]


async def test_what_a_state_does_not_list_falls_back_to_the_flow_wide_policy():
    """`human` is not listed in offer_sms: the flow-wide intent still transfers."""
    dialogue = _dialogue()
    await _steps(dialogue.on_state(OFFER_SMS))
    assert _calls(await _say(dialogue, "an agent")) == ["transfer_to_human"]


async def test_a_state_listening_without_order_number_ignores_digits():
    """offer_sms does not listen for order numbers: a number there is not read back."""
    dialogue = _dialogue()
    await _steps(dialogue.on_state(OFFER_SMS))
    steps = await _say(dialogue, "d x one oh four two")
    assert steps == ["Sorry, I did not catch that."]


async def test_each_state_gets_a_grammar_of_what_it_listens_for():
    """The turn's search follows the state; offer_sms's grammar has its phrases and no numbers."""
    config = policy_config(FLOW)
    grammars = config.grammars()
    dialogue = _dialogue()
    await _steps(dialogue.on_state(OFFER_SMS))
    assert dialogue.listening() == "state_offer_sms"
    offer = grammars["state_offer_sms"]
    assert offer.shapes == ()
    assert offer.intents["later"] == ("later", "maybe later", "not now")
    assert {"yes", "no", "human"} <= set(offer.intents)
    await _steps(dialogue.on_state(IDENTIFYING))
    assert dialogue.listening() == "state_identifying"
    assert grammars["state_identifying"].shapes == ("DX####",)
    assert "<order_number>" not in build_jsgf(offer, numbers=bool(offer.shapes))


def test_the_recogniser_builds_one_search_per_state_grammar():
    """GrammarDecoder takes the policy's grammars by name; every word is in its dictionary."""
    decoder = GrammarDecoder(policy_config(FLOW).grammars())
    assert {"state_offer_sms", "state_identifying", "numbers", "intents"} <= decoder.searches


def test_flow_check_reports_a_listen_tool_the_state_does_not_allow():
    """A `listen:` entry calling a tool missing from the state's `tools:` is located and named."""
    broken = FLOW_TEXT.replace(
        'yes: {say: "Sending it now.", tool: send_tracking_sms}',
        'yes: {say: "Sending it now.", tool: lookup_order}',
    )
    with pytest.raises(FlowError) as caught:
        load_flow_text(broken, path="offer_sms.yaml")
    assert "states.offer_sms.listen.yes.tool: tool 'lookup_order' is not allowed in state 'offer_sms'" in str(
        caught.value
    )


def test_flow_check_reports_an_intent_with_no_phrases():
    """A state's own intent with no phrases (and none under policy.intents) is an error at its key."""
    broken = FLOW_TEXT.replace("        phrases: [later, maybe later, not now]\n", "")
    with pytest.raises(FlowError) as caught:
        load_flow_text(broken, path="offer_sms.yaml")
    message = str(caught.value)
    assert "states.offer_sms.listen.later: intent 'later' has no phrases" in message


def test_listen_accepts_a_plain_list_of_intents():
    """`listen: [order_number, human]` lists answers that behave as the flow-wide policy says."""
    spec = FLOW.states["identifying"]
    assert set(spec.listen) == {"order_number", "human"}
    assert spec.listen["human"].tool is None


def test_llm_brains_get_the_listen_declaration_as_a_hint_in_the_instructions():
    """Entering offer_sms tells a model the expected answers and what each leads to."""
    machine = CallMachine(FLOW, {})
    machine.start()
    machine.send("stream_started")
    machine.send("tool:lookup_order")
    entered = machine.send("order_found")
    assert entered is not None
    assert entered.instructions is not None
    assert entered.instructions.startswith("Offer the tracking link by SMS.\nExpected answers here: ")
    assert 'yes (say "Sending it now." then call send_tracking_sms)' in entered.instructions
    assert 'later ("later", "maybe later", "not now") (say "No problem. Goodbye." then call end_call)' in (
        entered.instructions
    )
