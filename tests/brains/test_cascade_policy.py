"""The offline dialogue policy: the flow's policy section turned into tool calls and replies."""

from pathlib import Path

from orchestrator.brains.base import CallInfo, StateBrief, ToolCall
from orchestrator.brains.cascade import policy_config
from orchestrator.brains.policy import PolicyDialogue, render_reply
from orchestrator.flow import load_flow

FLOW = load_flow(Path(__file__).parents[2] / "flows" / "order_status.yaml")
IDENTIFYING = StateBrief(
    name="identifying", instructions=None, tools=("lookup_order", "transfer_to_human", "end_call")
)
NARRATING = StateBrief(name="narrating", instructions=None, tools=IDENTIFYING.tools)
LOOKING_UP = StateBrief(name="looking_up", instructions=None, tools=())


def _dialogue() -> PolicyDialogue:
    dialogue = PolicyDialogue(policy_config(FLOW))
    dialogue.begin(
        CallInfo(call_sid="HD_1", caller="+254712345678", sample_rate=16000, system_prompt="",
                 voice="en-us", language="en-KE", tools=())
    )
    return dialogue


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


async def test_policy_dialogue_looks_up_a_recognised_order_number():
    """A spoken order number is read back and looked up with lookup_order."""
    dialogue = _dialogue()
    await _steps(dialogue.on_state(IDENTIFYING))
    steps = await _steps(dialogue.on_caller("hello my order number is d x one oh four two"))
    assert steps[0] == "Let me check order D X one zero four two."
    assert isinstance(steps[1], ToolCall)
    assert (steps[1].name, dict(steps[1].arguments)) == ("lookup_order", {"order_number": "DX1042"})


async def test_policy_dialogue_narrates_the_found_order_after_the_result():
    """States entered while a lookup runs stay quiet; the result's state reply is spoken with the order."""
    dialogue = _dialogue()
    await _steps(dialogue.on_state(IDENTIFYING))
    call = (await _steps(dialogue.on_caller("d x one oh four two")))[-1]
    assert await _steps(dialogue.on_state(LOOKING_UP)) == []
    assert await _steps(dialogue.on_state(NARRATING)) == []
    order = {"order_number": "DX1042", "status_text": "out for delivery", "eta": "today"}
    steps = await _steps(dialogue.on_tool_result(call, {"found": True, "order": order, "state": "narrating"}))
    assert steps == ["Order DX1042 is out for delivery. Expected delivery: today. Is there anything else?"]


async def test_policy_dialogue_says_not_found_and_asks_again():
    """An unknown number gets the `order_not_found` reply naming the number heard."""
    dialogue = _dialogue()
    await _steps(dialogue.on_state(IDENTIFYING))
    call = (await _steps(dialogue.on_caller("five four three two one")))[-1]
    await _steps(dialogue.on_state(IDENTIFYING))
    steps = await _steps(dialogue.on_tool_result(call, {"found": False, "order_number": "54321"}))
    assert steps == ["I could not find order five four three two one. Please say the order number again."]


async def test_policy_dialogue_transfers_a_caller_who_asks_for_a_person():
    """The `human` intent says its line and calls transfer_to_human with the declared reason."""
    dialogue = _dialogue()
    await _steps(dialogue.on_state(IDENTIFYING))
    steps = await _steps(dialogue.on_caller("i want to speak to a person please"))
    assert steps[0] == "Of course."
    assert isinstance(steps[1], ToolCall)
    assert steps[1].name == "transfer_to_human"
    assert dict(steps[1].arguments) == {"reason": "caller asked for a person"}


async def test_policy_dialogue_asks_again_when_nothing_matched():
    """Words that are neither a number nor an intent get the `not_understood` reply."""
    dialogue = _dialogue()
    await _steps(dialogue.on_state(IDENTIFYING))
    assert await _steps(dialogue.on_caller("hello")) == [
        "Sorry, I did not catch that. Please say your order number, or ask for a person."
    ]


async def test_policy_dialogue_refuses_a_tool_the_state_does_not_allow():
    """Asking for a person where transfer_to_human is not allowed gets the `refused` reply."""
    dialogue = _dialogue()
    await _steps(dialogue.on_state(LOOKING_UP))
    assert await _steps(dialogue.on_caller("speak to a person")) == ["Sorry, I cannot do that right now."]
    assert not dialogue.expects_number()
