"""The brain interface: what every LLM adapter (scripted, offline, Gemini Live, OpenAI Realtime, cascade) offers.

A brain hears the caller (`push_audio`), talks back (`AgentAudio` events at the call's sample rate — adapters
resample at their edge), asks for tools (`ToolCall`) and is told what the call's state machine decided
(`enter_state`, `tool_result`, `interrupt`). It knows nothing of flows, sockets or the orders API: the call
session translates between it and the machine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol, TypeAlias, runtime_checkable

__all__ = [
    "AgentAudio",
    "AgentUtteranceEnd",
    "Brain",
    "BrainEvent",
    "BrainFailure",
    "BrainReconnected",
    "CallInfo",
    "Heard",
    "JSONValue",
    "Keypad",
    "ModelInterrupted",
    "PreparesAhead",
    "Speech",
    "StateBrief",
    "StateDelivered",
    "ToolCall",
    "ToolDeclaration",
    "TurnComplete",
    "language_instruction",
]

JSONValue: TypeAlias = (
    str | int | float | bool | list["JSONValue"] | dict[str, "JSONValue"] | None
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolDeclaration:
    """A tool the model may call: name, description and the JSON schema of its arguments."""

    name: str
    description: str
    parameters: Mapping[str, JSONValue]


@dataclass(frozen=True, slots=True, kw_only=True)
class CallInfo:
    """What a brain is told once, when the call's audio starts."""

    call_sid: str
    caller: str | None
    sample_rate: int
    system_prompt: str
    voice: str
    language: str  # the language the call starts in
    tools: tuple[ToolDeclaration, ...]
    # Recent orders placed from the caller's number, as prefetched at the webhook; None when not known
    # (no number, the lookup failed or has not answered yet).
    caller_orders: int | None = None
    # Every language the caller may switch to (the flow's `languages:`), the call's own among them.
    languages: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class StateBrief:
    """The machine entered a state: what the model should now do and which tools it may use."""

    name: str
    instructions: str | None
    tools: tuple[str, ...]
    # What the session is speaking on entry (the state's `say`, or the transition's that replaces it): the
    # brain's own prompt for this state would repeat it, so a brain given one adds none.
    say: str | None = None
    # The call's language on entering the state (a flow of several languages may switch mid-call).
    language: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Heard:
    """How much of an agent utterance the caller actually heard before a barge-in cut it."""

    utterance_id: str
    played_ms: int
    total_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Keypad:
    """The caller typed on the keypad: the digits of one entry (without its end key), and what they answer.

    `intent` is the state's `listen:` answer the keys were for (`order_number` for a collected entry, `human`
    for "press 0"), or None when the state declares no keypad answer.
    """

    digits: str
    intent: str | None = None
    end: str = ""  # the key that ended the entry ("#"), "" when a timeout or the length ended it

    @property
    def text(self) -> str:
        """The entry as a line of the conversation, for a model that only reads text."""
        keys = " ".join(self.digits + self.end)
        return f"[caller pressed {keys}]" if keys else "[caller pressed nothing]"


def language_instruction(call: CallInfo) -> str:
    """What a model is told about the call's language, and, on a line of several, how to switch."""
    text = f"The caller's language and locale: {call.language}."
    others = [code for code in call.languages if code != call.language]
    if others:
        text += (
            f" This line also speaks {', '.join(others)}: when the caller asks for one of them or keeps "
            "speaking it, call set_language with it and go on in that language."
        )
    return text


# --- events a brain emits -------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentAudio:
    """A chunk of the agent's speech, S16LE mono at the call's sample rate."""

    pcm: bytes
    utterance_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentUtteranceEnd:
    """No more audio will come for this utterance."""

    utterance_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Speech:
    """Text of what someone said: the caller (recognised) or the agent (generated)."""

    role: Literal["caller", "agent"]
    text: str
    utterance_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCall:
    """The model asks to run a tool."""

    call_id: str
    name: str
    arguments: Mapping[str, JSONValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnComplete:
    """The model finished its turn and waits for the caller."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelInterrupted:
    """The model itself heard the caller over its reply (server-side turn detection) and stopped it:
    whatever of `utterance_id` is still queued must not be played."""

    utterance_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StateDelivered:
    """How a realtime adapter passed a state change on to its model (a strategy from brains/capabilities.py)."""

    state: str
    via: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BrainFailure:
    """The adapter cannot go on (connection lost for good, quota, protocol error)."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BrainReconnected:
    """The adapter lost its connection and made a new one; the call goes on (counted in metrics)."""

    resumed: bool = False  # the new connection carried the old session's state over


BrainEvent: TypeAlias = (
    AgentAudio
    | AgentUtteranceEnd
    | Speech
    | ToolCall
    | TurnComplete
    | ModelInterrupted
    | StateDelivered
    | BrainFailure
    | BrainReconnected
)


@runtime_checkable
class Brain(Protocol):
    """One conversation partner for one call. Methods are called from the call's tasks only."""

    async def start(self, call: CallInfo) -> None:
        """Connect and get ready; called once before any other method."""

    async def push_audio(self, pcm: bytes) -> None:
        """Caller audio, S16LE mono at the call's sample rate, in chunks of any size."""

    async def enter_state(self, state: StateBrief) -> None:
        """The call's machine entered a state: deliver its instructions and allowed tools."""

    async def say(self, text: str, *, utterance_id: str) -> None:
        """Speak this text verbatim (a state's `say`)."""

    async def tool_result(self, call: ToolCall, result: Mapping[str, JSONValue]) -> None:
        """Answer a ToolCall; `result` may carry the new state's instructions."""

    async def interrupt(self, heard: Heard | None) -> None:
        """The caller barged in: stop generating; `heard` says what was actually played."""

    async def keypad(self, keys: Keypad) -> None:
        """The caller typed a keypad entry (after the machine has had its `dtmf` event)."""

    def events(self) -> AsyncIterator[BrainEvent]:
        """The brain's events, in order, until it is closed."""

    async def close(self) -> None:
        """Release connections; events() ends."""


@runtime_checkable
class PreparesAhead(Protocol):
    """A brain factory with work worth doing before the first call (a recogniser's models to load).

    The service starts `prepare()` in the background when it starts; calls are answered meanwhile.
    """

    async def prepare(self) -> None: ...
