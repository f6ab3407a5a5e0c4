"""OpenAIRealtimeBrain against the fake server: the wire messages behind each method."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import numpy as np
import pytest
from structlog.testing import capture_logs

from orchestrator.audio.synth import synthesize_speech
from orchestrator.brains.base import (
    AgentAudio,
    AgentUtteranceEnd,
    BrainEvent,
    BrainFailure,
    CallInfo,
    Heard,
    Speech,
    StateBrief,
    ToolCall,
    ToolDeclaration,
    TurnComplete,
)
from orchestrator.brains.openai_realtime import OpenAIRealtimeBrain, OpenAIRealtimeConfig
from orchestrator.script import CallScript
from tests.fakes.openai_realtime import FakeOpenAIRealtime, Fault

TOOLS = (
    ToolDeclaration(
        name="lookup_order",
        description="Find an order.",
        parameters={"type": "object", "properties": {"order_number": {"type": "string"}}},
    ),
    ToolDeclaration(
        name="end_call", description="Hang up.", parameters={"type": "object", "properties": {}}
    ),
)


def call_info(rate: int = 16000) -> CallInfo:
    return CallInfo(
        call_sid="HD_unit",
        caller="+254712345678",
        sample_rate=rate,
        system_prompt="You are the order-status assistant.",
        voice="en-us",
        language="en-KE",
        tools=TOOLS,
    )


def opening(*steps: dict[str, object]) -> CallScript:
    return CallScript.model_validate({"title": "unit", "turns": [{"agent": list(steps)}]})


async def collect(events: AsyncIterator[BrainEvent], until: type) -> list[BrainEvent]:
    seen: list[BrainEvent] = []
    async with asyncio.timeout(30):
        async for event in events:
            seen.append(event)
            if isinstance(event, until):
                return seen
    return seen


async def settle(fake: FakeOpenAIRealtime, kind: str, count: int = 1) -> None:
    async with asyncio.timeout(10):
        # The fake only records what it received; under looptime these sleeps take no real time.
        while len(fake.received_of(kind)) < count:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


@pytest.mark.looptime
async def test_openai_brain_configures_session_on_connect():
    """The first message is a full session.update: 24 kHz PCM both ways, turn detection, voice."""
    async with FakeOpenAIRealtime() as fake:
        brain = OpenAIRealtimeBrain(fake.config(turn_detection="semantic_vad", speak_first=False))
        await brain.start(call_info())
        await settle(fake, "session.update")
        await brain.close()
    session = fake.received[0]["session"]
    assert fake.received[0]["type"] == "session.update"
    assert session["type"] == "realtime"
    assert session["output_modalities"] == ["audio"]
    audio = session["audio"]
    assert audio["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert audio["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert audio["input"]["turn_detection"]["type"] == "semantic_vad"
    assert audio["input"]["transcription"]["language"] == "en"
    assert audio["output"]["voice"] == "marin"  # "en-us" is not an OpenAI voice
    assert [t["name"] for t in session["tools"]] == ["lookup_order", "end_call"]
    assert session["tools"][0]["type"] == "function"


@pytest.mark.looptime
async def test_openai_brain_enter_state_sends_instructions_and_allowed_tools():
    """enter_state adds the state's instructions to the system prompt and offers its tools."""
    async with FakeOpenAIRealtime() as fake:
        brain = OpenAIRealtimeBrain(fake.config(speak_first=False))
        await brain.start(call_info())
        await brain.enter_state(
            StateBrief(
                name="identifying",
                instructions="Ask for the order number.",
                tools=("lookup_order",),
            )
        )
        await brain.enter_state(StateBrief(name="looking_up", instructions=None, tools=()))
        await settle(fake, "session.update", 3)
        await brain.close()
    identifying, looking_up = (e["session"] for e in fake.received_of("session.update")[1:])
    assert identifying["instructions"].startswith("You are the order-status assistant.")
    assert identifying["instructions"].endswith("Ask for the order number.")
    assert [t["name"] for t in identifying["tools"]] == ["lookup_order"]
    assert identifying["tool_choice"] == "auto"
    assert looking_up["tools"] == []
    assert looking_up["tool_choice"] == "none"
    assert "Ask for the order number." not in looking_up["instructions"]


