"""The chat-LLM step: an OpenAI-compatible client against a local fake server, alone and inside whole calls."""


import pytest

from orchestrator.brains.base import CallInfo, StateBrief, ToolCall, ToolDeclaration
from orchestrator.brains.cascade import make_chat_brain_factory
from orchestrator.brains.chat import (
    ChatCompletionsClient,
    ChatDialogue,
    ChatError,
    ChatMessage,
    ChatSettings,
    TextDelta,
)
from orchestrator.flow import load_flow
from orchestrator.simulator import SimulatorOptions
from orchestrator.speech.asr import Recognition
from orchestrator.speech.voices import caller_voice
from orchestrator.testing import run_scripted_call
from tests.fakes.chat_completions import FakeChatServer, FakeReply, FakeToolCall
from tests.flows import OFFLINE_SCRIPTS, ORDER_STATUS

FLOW = load_flow(ORDER_STATUS)
LOOKUP = ToolDeclaration(name="lookup_order", description="Find an order.", parameters={"type": "object"})
CALL = CallInfo(call_sid="HD_1", caller=None, sample_rate=16000, system_prompt="Be brief.",
                voice="en-us", language="en", tools=(LOOKUP,))


async def _serve(aiohttp_server, replies: list[FakeReply]) -> tuple[FakeChatServer, ChatSettings]:
    fake = FakeChatServer(replies=replies)
    server = await aiohttp_server(fake.app())
    return fake, ChatSettings(base_url=str(server.make_url("/v1")), model="fake-model", timeout_s=5)


async def test_chat_client_streams_text_then_assembled_tool_calls(aiohttp_server):
    """Text arrives in pieces; a tool call's arguments split across chunks come back as one ToolCall."""
    fake, settings = await _serve(aiohttp_server, [
        FakeReply(text="Let me check.", tool_calls=(FakeToolCall(name="lookup_order",
                                                               arguments={"order_number": "DX1042"}),)),
    ])
    client = ChatCompletionsClient(settings)
    try:
        items = [i async for i in client.stream([ChatMessage(role="user", content="DX1042")], [LOOKUP])]
    finally:
        await client.aclose()
    assert "".join(i.text for i in items if isinstance(i, TextDelta)) == "Let me check."
    assert items[-1] == ToolCall(call_id="call_0_0", name="lookup_order", arguments={"order_number": "DX1042"})
    assert fake.requests[0]["stream"] is True
    assert fake.requests[0]["tools"][0]["function"]["name"] == "lookup_order"  # type: ignore[index]


@pytest.mark.parametrize("fault", ["http_500", "malformed", "drop"])
async def test_chat_client_turns_every_fault_into_chat_error(aiohttp_server, fault):
    """An HTTP error, an unreadable chunk or a dropped connection is a ChatError, nothing else."""
    _, settings = await _serve(aiohttp_server, [FakeReply(text="Hello there.", fault=fault)])
    client = ChatCompletionsClient(settings)
    try:
        with pytest.raises(ChatError):
            _ = [i async for i in client.stream([ChatMessage(role="user", content="hi")], [])]
    finally:
        await client.aclose()


async def test_chat_client_unreachable_server_is_chat_error():
    """Nothing listening on the port is a ChatError, within the connect timeout."""
    client = ChatCompletionsClient(ChatSettings(base_url="http://127.0.0.1:9/v1", model="m", timeout_s=2))
    try:
        with pytest.raises(ChatError):
            _ = [i async for i in client.stream([ChatMessage(role="user", content="hi")], [])]
    finally:
        await client.aclose()


async def test_chat_dialogue_yields_each_sentence_as_soon_as_it_is_complete(aiohttp_server):
    """Two sentences come out as two steps, so speech can start on the first."""
    fake, settings = await _serve(aiohttp_server, [FakeReply(text="Hello! What is your order number?")])
    dialogue = ChatDialogue(ChatCompletionsClient(settings))
    dialogue.begin(CALL)
    state = StateBrief(name="identifying", instructions="Ask for the number.", tools=("lookup_order",))
    steps = [s async for s in dialogue.on_state(state)]
    assert steps == ["Hello!", "What is your order number?"]
    sent = fake.requests[0]["messages"]
    assert sent[-1] == {"role": "system",  # type: ignore[index]
                        "content": "The call is now in state 'identifying'. Ask for the number."}


