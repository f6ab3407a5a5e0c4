"""A fake OpenAI-compatible chat-completions server (Ollama, llama.cpp, vLLM speak the same wire).

It replays a list of scripted replies, one per request: streamed text (split into small SSE chunks, the way
a model streams tokens) and/or tool calls (their arguments split across chunks, as real servers do). It keeps
every request body so tests can read what the model was told, and can misbehave on demand: an HTTP error,
a malformed chunk, or a connection dropped mid-stream.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

from aiohttp import web

__all__ = ["FakeChatServer", "FakeReply", "FakeToolCall"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FakeToolCall:
    name: str
    arguments: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class FakeReply:
    """One completion: text, tool calls, or a fault instead."""

    text: str = ""
    tool_calls: tuple[FakeToolCall, ...] = ()
    fault: Literal["http_500", "malformed", "drop"] | None = None


@dataclass(slots=True)
class FakeChatServer:
    """`app()` serves `POST /v1/chat/completions`; `requests` holds every body received."""

    replies: list[FakeReply]
    requests: list[dict[str, object]] = field(default_factory=list)
    chunk_chars: int = 6

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._complete)
        return app

    async def _complete(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(body)
        index = len(self.requests) - 1
        reply = self.replies[index] if index < len(self.replies) else FakeReply(text="Okay.")
        if reply.fault == "http_500":
            return web.json_response({"error": {"message": "model overloaded"}}, status=500)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        text = reply.text
        for start in range(0, len(text), self.chunk_chars):
            await self._send(response, {"content": text[start : start + self.chunk_chars]})
        if reply.fault == "malformed":
            await response.write(b"data: {not json\n\n")
            return response
        if reply.fault == "drop":
            assert request.transport is not None
            request.transport.close()
            return response
        for position, call in enumerate(reply.tool_calls):
            arguments = json.dumps(call.arguments)
            half = len(arguments) // 2
            first = {"index": position, "id": f"call_{index}_{position}", "type": "function",
                     "function": {"name": call.name, "arguments": arguments[:half]}}
            await self._send(response, {"tool_calls": [first]})
            rest = {"index": position, "function": {"arguments": arguments[half:]}}
            await self._send(response, {"tool_calls": [rest]})
        await response.write(b"data: [DONE]\n\n")
        return response

    @staticmethod
    async def _send(response: web.StreamResponse, delta: dict[str, object]) -> None:
        chunk = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
