"""GeminiLiveBrain on its own against the loopback fake: audio rates, setup rules per model, state delivery, tools."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import aiohttp
import pytest
from google.genai import errors as genai_errors
from google.genai import types

from orchestrator.audio.synth import synthesize_speech
from orchestrator.brains.base import (
    AgentAudio,
    AgentUtteranceEnd,
    BrainEvent,
    CallInfo,
    Speech,
    StateBrief,
    StateDelivered,
    ToolCall,
    ToolDeclaration,
    TurnComplete,
)
from orchestrator.brains.capabilities import capabilities_for
from orchestrator.brains.gemini import GEMINI_OUTPUT_RATE, make_client
from orchestrator.script import AgentTurn, CallScript, SayStep, ToolStep
from tests.fakes.gemini_live import API_KEY, GENERATIONS, MODELS, FakeGeminiLive, Generation
from tests.fakes.tls import LoopbackTls, make_loopback_tls

LOOKUP = ToolDeclaration(
    name="lookup_order", description="Find an order.", parameters={"type": "object", "properties": {}}
)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> LoopbackTls:
    return make_loopback_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(params=GENERATIONS)
def generation(request: pytest.FixtureRequest) -> Generation:
    return request.param


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


async def test_gemini_brain_resamples_reply_audio_to_the_call_rate(tls, generation):
    """24 kHz model speech reaches an 8 kHz call as 8 kHz PCM of the same duration, with its transcript."""
    text = "Hello, how can I help you today?"
    script = CallScript(title="greeting", turns=[AgentTurn(agent=[SayStep(say=text)])])
    async with FakeGeminiLive(script, tls=tls, generation=generation) as fake:
        brain = fake.brain()
        await brain.start(_call(8000))
        await brain.enter_state(StateBrief(name="identifying", instructions="Greet the caller.", tools=()))
        events = await _until(brain.events(), (TurnComplete,))
        await brain.close()
    audio = b"".join(e.pcm for e in events if isinstance(e, AgentAudio))
    sent = len(synthesize_speech(text, rate=GEMINI_OUTPUT_RATE, pitch_hz=120.0))
    assert abs(len(audio) - sent // 3) <= 2 * 8000 * 2 // 100  # within 20 ms
    utterance_id = next(e for e in events if isinstance(e, AgentAudio)).utterance_id
    assert Speech(role="agent", text=text, utterance_id=utterance_id) in events
    assert isinstance(events[-3], AgentUtteranceEnd)  # then the transcript, then TurnComplete
    setup = json.dumps(fake.connections[0].setup)
    assert "Kore" in setup
    assert "responseModalities" in setup


async def test_gemini_brain_setup_follows_the_models_rules(tls, generation):
    """Every model: server barge-in off, no resumption handle key; 3.8: functions NON_BLOCKING."""
    script = CallScript(title="setup", turns=[AgentTurn(agent=[SayStep(say="Hello.")])])
    async with FakeGeminiLive(script, tls=tls, generation=generation) as fake:
        brain = fake.brain()
        await brain.start(_call(16000))
        await brain.enter_state(StateBrief(name="identifying", instructions="Greet.", tools=()))
        await _until(brain.events(), (TurnComplete,))
        await brain.close()
    setup = fake.connections[0].setup
    assert list(setup["realtimeInputConfig"].values()) == ["NO_INTERRUPTION"]  # either key spelling
    assert setup["sessionResumption"] == {}
    assert "historyConfig" not in setup  # no history to seed on a first connection
    (declaration,) = setup["tools"][0]["functionDeclarations"]
    assert declaration.get("behavior") == ("NON_BLOCKING" if generation == "3.8" else None)
    assert fake.connections[0].ended == "closed"


async def test_gemini_brain_delivers_state_by_the_rows_text_channel(tls, generation):
    """With no tool call waiting, a state's instructions go as client content on 2.5, realtime text on 3.x."""
    script = CallScript(title="state", turns=[AgentTurn(agent=[SayStep(say="Which order?")])])
    async with FakeGeminiLive(script, tls=tls, generation=generation) as fake:
        brain = fake.brain()
        await brain.start(_call(16000))
        brief = StateBrief(name="identifying", instructions="Ask for the order number.", tools=("lookup_order",))
        await brain.enter_state(brief)
        events = await _until(brain.events(), (TurnComplete,))
        await brain.close()
    connection = fake.connections[0]
    channel = "client_content" if generation == "2.5" else "realtime_text"
    assert StateDelivered(state="identifying", via=channel) in events
    texts = connection.client_texts if generation == "2.5" else connection.realtime_texts
    assert texts == ["(The call is now at step 'identifying'.) Ask for the order number."]
    assert connection.context_updates == []  # no row is known to honour them


