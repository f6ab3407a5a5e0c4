"""The offline dialogue policy: the flow's policy section turned into tool calls and replies."""


from dataclasses import replace

import pytest

from orchestrator.brains.base import CallInfo, StateBrief, ToolCall
from orchestrator.brains.cascade import policy_config
from orchestrator.brains.policy import PolicyDialogue, render_reply
from orchestrator.errors import FlowError
from orchestrator.flow import load_flow, load_flow_text
from orchestrator.speech.asr import Recognition
from tests.flows import ORDER_STATUS

FLOW_PATH = ORDER_STATUS
FLOW = load_flow(FLOW_PATH)
FLOW_TEXT = FLOW_PATH.read_text()
IDENTIFYING = StateBrief(
    name="identifying", instructions=None, tools=("lookup_order", "transfer_to_human", "end_call")
)
NARRATING = StateBrief(name="narrating", instructions=None, tools=IDENTIFYING.tools)
LOOKING_UP = StateBrief(name="looking_up", instructions=None, tools=())


def _dialogue(caller_orders: int | None = 0) -> PolicyDialogue:
    """A call from a number with no orders on record, unless told otherwise."""
    dialogue = PolicyDialogue(policy_config(FLOW))
    dialogue.begin(
        CallInfo(call_sid="HD_1", caller="+254712345678", sample_rate=16000, system_prompt="",
                 voice="en-us", language="en-KE", tools=(), caller_orders=caller_orders)
    )
    return dialogue


def _heard(text: str, confidence: float = 1.0) -> Recognition:
    """A recognised caller utterance, as the recogniser reports it."""
    return Recognition(text=text, search="numbers", speech_ms=1000, decode_ms=50.0, confidence=confidence)


async def _steps(iterator) -> list:
    return [step async for step in iterator]


def test_render_reply_drops_sentences_with_nothing_to_say():
    """An order without an ETA gets no "Expected delivery: ." sentence."""
    template = "Order {{ order.order_number }} is ready. Expected delivery: {{ order.eta }}. Anything else?"
    assert render_reply(template, {"order": {"order_number": "DX1043", "eta": ""}}) == (
        "Order DX1043 is ready. Anything else?"
    )


async def test_policy_dialogue_asks_for_the_number_on_entering_identifying():
    """Entering `identifying` speaks the state's reply from the YAML."""
    steps = await _steps(_dialogue().on_state(IDENTIFYING))
    assert steps == ["Please tell me your order number. It looks like D X 1 0 4 2."]


def _lookup(step) -> tuple[str, dict]:
    assert isinstance(step, ToolCall)
    return step.name, dict(step.arguments)


async def _confirmed(dialogue: PolicyDialogue, words: str) -> ToolCall:
    """Say a number, answer the read-back with yes, and return the lookup it starts."""
    await _steps(dialogue.on_caller(_heard(words)))
    call = (await _steps(dialogue.on_caller(_heard("yes"))))[-1]
    assert isinstance(call, ToolCall)
    return call


async def test_policy_dialogue_reads_a_recognised_number_back_without_looking_it_up():
    """A spoken order number is read back as a question, and no tool is called yet."""
    dialogue = _dialogue()
    await _steps(dialogue.on_state(IDENTIFYING))
    steps = await _steps(dialogue.on_caller(_heard("hello my order number is d x one oh four two")))
    assert steps == ["Order D X one zero four two, is that right?"]
    assert dialogue.listening() == "numbers"


async def test_policy_dialogue_looks_up_the_number_once_the_caller_says_yes():
    """"Yes" to the read-back says the `say` line and calls lookup_order with the number."""
    dialogue = _dialogue()
    await _steps(dialogue.on_state(IDENTIFYING))
    await _steps(dialogue.on_caller(_heard("d x one oh four two")))
    steps = await _steps(dialogue.on_caller(_heard("yes please")))
    assert steps[0] == "Let me check order D X one zero four two."
    assert _lookup(steps[1]) == ("lookup_order", {"order_number": "DX1042"})


