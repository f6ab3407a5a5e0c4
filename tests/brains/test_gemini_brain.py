"""GeminiLiveBrain on its own against the loopback fake: audio rates, state delivery, tool results."""

from __future__ import annotations

import asyncio
import json

import pytest

from orchestrator.audio.synth import synthesize_speech
from orchestrator.brains.base import (
    AgentAudio,
    AgentUtteranceEnd,
    BrainEvent,
    CallInfo,
    Speech,
    StateBrief,
    ToolCall,
    ToolDeclaration,
    TurnComplete,
)
from orchestrator.brains.gemini import GEMINI_OUTPUT_RATE
from orchestrator.script import AgentTurn, CallScript, SayStep, ToolStep
from tests.fakes.gemini_live import FakeGeminiLive
from tests.fakes.tls import LoopbackTls, make_loopback_tls

LOOKUP = ToolDeclaration(
    name="lookup_order", description="Find an order.", parameters={"type": "object", "properties": {}}
)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> LoopbackTls:
    return make_loopback_tls(tmp_path_factory.mktemp("tls"))


def _call(rate: int) -> CallInfo:
    return CallInfo(
        call_sid="CA_brain",
        caller="+254700000001",
        sample_rate=rate,
        system_prompt="You help callers find their orders.",
        voice="Kore",
        language="en-KE",
        tools=(LOOKUP,),
    )


async def _until(events, kinds: tuple[type, ...]) -> list[BrainEvent]:
    seen: list[BrainEvent] = []
    async with asyncio.timeout(10):
        async for event in events:
            seen.append(event)
            if isinstance(event, kinds):
                return seen
    return seen


async def test_gemini_brain_resamples_reply_audio_to_the_call_rate(tls):
    """24 kHz model speech reaches an 8 kHz call as 8 kHz PCM of the same duration, with its transcript."""
    text = "Hello, how can I help you today?"
    script = CallScript(title="greeting", turns=[AgentTurn(agent=[SayStep(say=text)])])
    async with FakeGeminiLive(script, tls=tls) as fake:
        brain = fake.brain()
        await brain.start(_call(8000))
        await brain.enter_state(StateBrief(name="identifying", instructions="Greet the caller.", tools=()))
        events = await _until(brain.events(), (TurnComplete,))
        await brain.close()
    audio = b"".join(e.pcm for e in events if isinstance(e, AgentAudio))
    sent = len(synthesize_speech(text, rate=GEMINI_OUTPUT_RATE, pitch_hz=120.0))
    assert abs(len(audio) - sent // 3) <= 2 * 8000 * 2 // 100  # within 20 ms
    assert Speech(role="agent", text=text, utterance_id=events[0].utterance_id) in events
    assert isinstance(events[-3], AgentUtteranceEnd)  # then the transcript, then TurnComplete
    setup = json.dumps(fake.connections[0].setup)
    assert "Kore" in setup
    assert "responseModalities" in setup


async def test_gemini_brain_delivers_state_instructions_and_tools(tls):
    """Entering a state sends a context update (instructions, allowed tools) and a turn that acts on it."""
    script = CallScript(title="state", turns=[AgentTurn(agent=[SayStep(say="Which order?")])])
    async with FakeGeminiLive(script, tls=tls) as fake:
        brain = fake.brain()
        await brain.start(_call(16000))
        brief = StateBrief(name="identifying", instructions="Ask for the order number.", tools=("lookup_order",))
        await brain.enter_state(brief)
        await _until(brain.events(), (TurnComplete,))
        await brain.close()
    connection = fake.connections[0]
    update = json.dumps(connection.context_updates[0])
    assert "Current step (identifying): Ask for the order number." in update
    assert "Tools you may call now: lookup_order." in update
    assert "lookup_order" in json.dumps(connection.context_updates[0].get("tools"))
    assert connection.text_turns[0].endswith("Ask for the order number.")


async def test_gemini_brain_forwards_a_refused_tool_call(tls):
    """A tool call the state does not allow is answered with the session's refusal and the allowed tools."""
    script = CallScript(title="refused", turns=[AgentTurn(agent=[ToolStep(tool="lookup_order")])])
    async with FakeGeminiLive(script, tls=tls) as fake:
        brain = fake.brain()
        await brain.start(_call(16000))
        await brain.enter_state(StateBrief(name="looking_up", instructions="Wait.", tools=()))
        call = (await _until(brain.events(), (ToolCall,)))[-1]
        assert isinstance(call, ToolCall)
        refusal = {"error": "lookup_order is not available now", "state": "looking_up"}
        await brain.tool_result(call, refusal)
        await _until(brain.events(), (TurnComplete,))
        await brain.close()
    response = fake.connections[0].tool_responses[0]
    assert response["id"] == call.call_id
    assert response["response"] == {**refusal, "allowed_tools": []}


async def test_gemini_brain_close_ends_events(tls):
    """After close(), events() finishes instead of waiting forever."""
    script = CallScript(title="quiet", turns=[])
    async with FakeGeminiLive(script, tls=tls) as fake:
        brain = fake.brain()
        await brain.start(_call(16000))
        await brain.close()
        async with asyncio.timeout(5):
            assert [e async for e in brain.events()] == []