@pytest.mark.looptime
async def test_openai_brain_resamples_caller_audio_to_24k():
    """One second of 16 kHz caller audio reaches the server as one second of 24 kHz audio."""
    async with FakeOpenAIRealtime() as fake:
        brain = OpenAIRealtimeBrain(fake.config(speak_first=False))
        await brain.start(call_info(16000))
        pcm = (synthesize_speech("hello there", rate=16000) + bytes(16000 * 2))[: 16000 * 2]
        for start in range(0, len(pcm), 640):
            await brain.push_audio(pcm[start : start + 640])
        async with asyncio.timeout(10):
            # A byte count on the fake, nothing to wait on; looptime makes the polling free.
            while fake.audio_in_bytes < 24000 * 2 - 2000:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        await brain.close()
    assert 24000 * 2 - 2000 <= fake.audio_in_bytes <= 24000 * 2


@pytest.mark.parametrize("rate", [8000, 16000])
@pytest.mark.looptime
async def test_openai_brain_agent_audio_is_at_the_call_rate(rate):
    """The model's 24 kHz speech comes out at the call's rate, with transcript and turn end."""
    text = "How can I help you today?"
    async with FakeOpenAIRealtime(opening({"say": text})) as fake:
        brain = OpenAIRealtimeBrain(fake.config())
        await brain.start(call_info(rate))
        await brain.enter_state(StateBrief(name="identifying", instructions=None, tools=()))
        events = await collect(brain.events(), TurnComplete)
        await brain.close()
    audio = b"".join(e.pcm for e in events if isinstance(e, AgentAudio))
    expected = len(synthesize_speech(text, rate=24000)) * rate // 24000
    assert abs(len(audio) - expected) <= 64
    assert np.abs(np.frombuffer(audio, dtype="<i2")).max() > 1000
    speech = [e for e in events if isinstance(e, Speech)]
    assert speech == [Speech(role="agent", text=text, utterance_id=speech[0].utterance_id)]
    assert any(isinstance(e, AgentUtteranceEnd) for e in events)


@pytest.mark.looptime
async def test_openai_brain_tool_round_trip():
    """A function call becomes a ToolCall; its result goes back as a function_call_output."""
    script = opening(
        {"tool": "lookup_order", "args": {"order_number": "DX1042"}},
        {"say": "It is {{ result.status }}."},
    )
    async with FakeOpenAIRealtime(script) as fake:
        brain = OpenAIRealtimeBrain(fake.config())
        await brain.start(call_info())
        state = StateBrief(name="identifying", instructions=None, tools=("lookup_order",))
        await brain.enter_state(state)
        events = brain.events()
        call = (await collect(events, ToolCall))[-1]
        assert call.name == "lookup_order"
        assert call.arguments == {"order_number": "DX1042"}
        await brain.tool_result(call, {"status": "on its way"})
        after = await collect(events, TurnComplete)
        await brain.close()
    assert [e.text for e in after if isinstance(e, Speech)] == ["It is on its way."]
    (output,) = [e["item"] for e in fake.received_of("conversation.item.create")]
    assert output == {
        "type": "function_call_output",
        "call_id": call.call_id,
        "output": '{"status": "on its way"}',
    }
    assert fake.sent_of("error") == []


@pytest.mark.looptime
async def test_openai_brain_queues_say_behind_active_response():
    """Two says in a row: the second response.create waits for the first one's response.done."""
    async with FakeOpenAIRealtime() as fake:
        brain = OpenAIRealtimeBrain(fake.config(speak_first=False))
        await brain.start(call_info())
        await brain.say("Please hold.", utterance_id="flow-1")
        await brain.say("Still there?", utterance_id="flow-2")
        events = brain.events()
        first = await collect(events, Speech)
        second = await collect(events, Speech)
        await brain.close()
    assert first[-1] == Speech(role="agent", text="Please hold.", utterance_id="flow-1")
    assert second[-1] == Speech(role="agent", text="Still there?", utterance_id="flow-2")
    spoken = {e.utterance_id for e in first + second if isinstance(e, AgentAudio)}
    assert spoken == {"flow-1", "flow-2"}
    assert fake.sent_of("error") == []