async def test_policy_dialogue_takes_every_declared_yes_phrase():
    """"That's right" and "correct" confirm like "yes"."""
    for answer in ("that's right", "okay correct", "yes it is"):
        dialogue = _dialogue()
        await _steps(dialogue.on_state(IDENTIFYING))
        await _steps(dialogue.on_caller(_heard("p k two zero nine three one")))
        steps = await _steps(dialogue.on_caller(_heard(answer)))
        assert _lookup(steps[-1]) == ("lookup_order", {"order_number": "PK20931"}), answer


async def test_policy_dialogue_asks_again_when_the_caller_says_no():
    """"No" to the read-back says the `no` intent's line and looks nothing up; a later yes means nothing."""
    dialogue = _dialogue()
    await _steps(dialogue.on_state(IDENTIFYING))
    await _steps(dialogue.on_caller(_heard("d x one oh four three")))
    assert await _steps(dialogue.on_caller(_heard("no that's wrong"))) == [
        "Sorry about that. Please say the order number again."
    ]
    assert dialogue.listening() == "numbers"
    assert await _steps(dialogue.on_caller(_heard("yes"))) == [
        "Sorry, I did not catch that. Please say your order number, or ask for a person."
    ]


async def test_policy_dialogue_reads_back_a_new_number_said_instead_of_yes():
    """A different number in answer to the read-back is read back in turn, and only it is looked up."""
    dialogue = _dialogue()
    await _steps(dialogue.on_state(IDENTIFYING))
    await _steps(dialogue.on_caller(_heard("p k two zero nine three one")))
    assert await _steps(dialogue.on_caller(_heard("no it is d x one oh four two"))) == [
        "Order D X one zero four two, is that right?"
    ]
    steps = await _steps(dialogue.on_caller(_heard("yes")))
    assert _lookup(steps[-1]) == ("lookup_order", {"order_number": "DX1042"})


async def test_policy_dialogue_repeats_the_read_back_when_the_answer_is_not_understood():
    """An answer that is neither yes, no nor an intent repeats the question; a yes after it still counts."""
    dialogue = _dialogue()
    await _steps(dialogue.on_state(IDENTIFYING))
    await _steps(dialogue.on_caller(_heard("five five five five five")))
    assert await _steps(dialogue.on_caller(_heard(""))) == ["Order five five five five five, is that right?"]
    steps = await _steps(dialogue.on_caller(_heard("correct")))
    assert _lookup(steps[-1]) == ("lookup_order", {"order_number": "55555"})


async def test_policy_dialogue_keeps_other_intents_working_during_the_read_back():
    """While a number waits for a yes, "I don't have it", a person and goodbye act as anywhere else."""
    expected = {
        "i don't have it": ("lookup_order", {}),
        "speak to a person": ("transfer_to_human", {"reason": "caller asked for a person"}),
        "no thanks goodbye": ("end_call", {}),
    }
    for words, call in expected.items():
        dialogue = _dialogue(caller_orders=None)  # not known yet: "I don't have it" looks up by phone
        await _steps(dialogue.on_state(IDENTIFYING))
        await _steps(dialogue.on_caller(_heard("d x one oh four two")))
        steps = await _steps(dialogue.on_caller(_heard(words)))
        assert _lookup(steps[-1]) == call, words


async def test_policy_dialogue_forgets_the_read_back_on_entering_a_state():
    """A state entered meanwhile (a silence reprompt) asks its own question: a later yes looks nothing up."""
    dialogue = _dialogue()
    await _steps(dialogue.on_state(IDENTIFYING))
    await _steps(dialogue.on_caller(_heard("d x one oh four two")))
    await _steps(dialogue.on_state(IDENTIFYING))
    steps = await _steps(dialogue.on_caller(_heard("yes")))
    assert not any(isinstance(step, ToolCall) for step in steps)


async def test_policy_dialogue_looks_up_at_once_when_confirmation_is_off():
    """With `confirm: false` a recognised number is looked up straight away, as before."""
    flow = load_flow_text(FLOW_TEXT.replace("    confirm: true ", "    confirm: false "))
    dialogue = PolicyDialogue(policy_config(flow))
    await _steps(dialogue.on_state(IDENTIFYING))
    steps = await _steps(dialogue.on_caller(_heard("d x one oh four two")))
    assert steps[0] == "Let me check order D X one zero four two."
    assert _lookup(steps[1]) == ("lookup_order", {"order_number": "DX1042"})