async def test_gemini_brain_sends_context_updates_when_configured(tls, generation):
    """context_updates=True adds a context update: the instruction with the step and only the allowed tools."""
    script = CallScript(title="state", turns=[AgentTurn(agent=[SayStep(say="Which order?")])])
    async with FakeGeminiLive(script, tls=tls, generation=generation) as fake:
        brain = fake.brain(context_updates=True)
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
    assert connection.ended == "closed"  # no model refuses a context update


async def test_gemini_brain_forwards_a_refused_tool_call(tls, generation):
    """A tool call the state does not allow is answered with the session's refusal and the allowed tools."""
    script = CallScript(title="refused", turns=[AgentTurn(agent=[ToolStep(tool="lookup_order")])])
    async with FakeGeminiLive(script, tls=tls, generation=generation) as fake:
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
    # 3.8 calls functions asynchronously: the answer is spoken once the model is idle, not over the caller.
    assert response.get("scheduling") == ("WHEN_IDLE" if generation == "3.8" else None)


async def test_gemini_brain_close_ends_events(tls, generation):
    """After close(), events() finishes instead of waiting forever."""
    script = CallScript(title="quiet", turns=[])
    async with FakeGeminiLive(script, tls=tls, generation=generation) as fake:
        brain = fake.brain()
        await brain.start(_call(16000))
        await brain.close()
        async with asyncio.timeout(5):
            assert [e async for e in brain.events()] == []


async def test_gemini_brain_unknown_model_follows_the_strictest_rules(tls):
    """A model name no row knows, on a strict (3.1) server: text goes as realtime input, nothing is refused."""
    script = CallScript(title="unknown", turns=[AgentTurn(agent=[SayStep(say="Hello.")])])
    async with FakeGeminiLive(script, tls=tls, generation="3.1") as fake:
        brain = fake.brain(model="gemini-next-live")
        await brain.start(_call(16000))
        await brain.enter_state(StateBrief(name="identifying", instructions="Greet.", tools=()))
        events = await _until(brain.events(), (TurnComplete,))
        await brain.close()
    assert StateDelivered(state="identifying", via="realtime_text") in events
    assert fake.connections[0].client_texts == []
    assert fake.connections[0].ended == "closed"


async def test_gemini_fake_3x_closes_on_client_content_mid_call(tls):
    """The 3.1 fake says no like Gemini 3.1: a 2.5-style text turn mid-call ends the session with 1007."""
    script = CallScript(title="strict", turns=[AgentTurn(agent=[SayStep(say="Hello.")])])
    async with FakeGeminiLive(script, tls=tls, generation="3.1") as fake:
        # The 2.5 row sends text as client content: the wrong rules for this server.
        brain = fake.brain(model="gemini-2.5-flash-native-audio-preview-12-2025")
        await brain.start(_call(16000))
        await brain.enter_state(StateBrief(name="identifying", instructions="Greet.", tools=()))
        async with asyncio.timeout(5):
            while len(fake.connections) < 2:  # refused, then the brain's one reconnection  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        await brain.close()
    assert fake.connections[0].ended == "1007 client content after the initial history"