@pytest.mark.looptime
async def test_openai_brain_interrupt_cancels_and_truncates():
    """interrupt(heard) cancels the active response and truncates its item at the played ms."""
    text = "Your order is out for delivery with PikiPiki and should arrive this afternoon."
    async with FakeOpenAIRealtime(opening({"say": text}), pace=2.0) as fake:
        brain = OpenAIRealtimeBrain(fake.config())
        await brain.start(call_info())
        await brain.enter_state(StateBrief(name="narrating", instructions=None, tools=()))
        events = brain.events()
        first = (await collect(events, AgentAudio))[-1]
        await brain.interrupt(Heard(utterance_id=first.utterance_id, played_ms=40, total_ms=4000))
        await settle(fake, "conversation.item.truncate")
        await settle(fake, "response.cancel")
        await brain.close()
    (truncate,) = fake.received_of("conversation.item.truncate")
    assert truncate == {
        "type": "conversation.item.truncate",
        "item_id": first.utterance_id,
        "content_index": 0,
        "audio_end_ms": 40,
    }
    assert [e["response"]["status"] for e in fake.sent_of("response.done")] == ["cancelled"]
    assert fake.sent_of("error") == []


@pytest.mark.looptime
async def test_openai_brain_truncate_never_passes_generated_audio():
    """A played position past the audio generated is capped, so the server accepts the truncate."""
    async with FakeOpenAIRealtime(opening({"say": "Hello."}), pace=2.0) as fake:
        brain = OpenAIRealtimeBrain(fake.config())
        await brain.start(call_info())
        await brain.enter_state(StateBrief(name="narrating", instructions=None, tools=()))
        events = brain.events()
        first = (await collect(events, AgentAudio))[-1]
        heard = Heard(utterance_id=first.utterance_id, played_ms=60_000, total_ms=60_000)
        await brain.interrupt(heard)
        await settle(fake, "conversation.item.truncate")
        await brain.close()
    (truncate,) = fake.received_of("conversation.item.truncate")
    assert 0 < truncate["audio_end_ms"] <= 100
    assert fake.sent_of("error") == []


@pytest.mark.looptime
async def test_openai_brain_server_speech_started_mutes_the_response():
    """With server_barge_in on, the server hearing the caller mutes the rest of that response."""
    text = "Your order is out for delivery with PikiPiki and should arrive this afternoon."
    async with FakeOpenAIRealtime(opening({"say": text}), pace=2.0) as fake:
        brain = OpenAIRealtimeBrain(fake.config(server_barge_in=True))
        await brain.start(call_info())
        await brain.enter_state(StateBrief(name="narrating", instructions=None, tools=()))
        events = brain.events()
        await collect(events, AgentAudio)
        speech = synthesize_speech("wait a moment please", rate=16000) + bytes(16000)
        for start in range(0, len(speech), 640):
            await brain.push_audio(speech[start : start + 640])
            await asyncio.sleep(0.02)
        seen = await collect(events, AgentUtteranceEnd)
        await brain.close()
    assert fake.sent_of("input_audio_buffer.speech_started")
    audio_ms = sum(len(e.pcm) for e in seen if isinstance(e, AgentAudio)) / 32
    assert audio_ms < len(synthesize_speech(text, rate=24000)) / 48 / 2


@pytest.mark.looptime
async def test_openai_brain_logs_and_skips_one_malformed_message():
    """A frame that is not JSON is logged and counted; the brain stays connected and healthy."""
    script = CallScript.model_validate({"title": "unit", "turns": [{"agent": [{"say": "Hi."}]}]})
    faults = (Fault(action="malformed", on_connection=1),)
    async with FakeOpenAIRealtime(script, faults=faults) as fake:
        brain = OpenAIRealtimeBrain(fake.config())
        with capture_logs() as logs:
            await brain.start(call_info())
            await brain.enter_state(StateBrief(name="identifying", instructions=None, tools=()))
            events = await collect(brain.events(), TurnComplete)
        await brain.close()
    assert [e["what"] for e in logs if e["event"] == "openai_malformed_message"] == ["not JSON"]
    assert not any(isinstance(e, BrainFailure) for e in events)
    assert fake.connections == 1


