"""The chat-LLM step of the cascade: an OpenAI-compatible `/chat/completions` client and the Dialogue over it.

Works with anything that speaks that API (Ollama, llama.cpp's server, vLLM): streamed tokens over
server-sent events, tool calls assembled from their streamed fragments. `ChatDialogue` keeps the
conversation, tells the model each state's instructions as they come, offers only the tools the state
allows, and yields each sentence as soon as it is complete so speech can start on the first one.
httpx and wire-format errors become `ChatError` here, at the one boundary.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from orchestrator.brains.base import (
    CallInfo,
    JSONValue,
    Keypad,
    StateBrief,
    ToolCall,
    ToolDeclaration,
    language_instruction,
)
from orchestrator.errors import BrainError
from orchestrator.speech.asr import Recognition

__all__ = [
    "ChatCompletionsClient",
    "ChatDialogue",
    "ChatError",
    "ChatMessage",
    "ChatSettings",
    "TextDelta",
]

_SENTENCE_END = re.compile(r"[.!?]\s")


class ChatError(BrainError):
    """The chat endpoint failed: timeout, HTTP error, or a stream we cannot read."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatSettings:
    """Where the OpenAI-compatible server is and how long to wait for it."""

    base_url: str  # e.g. http://127.0.0.1:11434/v1 for Ollama
    model: str
    api_key: str | None = None
    timeout_s: float = 20.0
    connect_timeout_s: float = 5.0
    temperature: float = 0.3


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatMessage:
    role: Literal["system", "user", "assistant", "tool"]
    content: str = ""
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TextDelta:
    text: str


# --- the wire: pydantic only here ---------------------------------------------------------


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _FunctionDelta(_Wire):
    name: str | None = None
    arguments: str | None = None


class _ToolCallDelta(_Wire):
    index: int = 0
    id: str | None = None
    function: _FunctionDelta | None = None


class _Delta(_Wire):
    content: str | None = None
    tool_calls: list[_ToolCallDelta] | None = None


class _Choice(_Wire):
    delta: _Delta = _Delta()


class _Chunk(_Wire):
    choices: list[_Choice] = []


@dataclass(slots=True)
class _ToolCallParts:
    call_id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


def _message_json(message: ChatMessage) -> dict[str, JSONValue]:
    out: dict[str, JSONValue] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = [
            {
                "id": call.call_id,
                "type": "function",
                "function": {"name": call.name, "arguments": json.dumps(dict(call.arguments))},
            }
            for call in message.tool_calls
        ]
    if message.tool_call_id is not None:
        out["tool_call_id"] = message.tool_call_id
    return out


def _tool_json(tool: ToolDeclaration) -> dict[str, JSONValue]:
    return {
        "type": "function",
        "function": {
            "name": tool.name,
            "description": tool.description,
            "parameters": dict(tool.parameters),
        },
    }


class ChatCompletionsClient:
    """Streams one completion at a time from an OpenAI-compatible server.

        client = ChatCompletionsClient(ChatSettings(base_url="http://127.0.0.1:11434/v1", model="qwen3"))
        async for item in client.stream(messages, tools):
            ...  # TextDelta pieces, then any ToolCall
        await client.aclose()
    """

    def __init__(
        self, settings: ChatSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._settings = settings
        headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
        self._http = httpx.AsyncClient(
            base_url=settings.base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s),
            transport=transport,
        )

    async def stream(
        self, messages: Sequence[ChatMessage], tools: Sequence[ToolDeclaration]
    ) -> AsyncIterator[TextDelta | ToolCall]:
        body: dict[str, JSONValue] = {
            "model": self._settings.model,
            "messages": [_message_json(m) for m in messages],
            "stream": True,
            "temperature": self._settings.temperature,
        }
        if tools:
            body["tools"] = [_tool_json(t) for t in tools]
        parts: dict[int, _ToolCallParts] = {}
        try:
            async with self._http.stream("POST", "chat/completions", json=body) as response:
                if response.status_code != 200:
                    detail = (await response.aread()).decode(errors="replace")[:200]
                    raise ChatError(f"chat endpoint answered {response.status_code}: {detail}")
                async for line in response.aiter_lines():
                    data = line.removeprefix("data:").strip() if line.startswith("data:") else ""
                    if not data:
                        continue
                    if data == "[DONE]":
                        break
                    for choice in _Chunk.model_validate_json(data).choices:
                        if choice.delta.content:
                            yield TextDelta(text=choice.delta.content)
                        for piece in choice.delta.tool_calls or ():
                            _merge(parts.setdefault(piece.index, _ToolCallParts()), piece)
        except httpx.TimeoutException as exc:
            raise ChatError(f"chat endpoint timed out: {exc!r}") from exc
        except httpx.HTTPError as exc:
            raise ChatError(f"chat endpoint unreachable: {exc!r}") from exc
        except ValidationError as exc:
            raise ChatError(
                f"unreadable chunk from chat endpoint: {exc.errors()[0]['msg']}"
            ) from exc
        for index in sorted(parts):
            yield _finish(parts[index], index)

    async def aclose(self) -> None:
        await self._http.aclose()


