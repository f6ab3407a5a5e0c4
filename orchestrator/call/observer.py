"""CallObserver: what a live call reports about itself, for metrics, traces and recordings.

The session calls these at a few points. Each call states a fact that has already happened, with its moments on
the event loop's clock (`loop.time()`), so an observer never changes what the call does and never makes it
wait: an observer that needs to do I/O hands it to a worker thread or a background task of its own.
Implementations live in `orchestrator/observe/`; `NULL_OBSERVER` does nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

__all__ = [
    "NULL_OBSERVER",
    "BargeInOutcome",
    "CallObserver",
    "CallObservers",
    "LookupResultKind",
    "NullObserver",
    "ToolCallResult",
]

BargeInOutcome = Literal["interrupted", "backchannel", "ignored"]
LookupResultKind = Literal["order_found", "order_not_found", "lookup_failed"]
ToolCallResult = Literal["accepted", "refused"]


class CallObserver(Protocol):
    """One call's observer; every method returns at once."""

    def webhook_answered(self, *, at: float) -> None:
        """The voice webhook was answered (the call's clock started when its session was made)."""

    def stream_started(self, *, at: float) -> None: ...

    def stream_ended(self, *, at: float) -> None: ...

    def caller_audio(self, pcm: bytes) -> None:
        """Caller PCM as the session hears it (mono, the call's rate), in arrival order."""

    def agent_audio(self, frame: bytes, *, at: float) -> None:
        """An agent frame handed to the socket at `at` (the pacer sends a few frames early)."""

    def state_entered(self, *, previous: str | None, state: str, trigger: str, at: float) -> None: ...

    def turn(
        self, *, state: str, speech_ended: float, turn_detected: float, reply_started: float
    ) -> None:
        """A caller turn was answered: speech end → end of turn detected → the reply's first audio."""

    def first_prompt(self, *, stream_started: float, audio_started: float) -> None:
        """The agent's first audio on the stream."""

    def barge_in(self, outcome: BargeInOutcome, *, at: float) -> None: ...

    def tool_call(self, *, tool: str, result: ToolCallResult, at: float) -> None: ...

    def tool_action(self, *, tool: str, succeeded: bool, started: float, ended: float) -> None:
        """A tool's own action (`http:` or a code handler) finished: `done:<tool>` or `failed:<tool>`."""

    def lookup(
        self, *, result: LookupResultKind, by: Literal["order_number", "phone"], started: float,
        ended: float
    ) -> None: ...

    def escalation_step(
        self, *, strategy: str, succeeded: bool, started: float, ended: float
    ) -> None: ...

    def brain_failed(self, *, reason: str, at: float) -> None: ...

    def brain_reconnected(self, *, at: float) -> None: ...

    def call_finished(self, *, outcome: str, final_state: str, at: float) -> None: ...


class NullObserver:
    """Observes nothing: the default, and a base class whose methods an observer overrides selectively."""

    def webhook_answered(self, *, at: float) -> None:
        pass

    def stream_started(self, *, at: float) -> None:
        pass

    def stream_ended(self, *, at: float) -> None:
        pass

    def caller_audio(self, pcm: bytes) -> None:
        pass

    def agent_audio(self, frame: bytes, *, at: float) -> None:
        pass

    def state_entered(self, *, previous: str | None, state: str, trigger: str, at: float) -> None:
        pass

    def turn(
        self, *, state: str, speech_ended: float, turn_detected: float, reply_started: float
    ) -> None:
        pass

    def first_prompt(self, *, stream_started: float, audio_started: float) -> None:
        pass

    def barge_in(self, outcome: BargeInOutcome, *, at: float) -> None:
        pass

    def tool_call(self, *, tool: str, result: ToolCallResult, at: float) -> None:
        pass

    def tool_action(self, *, tool: str, succeeded: bool, started: float, ended: float) -> None:
        pass

    def lookup(
        self, *, result: LookupResultKind, by: Literal["order_number", "phone"], started: float,
        ended: float
    ) -> None:
        pass

    def escalation_step(
        self, *, strategy: str, succeeded: bool, started: float, ended: float
    ) -> None:
        pass

    def brain_failed(self, *, reason: str, at: float) -> None:
        pass

    def brain_reconnected(self, *, at: float) -> None:
        pass

    def call_finished(self, *, outcome: str, final_state: str, at: float) -> None:
        pass


NULL_OBSERVER: CallObserver = NullObserver()


class CallObservers:
    """Several observers as one, in order. The audio hooks go only to observers that take audio."""

    def __init__(self, observers: Sequence[CallObserver]) -> None:
        self._all = tuple(observers)
        # Decided once: the per-frame hooks skip observers that keep NullObserver's audio methods.
        self._caller_audio = tuple(
            o.caller_audio for o in self._all
            if getattr(type(o), "caller_audio", None) is not NullObserver.caller_audio
        )
        self._agent_audio = tuple(
            o.agent_audio for o in self._all
            if getattr(type(o), "agent_audio", None) is not NullObserver.agent_audio
        )

    def webhook_answered(self, *, at: float) -> None:
        for o in self._all:
            o.webhook_answered(at=at)

    def stream_started(self, *, at: float) -> None:
        for o in self._all:
            o.stream_started(at=at)

    def stream_ended(self, *, at: float) -> None:
        for o in self._all:
            o.stream_ended(at=at)

    def caller_audio(self, pcm: bytes) -> None:
        for hook in self._caller_audio:
            hook(pcm)

    def agent_audio(self, frame: bytes, *, at: float) -> None:
        for hook in self._agent_audio:
            hook(frame, at=at)

    def state_entered(self, *, previous: str | None, state: str, trigger: str, at: float) -> None:
        for o in self._all:
            o.state_entered(previous=previous, state=state, trigger=trigger, at=at)

    def turn(
        self, *, state: str, speech_ended: float, turn_detected: float, reply_started: float
    ) -> None:
        for o in self._all:
            o.turn(
                state=state,
                speech_ended=speech_ended,
                turn_detected=turn_detected,
                reply_started=reply_started,
            )

    def first_prompt(self, *, stream_started: float, audio_started: float) -> None:
        for o in self._all:
            o.first_prompt(stream_started=stream_started, audio_started=audio_started)

    def barge_in(self, outcome: BargeInOutcome, *, at: float) -> None:
        for o in self._all:
            o.barge_in(outcome, at=at)

    def tool_call(self, *, tool: str, result: ToolCallResult, at: float) -> None:
        for o in self._all:
            o.tool_call(tool=tool, result=result, at=at)

    def tool_action(self, *, tool: str, succeeded: bool, started: float, ended: float) -> None:
        for o in self._all:
            o.tool_action(tool=tool, succeeded=succeeded, started=started, ended=ended)

    def lookup(
        self, *, result: LookupResultKind, by: Literal["order_number", "phone"], started: float,
        ended: float
    ) -> None:
        for o in self._all:
            o.lookup(result=result, by=by, started=started, ended=ended)

    def escalation_step(
        self, *, strategy: str, succeeded: bool, started: float, ended: float
    ) -> None:
        for o in self._all:
            o.escalation_step(strategy=strategy, succeeded=succeeded, started=started, ended=ended)

    def brain_failed(self, *, reason: str, at: float) -> None:
        for o in self._all:
            o.brain_failed(reason=reason, at=at)

    def brain_reconnected(self, *, at: float) -> None:
        for o in self._all:
            o.brain_reconnected(at=at)

    def call_finished(self, *, outcome: str, final_state: str, at: float) -> None:
        for o in self._all:
            o.call_finished(outcome=outcome, final_state=final_state, at=at)
