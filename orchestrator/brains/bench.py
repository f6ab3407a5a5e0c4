"""The bench brain: an instant fake LLM for load tests — answers the caller with a tone at once.

`orchestrator serve --brain bench` gives every call this brain. It finds the end of each caller
utterance itself (as a realtime model's server-side turn detection does: 200 ms of silence by
default, on the energy detector, the cheapest there is) and answers at once with a fixed-length tone
streamed in 100 ms chunks, so a load test measures the service — socket, VAD, barge-in, pacing — and
not a model. It greets with the same tone when the call's audio starts, and answers a state's `say`
with it too. It calls no tools, so a call stays where the flow's conversation begins.

Not for callers: it says nothing in words.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Mapping
from functools import cache
from itertools import count

import numpy as np

from orchestrator.audio.vad import Endpointer, EnergyVoicing
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

__all__ = ["BenchBrain", "reply_tone"]

_CHUNK_MS = 100
_TONE_HZ = 440.0
_TONE_DBFS = -12.0


@cache
def reply_tone(rate: int, ms: int) -> tuple[bytes, ...]:
    """A `ms`-long sine tone at `rate`, cut in 100 ms chunks (made once per rate and length)."""
    samples = rate * ms // 1000
    amplitude = 32767 * 10 ** (_TONE_DBFS / 20)
    t = np.arange(samples, dtype=np.float64) / rate
    pcm = (amplitude * np.sin(2 * math.pi * _TONE_HZ * t)).astype("<i2").tobytes()
    chunk = rate * 2 * _CHUNK_MS // 1000
    return tuple(pcm[i : i + chunk] for i in range(0, len(pcm), chunk))


class BenchBrain:
    """Replies `reply_ms` of tone after `silence_ms` of caller silence; no latency of its own."""

    def __init__(
        self, *, reply_ms: int = 1500, silence_ms: int = 200, min_speech_ms: int = 120
    ) -> None:
        self._reply_ms = reply_ms
        self._silence_ms = silence_ms
        self._min_speech_ms = min_speech_ms
        self._events: asyncio.Queue[BrainEvent | None] = asyncio.Queue()
        self._voicing: EnergyVoicing | None = None
        self._endpointer: Endpointer | None = None
        self._rate = 16000
        self._ids = count(1)
        self._closed = False

    async def start(self, call: CallInfo) -> None:
        self._rate = call.sample_rate
        self._voicing = EnergyVoicing(rate=call.sample_rate)
        self._endpointer = Endpointer(
            min_speech_ms=self._min_speech_ms, min_silence_ms=self._silence_ms
        )
        self._reply(f"b{next(self._ids)}")  # the greeting

    async def push_audio(self, pcm: bytes) -> None:
        assert self._voicing is not None, "start() first"
        assert self._endpointer is not None
        step = self._endpointer.step
        for level in self._voicing.feed(pcm):
            event = step(level)
            if event is not None and event.kind == "speech_stopped":
                self._events.put_nowait(Speech(role="caller", text="(caller speech)"))
                self._reply(f"b{next(self._ids)}")
                self._events.put_nowait(TurnComplete())

    async def enter_state(self, state: StateBrief) -> None:
        return None

    async def say(self, text: str, *, utterance_id: str) -> None:
        self._reply(utterance_id)

    async def tool_result(self, call: ToolCall, result: Mapping[str, JSONValue]) -> None:
        return None

    async def interrupt(self, heard: Heard | None) -> None:
        # Every reply is queued whole at once: the session already drops what the caller cut off.
        return None

    async def keypad(self, keys: Keypad) -> None:
        return None  # a benchmark caller only speaks

    async def events(self) -> AsyncIterator[BrainEvent]:
        while True:
            event = await self._events.get()
            if event is None:
                return
            yield event

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._events.put_nowait(None)

    def _reply(self, utterance_id: str) -> None:
        put = self._events.put_nowait
        for chunk in reply_tone(self._rate, self._reply_ms):
            put(AgentAudio(pcm=chunk, utterance_id=utterance_id))
        put(AgentUtteranceEnd(utterance_id=utterance_id))
        put(Speech(role="agent", text=f"(tone {self._reply_ms} ms)", utterance_id=utterance_id))