async def test_chat_dialogue_adds_no_prompt_when_the_session_speaks_one(aiohttp_server):
    """A silence reprompt's `say` replaces the state's prompt: the model hears it said and is not asked."""
    fake, settings = await _serve(aiohttp_server, [FakeReply(text="What is your order number?")])
    dialogue = ChatDialogue(ChatCompletionsClient(settings))
    dialogue.begin(CALL)
    state = StateBrief(
        name="identifying", instructions="Ask for the number.", tools=("lookup_order",), say="Are you still there?"
    )
    assert [s async for s in dialogue.on_state(state)] == []
    assert fake.requests == []
    assert dialogue.messages[-1] == ChatMessage(role="assistant", content="Are you still there?")


async def test_chat_dialogue_keeps_only_what_the_caller_heard(aiohttp_server):
    """After a barge-in, the assistant's last message is cut to the words actually played."""
    _, settings = await _serve(aiohttp_server, [FakeReply(text="Your order is out for delivery today.")])
    dialogue = ChatDialogue(ChatCompletionsClient(settings))
    dialogue.begin(CALL)
    heard = Recognition(text="where is my order", search="numbers", speech_ms=900, decode_ms=30.0)
    _ = [s async for s in dialogue.on_caller(heard)]
    dialogue.on_interrupted("Your order is")
    assert dialogue.messages[-1] == ChatMessage(role="assistant", content="Your order is")


@pytest.mark.looptime
async def test_cascade_chat_call_looks_up_and_ends(aiohttp_server):
    """A whole call: the model asks, the caller's spoken number reaches it, its tool calls drive the flow."""
    fake, settings = await _serve(aiohttp_server, [
        FakeReply(text="Hello! What is your order number?"),
        FakeReply(tool_calls=(FakeToolCall(name="lookup_order", arguments={"order_number": "DX1042"}),)),
        FakeReply(text="Order DX1042 is out for delivery. Anything else?"),
        FakeReply(text="Goodbye!", tool_calls=(FakeToolCall(name="end_call"),)),
    ])
    record = await run_scripted_call(
        OFFLINE_SCRIPTS / "chat_track_by_number.yaml",
        flow=FLOW,
        brain_factory=make_chat_brain_factory(FLOW, settings),
        simulator=SimulatorOptions(voice=caller_voice("kal16")),
    )
    transcript = record.render()
    assert 'lookup_order {"order_number": "DX1042"}' in transcript
    assert '"Order DX1042 is out for delivery."' in transcript
    assert record.transcript.outcome == "resolved"
    users = [m for body in fake.requests for m in body["messages"] if m["role"] == "user"]  # type: ignore[union-attr]
    assert users[0]["content"].endswith("d x one oh four two")
    tool_results = [m for m in fake.requests[2]["messages"] if m["role"] == "tool"]  # type: ignore[union-attr]
    assert '"found": true' in tool_results[0]["content"]


@pytest.mark.looptime
async def test_cascade_chat_call_escalates_when_the_model_fails(aiohttp_server):
    """A chat endpoint error mid-call becomes brain_failed: apology route, escalation to a person."""
    _, settings = await _serve(aiohttp_server, [
        FakeReply(text="Hello! What is your order number?"),
        FakeReply(fault="http_500"),
    ])
    record = await run_scripted_call(
        OFFLINE_SCRIPTS / "chat_track_by_number.yaml",
        flow=FLOW,
        brain_factory=make_chat_brain_factory(FLOW, settings),
        simulator=SimulatorOptions(voice=caller_voice("kal16")),
    )
    assert "brain failed" in record.render()
    assert record.transcript.outcome == "escalated"
