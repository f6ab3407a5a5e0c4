"""LLM brains get a keypad entry as the caller's line of text, over their real wire protocols (local fakes)."""

from __future__ import annotations

import pytest

from orchestrator.brains.base import Keypad, StateBrief, TurnComplete
from orchestrator.brains.chat import ChatCompletionsClient, ChatDialogue, ChatSettings
from orchestrator.brains.openai_realtime import OpenAIRealtimeBrain
from orchestrator.script import AgentTurn, CallScript, SayStep
from tests.brains.test_gemini_brain import _call, _until, generation, tls  # noqa: F401 (fixtures)
from tests.brains.test_cascade_chat import CALL
from tests.brains.test_openai_brain import call_info, settle
from tests.fakes.chat_completions import FakeChatServer, FakeReply
from tests.fakes.gemini_live import FakeGeminiLive
from tests.fakes.openai_realtime import FakeOpenAIRealtime

TYPED = Keypad(digits="1042", intent="order_number", end="#")


async def test_gemini_brain_sends_a_keypad_entry_as_text(tls, generation) -> None:  # noqa: F811
    """The entry goes on the row's text channel as "[caller pressed 1 0 4 2 #]"."""
    script = CallScript(title="keys", turns=[AgentTurn(agent=[SayStep(say="Checking.")])])
    async with FakeGeminiLive(script, tls=tls, generation=generation) as fake:
        brain = fake.brain()
        await brain.start(_call(16000))
        await brain.keypad(TYPED)
        await _until(brain.events(), (TurnComplete,))
        await brain.close()
    connection = fake.connections[0]
    texts = connection.client_texts if generation == "2.5" else connection.realtime_texts
    assert texts == ["[caller pressed 1 0 4 2 #]"]


@pytest.mark.looptime
async def test_openai_brain_sends_a_keypad_entry_as_a_user_message_and_asks_for_a_reply() -> None:
    """The entry is a user message with input_text, then a response is requested."""
    async with FakeOpenAIRealtime() as fake:
        brain = OpenAIRealtimeBrain(fake.config(speak_first=False))
        await brain.start(call_info())
        await brain.enter_state(StateBrief(name="identifying", instructions=None, tools=()))
        await brain.keypad(TYPED)
        await settle(fake, "response.create")
        await brain.close()
    (item,) = [e["item"] for e in fake.received_of("conversation.item.create")]
    assert item["role"] == "user"
    assert item["content"] == [{"type": "input_text", "text": "[caller pressed 1 0 4 2 #]"}]


async def test_chat_dialogue_sends_a_keypad_entry_as_the_users_message(aiohttp_server) -> None:
    """A chat-completions model reads the entry as the user's turn and answers it."""
    fake = FakeChatServer(replies=[FakeReply(text="Checking order DX1042.")])
    server = await aiohttp_server(fake.app())
    settings = ChatSettings(base_url=str(server.make_url("/v1")), model="fake-model", timeout_s=5)
    dialogue = ChatDialogue(ChatCompletionsClient(settings))
    dialogue.begin(CALL)
    steps = [step async for step in dialogue.on_keypad(TYPED)]
    assert steps == ["Checking order DX1042."]
    assert fake.requests[0]["messages"][-1] == {  # type: ignore[index]
        "role": "user",
        "content": "[caller pressed 1 0 4 2 #]",
    }
