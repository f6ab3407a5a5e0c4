"""Silence reprompts: the transition's `say` replaces the state's prompt, and the timer starts once the agent is quiet."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

import pytest

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
)
from orchestrator.brains.cascade import make_offline_brain_factory
from orchestrator.flow import load_flow, load_flow_text
from orchestrator.script import CallScript
from orchestrator.testing import run_scripted_call
from tests.flows import ORDER_STATUS

FLOW = load_flow(ORDER_STATUS)
SILENT = CallScript.model_validate(
    {"title": "A caller who never speaks", "turns": [{"agent": []}, {"silence_ms": 60000}]}
)


@pytest.mark.looptime
async def test_offline_reprompt_says_only_the_transitions_line() -> None:
    """Each silence reprompt is the transition's `say` alone, not the state's prompt as well."""
    record = await run_scripted_call(
        SILENT, flow=FLOW, brain_factory=make_offline_brain_factory(FLOW)
    )
    entries = record.transcript.entries
    timers = [i for i, e in enumerate(entries) if e.kind == "timer"]
    assert len(timers) == 3
    for start, end in zip(timers, [*timers[1:], len(entries)], strict=True):
        said = [e.text for e in entries[start:end] if e.kind == "agent"]
        assert len(said) == 1, said
        assert "Please tell me your order number. It looks like" not in said[0]


TIMER_FLOW = load_flow_text(
    """
flow: timer
initial: greeting
on: {stream_stopped: ended}
states:
  greeting:
    on: {stream_started: asking}
  asking:
    instructions: Ask a question in two parts.
    timeout: 3
    on:
      silence_timeout: {target: ended, say: "Goodbye."}
  ended: {final: true}
"""
)


class _TwoPartBrain:
    """Says a 1 s line, thinks for half a second, then says a 6 s line: the agent is not done after the first."""

    def __init__(self) -> None:
        self._events: asyncio.Queue[BrainEvent | None] = asyncio.Queue()

    async def start(self, call: CallInfo) -> None: ...

    async def push_audio(self, pcm: bytes) -> None: ...

    async def enter_state(self, state: StateBrief) -> None:
        if state.name == "asking":
            asyncio.get_running_loop().create_task(self._two_parts())

    async def _two_parts(self) -> None:
        self._utter("part-1", "First,", seconds=1.0)
        await asyncio.sleep(1.5)  # the first part has played; the second is still being thought up
        self._utter("part-2", "and here is a long second part.", seconds=6.0)

    def _utter(self, utterance_id: str, text: str, *, seconds: float) -> None:
        self._events.put_nowait(Speech(role="agent", text=text, utterance_id=utterance_id))
        self._events.put_nowait(
            AgentAudio(pcm=bytes(int(32000 * seconds)), utterance_id=utterance_id)
        )
        self._events.put_nowait(AgentUtteranceEnd(utterance_id=utterance_id))

    async def say(self, text: str, *, utterance_id: str) -> None:
        self._utter(utterance_id, text, seconds=0.5)

    async def tool_result(self, call: ToolCall, result: Mapping[str, JSONValue]) -> None: ...

    async def interrupt(self, heard: Heard | None) -> None: ...

    async def keypad(self, keys: Keypad) -> None: ...

    async def events(self) -> AsyncIterator[BrainEvent]:
        while (event := await self._events.get()) is not None:
            yield event

    async def close(self) -> None:
        self._events.put_nowait(None)


@pytest.mark.looptime
async def test_silence_timer_starts_when_the_agent_has_finished_speaking() -> None:
    """A pause between two agent utterances does not start the timer: it runs from the end of the last one."""
    record = await run_scripted_call(
        SILENT, flow=TIMER_FLOW, brain_factory=lambda start: _TwoPartBrain()
    )
    entries = record.transcript.entries
    connected = next(e.at_ms for e in entries if e.kind == "stream" and e.text == "connected")
    timer = next(e.at_ms for e in entries if e.kind == "timer")
    # 1 s + 0.5 s pause + 6 s of speech, then 3 s of silence (give or take the pacer's 20 ms frames).
    assert timer - connected == pytest.approx(10_500, abs=100)


SLOW_FLOW = load_flow_text(
    """
flow: slow
initial: greeting
on: {stream_stopped: ended}
states:
  greeting:
    on: {stream_started: asking}
  asking:
    instructions: Ask one question; answer slowly.
    timeout: 3
    on:
      silence_timeout: {target: ended, say: "Are you still there? Goodbye."}
  ended: {final: true}
"""
)


class _SlowToAnswerBrain(_TwoPartBrain):
    """Asks once, then answers the caller `think_s` after first hearing them: a recogniser or model
    that takes longer than the state's silence timeout."""

    def __init__(self, think_s: float) -> None:
        super().__init__()
        self._think_s = think_s
        self._answering: asyncio.Task[None] | None = None

    async def enter_state(self, state: StateBrief) -> None:
        if state.name == "asking":
            self._utter("question", "What can I do for you?", seconds=1.0)

    async def push_audio(self, pcm: bytes) -> None:
        if self._answering is None and any(pcm):
            self._answering = asyncio.get_running_loop().create_task(self._answer())

    async def _answer(self) -> None:
        await asyncio.sleep(self._think_s)
        self._utter("answer", "Here is your answer.", seconds=1.0)


ONE_LINE = CallScript.model_validate(
    {
        "title": "A caller who says one thing, then waits for the answer",
        "turns": [{"agent": []}, {"caller": "Where is my order?"}, {"silence_ms": 30000}],
    }
)


@pytest.mark.looptime
async def test_a_slow_answer_is_waited_for_not_talked_over_with_are_you_still_there() -> None:
    """The caller has spoken: a timeout before the agent's answer waits once more instead of reprompting."""
    record = await run_scripted_call(
        ONE_LINE, flow=SLOW_FLOW, brain_factory=lambda start: _SlowToAnswerBrain(think_s=6.0)
    )
    entries = record.transcript.entries
    said = [e.text for e in entries if e.kind == "agent"]
    timers = [e.text for e in entries if e.kind == "timer"]
    assert said == [
        '"What can I do for you?"',
        '"Here is your answer."',
        '"Are you still there? Goodbye."',
    ]
    # One wait for the answer, then the ordinary timeout once the answer has played.
    assert timers == ["waiting for the agent's answer in asking", "no caller speech in asking"]
    answer = next(e.at_ms for e in entries if e.kind == "agent" and "answer" in e.text)
    reprompt = next(e.at_ms for e in entries if e.kind == "agent" and "still there" in e.text)
    assert reprompt - answer == pytest.approx(4_000, abs=200)  # 1 s of answer, then the 3 s timeout


@pytest.mark.looptime
async def test_a_brain_that_never_answers_still_gets_the_timeout_route() -> None:
    """Waiting for an answer is bounded: one more timeout, then the state's own route."""
    record = await run_scripted_call(
        ONE_LINE, flow=SLOW_FLOW, brain_factory=lambda start: _SlowToAnswerBrain(think_s=600.0)
    )
    entries = record.transcript.entries
    said = [e.text for e in entries if e.kind == "agent"]
    assert said == ['"What can I do for you?"', '"Are you still there? Goodbye."']
    assert record.transcript.outcome is not None