def test_policy_flow_check_requires_the_intents_that_answer_a_read_back():
    """A flow that confirms numbers but declares no `yes` intent fails its check at the yes_intent key."""
    broken = FLOW_TEXT.replace("    yes:  ", "    agree:  ")
    with pytest.raises(FlowError) as caught:
        load_flow_text(broken, path="order_status.yaml")
    line = 2 + broken[: broken.index("\n  order_number:")].count("\n")
    assert str(caught.value) == (
        f"order_status.yaml:{line}:3: policy.order_number.yes_intent: "
        "confirm needs a 'yes' intent under policy.intents (or confirm: false)"
    )


async def test_policy_dialogue_narrates_the_found_order_after_the_result():
    """States entered while a lookup runs stay quiet; the result's state reply is spoken with the order."""
    dialogue = _dialogue()
    await _steps(dialogue.on_state(IDENTIFYING))
    call = await _confirmed(dialogue, "d x one oh four two")
    assert await _steps(dialogue.on_state(LOOKING_UP)) == []
    assert await _steps(dialogue.on_state(NARRATING)) == []
    order = {"order_number": "DX1042", "order_number_spoken": "D X one zero four two",
             "status_text": "out for delivery", "eta": "today"}
    steps = await _steps(dialogue.on_tool_result(call, {"found": True, "order": order, "state": "narrating"}))
    assert steps == [
        "Order D X one zero four two is out for delivery. Expected delivery: today. Is there anything else?"
    ]


async def test_policy_dialogue_says_not_found_and_asks_again():
    """An unknown number gets the `order_not_found` reply naming the number heard."""
    dialogue = _dialogue()
    await _steps(dialogue.on_state(IDENTIFYING))
    call = await _confirmed(dialogue, "five four three two one")
    await _steps(dialogue.on_state(IDENTIFYING))
    steps = await _steps(dialogue.on_tool_result(call, {"found": False, "order_number": "54321"}))
    assert steps == ["I could not find order five four three two one. Please say the order number again."]


async def test_policy_dialogue_lets_a_routes_say_replace_the_not_found_reply():
    """A route into a state with its own `say` ("I could not find that one") is the whole answer: the
    session speaks it, and the policy adds no `order_not_found` reply on top (the doc's example flow)."""
    dialogue = _dialogue()
    await _steps(dialogue.on_state(IDENTIFYING))
    call = await _confirmed(dialogue, "five four three two one")
    await _steps(dialogue.on_state(LOOKING_UP))
    said = "I could not find that one. Which number was it?"
    assert await _steps(dialogue.on_state(replace(IDENTIFYING, say=said))) == []
    assert await _steps(dialogue.on_tool_result(call, {"found": False, "order_number": "54321"})) == []


async def test_policy_dialogue_transfers_a_caller_who_asks_for_a_person():
    """The `human` intent says its line and calls transfer_to_human with the declared reason."""
    dialogue = _dialogue()
    await _steps(dialogue.on_state(IDENTIFYING))
    steps = await _steps(dialogue.on_caller(_heard("i want to speak to a person please")))
    assert steps[0] == "Of course."
    assert isinstance(steps[1], ToolCall)
    assert steps[1].name == "transfer_to_human"
    assert dict(steps[1].arguments) == {"reason": "caller asked for a person"}


async def test_policy_dialogue_asks_again_when_nothing_matched():
    """Words that are neither a number nor an intent get the `not_understood` reply."""
    dialogue = _dialogue()
    await _steps(dialogue.on_state(IDENTIFYING))
    assert await _steps(dialogue.on_caller(_heard("hello"))) == [
        "Sorry, I did not catch that. Please say your order number, or ask for a person."
    ]


async def test_policy_dialogue_refuses_a_tool_the_state_does_not_allow():
    """Asking for a person where transfer_to_human is not allowed gets the `refused` reply."""
    dialogue = _dialogue()
    await _steps(dialogue.on_state(LOOKING_UP))
    assert await _steps(dialogue.on_caller(_heard("speak to a person"))) == ["Sorry, I cannot do that right now."]
    assert dialogue.listening() == "intents"
