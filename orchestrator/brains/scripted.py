"""The scripted brain: replays the agent side of a call script, deterministically.

It really listens: caller audio goes through a voice-activity detector, and each caller utterance it hears is
matched, in order, with the script's next caller line (its "recognised" text); a keypad entry is matched with
the script's next `press:` turn. It then performs the script's next
agent turn: tool calls (waiting for each result) and spoken replies, synthesised to PCM at the call's rate.
Replies may quote the last tool result: `{{ result.order.status_text }}`.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Mapping
from itertools import count

from orchestrator.audio.synth import synthesize_speech
from orchestrator.audio.vad import VoiceActivityDetector, make_vad
from orchestrator.brains.base import (
    AgentAudio,
    AgentUtteranceEnd,
    BrainEvent,
    CallInfo,
    Heard,
    JSONValue,
    Keypad,
    Speech,
    StateBrief,
    ToolCall,
    TurnComplete,
)
from orchestrator.script import AgentTurn, CallerTurn, CallScript, PressTurn, SayStep, ToolStep

__all__ = ["ScriptedBrain"]

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")
# Audio is handed out in 100 ms chunks, the way a streaming TTS would deliver it.
_CHUNK_MS = 100
_AGENT_PITCH_HZ = 120.0


def _lookup(path: str, data: Mapping[str, object]) -> object:
    value: object = data
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return ""
        value = value[part]
    return value


def render_reply(template: str, result: Mapping[str, object]) -> str:
    """Fill `{{ result.x.y }}` placeholders from the last tool result; unknown ones become empty."""

    def fill(match: re.Match[str]) -> str:
        value = _lookup(match.group(1), {"result": result})
        return "" if value is None else str(value)

    return _PLACEHOLDER.sub(fill, template)


class ScriptedBrain:
    """A Brain that plays the agent's part of a CallScript."""

    def __init__(self, script: CallScript, *, vad: VoiceActivityDetector | None = None) -> None:
        self._script = script
        self._vad = vad
        self._events: asyncio.Queue[BrainEvent | None] = asyncio.Queue()
        # What the caller does, in order: a line said (its text), or a keypad entry (None).
        self._caller_inputs = [
            t.caller if isinstance(t, CallerTurn) else None
            for t in script.turns
            if isinstance(t, CallerTurn | PressTurn)
        ]
        # Agent turns keyed by how many caller inputs precede them.
        self._agent_turns: dict[int, list[AgentTurn]] = {}
        heard_before = 0
        for turn in script.turns:
            if isinstance(turn, CallerTurn | PressTurn):
                heard_before += 1
            elif isinstance(turn, AgentTurn):
                self._agent_turns.setdefault(heard_before, []).append(turn)
        self._heard = 0
        self._rate = 16000
        self._last_result: Mapping[str, JSONValue] = {}
        self._pending_tool: asyncio.Future[Mapping[str, JSONValue]] | None = None
        self._turn_task: asyncio.Task[None] | None = None
        self._ids = count(1)
        self._closed = False

    # --- Brain ------------------------------------------------------------------------------

    async def start(self, call: CallInfo) -> None:
        self._rate = call.sample_rate
        if self._vad is None:
            self._vad = make_vad("webrtc", rate=call.sample_rate)
        self._begin_turn(0)

    async def push_audio(self, pcm: bytes) -> None:
        assert self._vad is not None, "start() first"
        for event in self._vad.feed(pcm):
            if event.kind == "speech_stopped":
                self._on_caller_utterance()

    async def enter_state(self, state: StateBrief) -> None:
        # A script already encodes what the model does in each state.
        return None

    async def say(self, text: str, *, utterance_id: str) -> None:
        self._speak(text, utterance_id)

    async def tool_result(self, call: ToolCall, result: Mapping[str, JSONValue]) -> None:
        if self._pending_tool is not None and not self._pending_tool.done():
            self._pending_tool.set_result(result)

    async def interrupt(self, heard: Heard | None) -> None:
        # A real model stops generating; the script drops the rest of this agent turn.
        if self._turn_task is not None:
            self._turn_task.cancel()

    async def keypad(self, keys: Keypad) -> None:
        # A keypad entry answers the script's next `press:` turn, as an utterance answers a `caller:` line.
        if self._heard < len(self._caller_inputs) and self._caller_inputs[self._heard] is None:
            self._heard += 1
            self._begin_turn(self._heard)

    async def events(self) -> AsyncIterator[BrainEvent]:
        while True:
            event = await self._events.get()
            if event is None:
                return
            yield event

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._turn_task is not None:
            self._turn_task.cancel()
        self._events.put_nowait(None)

    # --- the script -------------------------------------------------------------------------

    def _on_caller_utterance(self) -> None:
        if self._heard >= len(self._caller_inputs):
            # The caller said more than the script knows: a real model would ignore noise too.
            return
        text = self._caller_inputs[self._heard]
        if text is None:
            return  # the script's next turn is a keypad entry: sound now is noise
        self._heard += 1
        self._events.put_nowait(Speech(role="caller", text=text))
        self._begin_turn(self._heard)

    def _begin_turn(self, heard: int) -> None:
        turns = self._agent_turns.get(heard)
        if not turns:
            return
        if self._turn_task is not None:
            self._turn_task.cancel()
        self._turn_task = asyncio.get_running_loop().create_task(self._play(turns))

    async def _play(self, turns: list[AgentTurn]) -> None:
        for turn in turns:
            for step in turn.agent:
                if isinstance(step, SayStep):
                    self._speak(render_reply(step.say, self._last_result), self._next_id())
                elif isinstance(step, ToolStep):
                    await self._call_tool(step)
        self._events.put_nowait(TurnComplete())

    async def _call_tool(self, step: ToolStep) -> None:
        call = ToolCall(
            call_id=f"call-{self._next_id()}", name=step.tool, arguments=dict(step.args)
        )
        self._pending_tool = asyncio.get_running_loop().create_future()
        self._events.put_nowait(call)
        self._last_result = await self._pending_tool
        self._pending_tool = None

    def _speak(self, text: str, utterance_id: str) -> None:
        pcm = synthesize_speech(text, rate=self._rate, pitch_hz=_AGENT_PITCH_HZ)
        chunk = self._rate * 2 * _CHUNK_MS // 1000
        for start in range(0, len(pcm), chunk):
            self._events.put_nowait(
                AgentAudio(pcm=pcm[start : start + chunk], utterance_id=utterance_id)
            )
        self._events.put_nowait(AgentUtteranceEnd(utterance_id=utterance_id))
        self._events.put_nowait(Speech(role="agent", text=text, utterance_id=utterance_id))

    def _next_id(self) -> str:
        return f"s{next(self._ids)}"

    def __repr__(self) -> str:
        return f"ScriptedBrain({json.dumps(self._script.title)})"