@pytest.mark.parametrize(
    ("send", "why"),
    [
        ({"media": types.Blob(data=b"\0\0" * 160, mime_type="audio/pcm;rate=16000")}, "deprecated mediaChunks"),
        ({"audio": types.Blob(data=b"\0\0" * 160, mime_type="audio/pcm;rate=16000")}, None),
    ],
    ids=["media", "audio"],
)
async def test_gemini_fake_3x_refuses_deprecated_media_chunks(tls, send, why):
    """`send_realtime_input(media=...)` (mediaChunks) ends a 3.x session with 1007; `audio=` is taken."""
    async with FakeGeminiLive(CallScript(title="media", turns=[]), tls=tls, generation="3.8") as fake:
        client = make_client(fake.config())
        try:
            async with client.aio.live.connect(model="gemini-3.8-live", config=types.LiveConnectConfig()) as session:
                await session.send_realtime_input(**send)
                if why is not None:
                    with pytest.raises(genai_errors.APIError, match="1007"):
                        await _drain(session)
        finally:
            await client.aio.aclose()
            client.close()
    expected = f"1007 {why}" if why else "closed"
    assert fake.connections[0].ended == expected


@pytest.mark.parametrize(("generation", "ended"), [("2.5", "closed"), ("3.1", "1007 null resumption handle")])
async def test_gemini_fake_3x_refuses_a_null_resumption_handle(tls, generation, ended):
    """`sessionResumption: {"handle": null}` (what a client sends for "no handle" if it does not drop nulls):
    2.5 takes it, 3.x closes the session with 1007. The brain sends `{}` instead (see the setup test)."""
    setup = {"setup": {"model": f"models/{MODELS[generation]}", "sessionResumption": {"handle": None}}}
    async with FakeGeminiLive(CallScript(title="handle", turns=[]), tls=tls, generation=generation) as fake:
        url = fake.base_url + "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
        async with (
            aiohttp.ClientSession() as http,
            http.ws_connect(url, ssl=tls.client, headers={"x-goog-api-key": API_KEY}) as ws,
        ):
            await ws.send_json(setup)
            reply = await ws.receive(timeout=5)
            if generation == "2.5":
                assert reply.json() == {"setupComplete": {}}
                await ws.close()
            else:
                assert reply.type == aiohttp.WSMsgType.CLOSE
                assert ws.close_code == 1007
    assert fake.connections[0].ended == ended


async def _drain(session) -> None:
    async with asyncio.timeout(5):
        async for _ in session.receive():
            pass


async def test_gemini_brain_reconnect_strategy_carries_the_state_in_a_new_setup(tls):
    """A row whose only strategy is `reconnect`: between turns the brain moves to a new connection whose
    setup's system instruction holds the new step."""
    row = replace(capabilities_for("gemini", MODELS["3.1"]), delivery=("tool_result", "reconnect"))
    script = CallScript(title="reconnect", turns=[])
    async with FakeGeminiLive(script, tls=tls, generation="3.1") as fake:
        brain = fake.brain(capabilities=row)
        await brain.start(_call(16000))
        async with asyncio.timeout(5):
            while not fake.connections:  # noqa: ASYNC110 - the fake records connections as they come
                await asyncio.sleep(0.01)
        await brain.enter_state(StateBrief(name="identifying", instructions="Ask for the number.", tools=()))
        events = await _until(brain.events(), (StateDelivered,))
        async with asyncio.timeout(5):
            while len(fake.connections) < 2:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        await brain.close()
    assert events[-1] == StateDelivered(state="identifying", via="reconnect")
    first, second = fake.connections
    assert "Current step" not in str(first.setup.get("systemInstruction"))
    assert "Current step (identifying): Ask for the number." in str(second.setup["systemInstruction"])
    assert first.text_turns == second.text_turns == []
    assert first.ended == "closed"


async def test_gemini_brain_on_a_two_language_line_is_told_how_to_switch(tls):
    """The system instruction names the call's language, the line's others, and set_language to switch."""
    script = CallScript(title="setup", turns=[AgentTurn(agent=[SayStep(say="Habari.")])])
    call = replace(_call(16000), language="sw-KE", languages=("en-KE", "sw-KE"))
    async with FakeGeminiLive(script, tls=tls, generation=GENERATIONS[-1]) as fake:
        brain = fake.brain()
        await brain.start(call)
        await brain.enter_state(StateBrief(name="identifying", instructions="Greet.", tools=()))
        await _until(brain.events(), (TurnComplete,))
        await brain.close()
    setup = json.dumps(fake.connections[0].setup)
    assert "The caller's language and locale: sw-KE." in setup
    assert "This line also speaks en-KE" in setup