@pytest.mark.looptime
async def test_openai_brain_wrong_key_fails_without_retrying():
    """HTTP 401 at connect is not fixed by retrying: one attempt, then a BrainFailure."""
    async with FakeOpenAIRealtime() as fake:
        config = OpenAIRealtimeConfig.from_env(
            {"OPENAI_API_KEY": "sk-wrong"}, url=fake.url, heartbeat_s=None
        )
        brain = OpenAIRealtimeBrain(config)
        await brain.start(call_info())
        (failure,) = await collect(brain.events(), BrainFailure)
        await brain.close()
    assert failure == BrainFailure(reason="OpenAI Realtime refused the connection (HTTP 401)")
    assert fake.attempts == 1


@pytest.mark.looptime
async def test_openai_brain_unreachable_host_fails_cleanly():
    """Nothing listens at the URL: after one retry, a BrainFailure (start never raises)."""
    async with FakeOpenAIRealtime() as fake:
        url = fake.url
    brain = OpenAIRealtimeBrain(OpenAIRealtimeConfig.from_env({"OPENAI_API_KEY": "sk-x"}, url=url))
    await brain.start(call_info())
    (failure,) = await collect(brain.events(), BrainFailure)
    await brain.close()
    assert failure.reason.startswith("cannot connect to OpenAI Realtime")


@pytest.mark.looptime
async def test_openai_brain_close_ends_events():
    """close() ends the events() stream, and closing twice is harmless."""
    async with FakeOpenAIRealtime() as fake:
        brain = OpenAIRealtimeBrain(fake.config(speak_first=False))
        await brain.start(call_info())
        await brain.close()
        await brain.close()
        assert [e async for e in brain.events()] == []


@pytest.mark.looptime
async def test_openai_brain_without_server_barge_in_leaves_interruptions_to_the_session():
    """server_barge_in=False turns off interrupt_response: the caller's sound does not cut the reply."""
    text = "Your order is out for delivery with PikiPiki and should arrive this afternoon."
    async with FakeOpenAIRealtime(opening({"say": text}), pace=2.0) as fake:
        brain = OpenAIRealtimeBrain(fake.config(server_barge_in=False))
        await brain.start(call_info())
        await brain.enter_state(StateBrief(name="narrating", instructions=None, tools=()))
        events = brain.events()
        await collect(events, AgentAudio)
        speech = synthesize_speech("wait a moment please", rate=16000) + bytes(16000)
        for start in range(0, len(speech), 640):
            await brain.push_audio(speech[start : start + 640])
            await asyncio.sleep(0.02)
        seen = await collect(events, AgentUtteranceEnd)
        await brain.close()
    detection = fake.received[0]["session"]["audio"]["input"]["turn_detection"]
    assert detection["interrupt_response"] is False
    assert fake.sent_of("input_audio_buffer.speech_started")
    audio_ms = sum(len(e.pcm) for e in seen if isinstance(e, AgentAudio)) / 32
    assert audio_ms > len(synthesize_speech(text, rate=24000)) / 48 - 200


@pytest.mark.looptime
async def test_openai_brain_on_a_two_language_line_detects_the_language_and_may_switch():
    """A line of en-KE and sw-KE: transcription detects the language, and the instructions offer set_language."""
    call = replace(call_info(), language="sw-KE", languages=("en-KE", "sw-KE"))
    async with FakeOpenAIRealtime() as fake:
        brain = OpenAIRealtimeBrain(fake.config(speak_first=False))
        await brain.start(call)
        await settle(fake, "session.update")
        await brain.close()
    session = fake.received[0]["session"]
    assert "language" not in session["audio"]["input"]["transcription"]
    assert "The caller's language and locale: sw-KE." in session["instructions"]
    assert "This line also speaks en-KE" in session["instructions"]
    assert "call set_language" in session["instructions"]