def _merge(parts: _ToolCallParts, piece: _ToolCallDelta) -> None:
    if piece.id:
        parts.call_id = piece.id
    if piece.function is not None:
        parts.name += piece.function.name or ""
        parts.arguments.append(piece.function.arguments or "")


def _finish(parts: _ToolCallParts, index: int) -> ToolCall:
    raw = "".join(parts.arguments).strip() or "{}"
    try:
        arguments = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ChatError(f"tool call {parts.name!r} has arguments that are not JSON") from exc
    if not isinstance(arguments, dict) or not parts.name:
        raise ChatError("a tool call needs a name and an object of arguments")
    return ToolCall(call_id=parts.call_id or f"call-{index}", name=parts.name, arguments=arguments)


class ChatDialogue:
    """A Dialogue driven by a chat model with tools; sentences are yielded as they complete."""

    def __init__(self, client: ChatCompletionsClient) -> None:
        self._client = client
        self._messages: list[ChatMessage] = []
        self._tools: dict[str, ToolDeclaration] = {}
        self._state = StateBrief(name="", instructions=None, tools=())
        self._pending: set[str] = set()

    def begin(self, call: CallInfo) -> None:
        self._tools = {tool.name: tool for tool in call.tools}
        prompt = call.system_prompt
        if len(call.languages) > 1:  # a line of several languages: say which, and how to switch
            prompt = f"{prompt.rstrip()}\n\n{language_instruction(call)}"
        self._messages = [ChatMessage(role="system", content=prompt)]

    def listening(self) -> str | None:
        return None  # a model may hear anything in any turn: the widest search

    @property
    def messages(self) -> tuple[ChatMessage, ...]:
        """The conversation so far, as the model will see it."""
        return tuple(self._messages)

    async def on_state(self, state: StateBrief) -> AsyncIterator[str | ToolCall]:
        self._state = state
        if state.instructions:
            note = f"The call is now in state {state.name!r}. {state.instructions}"
            self._messages.append(ChatMessage(role="system", content=note))
            if state.say is not None:  # the session speaks the prompt: the model only hears it said
                self._messages.append(ChatMessage(role="assistant", content=state.say))
            elif not self._pending:
                async for step in self._complete():
                    yield step

    async def on_caller(self, heard: Recognition) -> AsyncIterator[str | ToolCall]:
        if not heard.text:
            return  # nothing recognised: a model would only guess
        # Words the recogniser is unsure of are shown as such: the model should ask, not act on them.
        content = heard.text if heard.understood else f"[unclear, maybe: {heard.text}]"
        self._messages.append(ChatMessage(role="user", content=content))
        async for step in self._complete():
            yield step

    async def on_keypad(self, keys: Keypad) -> AsyncIterator[str | ToolCall]:
        """Typed keys reach the model as a line of their own: "[caller pressed 1 0 4 2 #]"."""
        self._messages.append(ChatMessage(role="user", content=keys.text))
        async for step in self._complete():
            yield step

    async def on_tool_result(
        self, call: ToolCall, result: Mapping[str, JSONValue]
    ) -> AsyncIterator[str | ToolCall]:
        self._pending.discard(call.call_id)
        content = json.dumps(dict(result), ensure_ascii=False, sort_keys=True)
        self._messages.append(ChatMessage(role="tool", content=content, tool_call_id=call.call_id))
        if not self._pending and (self._state.tools or self._state.instructions):
            async for step in self._complete():
                yield step

    def on_interrupted(self, heard: str) -> None:
        """Keep only what the caller heard of the agent's last message."""
        for index in range(len(self._messages) - 1, -1, -1):
            message = self._messages[index]
            if message.role == "assistant":
                self._messages[index] = ChatMessage(
                    role="assistant", content=heard, tool_calls=message.tool_calls
                )
                return
            if message.role == "user":
                break
        if heard:
            self._messages.append(ChatMessage(role="assistant", content=heard))

    async def _complete(self) -> AsyncIterator[str | ToolCall]:
        tools = [self._tools[name] for name in self._state.tools if name in self._tools]
        text = ""
        spoken = 0
        calls: list[ToolCall] = []
        async for item in self._client.stream(self._messages, tools):
            if isinstance(item, ToolCall):
                calls.append(item)
                continue
            text += item.text
            # Speak each sentence the moment it is complete: the first one starts TTS early.
            for match in _SENTENCE_END.finditer(text, spoken):
                sentence = text[spoken : match.end()].strip()
                spoken = match.end()
                if sentence:
                    yield sentence
        tail = text[spoken:].strip()
        if tail:
            yield tail
        self._messages.append(
            ChatMessage(role="assistant", content=text.strip(), tool_calls=tuple(calls))
        )
        for call in calls:
            self._pending.add(call.call_id)
            yield call
