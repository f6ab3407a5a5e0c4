"""Pydantic models of a flow file: the edge where YAML becomes typed, immutable objects.

Every model forbids unknown keys so a typo in the YAML is an error, not a silently ignored setting.
Only shape is checked here; cross references (targets, tools, template names, guards, reachability)
are the loader's job, because they need the whole file and its line numbers.
Imports only pydantic.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

__all__ = [
    "KNOWN_EVENTS",
    "Escalation",
    "EscalationStrategy",
    "Flow",
    "OrderNumber",
    "OrdersSettings",
    "StateSpec",
    "ToolSpec",
    "Transition",
    "Voice",
]

EscalationStrategy = Literal["dial", "supervise", "callback"]

# Events the call session sends; `tool:<name>` per declared tool and the flow's `events:` add more.
KNOWN_EVENTS: tuple[str, ...] = (
    "stream_started",
    "stream_stopped",
    "hangup",
    "speech_started",
    "speech_stopped",
    "silence_timeout",
    "order_found",
    "order_not_found",
    "lookup_failed",
    "turn_complete",
    "brain_failed",
    "escalation_failed",
)
TOOL_EVENT_PREFIX = "tool:"


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_by_alias=True, validate_by_name=True
    )


def _as_transitions(value: object) -> object:
    """Accept the spellings of a transition: a target, one `{target, when}`, or a list of either.

    `null` (or an empty list) means "ignore this event here": a state opts out of a global route.
    """
    if value is None:
        return ()
    if isinstance(value, str):
        return ({"target": value},)
    if isinstance(value, Mapping):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple({"target": item} if isinstance(item, str) else item for item in value)
    raise ValueError(
        "a transition must be a state name, a {target, when} mapping, or a list of them"
    )


class Transition(_Model):
    """Go to `target` when the event arrives and the optional `when` guard passes."""

    target: str
    when: str | None = None


Transitions = Annotated[tuple[Transition, ...], BeforeValidator(_as_transitions)]


class StateSpec(_Model):
    """One state of the call: what is said, what the LLM is told and may do, where events lead."""

    say: str | None = None
    instructions: str | None = None
    tools: tuple[str, ...] = ()
    interruptible: bool = True
    timeout: Annotated[float, Field(gt=0)] | None = None
    final: bool = False
    on: dict[str, Transitions] = Field(default_factory=dict)


class ToolSpec(_Model):
    """A tool offered to the LLM: a description and the JSON schema of its arguments."""

    description: str
    parameters: dict[str, object] = Field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )


class Voice(_Model):
    """The agent's voice and language."""

    name: str = "en-us"
    language: str = "en-KE"
    speed: Annotated[float, Field(gt=0, le=4)] = 1.0


class OrderNumber(_Model):
    """The shape of an order number on normalised text, used to recognise it in speech."""

    pattern: str
    example: str | None = None


class Escalation(_Model):
    """How a call reaches a human: strategies tried in order, and who to call."""

    strategies: Annotated[tuple[EscalationStrategy, ...], Field(min_length=1)] = ("dial",)
    number: str
    caller_id: str | None = None
    timeout: Annotated[float, Field(gt=0)] = 30.0


class OrdersSettings(_Model):
    """Per-flow overrides of the orders API client; None keeps the client's own setting."""

    base_url: str | None = None
    path: str | None = None
    timeout: Annotated[float, Field(gt=0)] | None = None
    require_phone_match: bool = False


class Flow(_Model):
    """A whole flow file: global settings, tools, counters, global routes and the states."""

    name: str = Field(alias="flow")
    version: int = 1
    voice: Voice = Voice()
    shop: dict[str, str] = Field(default_factory=dict)
    system_prompt: str = ""
    order_number: OrderNumber | None = None
    tools: dict[str, ToolSpec] = Field(default_factory=dict)
    escalation: Escalation | None = None
    orders: OrdersSettings = OrdersSettings()
    counters: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    events: tuple[str, ...] = ()
    on: dict[str, Transitions] = Field(default_factory=dict)
    initial: str
    states: Annotated[dict[str, StateSpec], Field(min_length=1)]

    def transitions(self, state: str, event: str) -> tuple[Transition, ...]:
        """The routes of `event` from `state`: its own, else the global ones (none when final)."""
        spec = self.states[state]
        if event in spec.on:
            return spec.on[event]
        if spec.final:
            return ()
        return self.on.get(event, ())

    def routes(self, state: str) -> dict[str, tuple[Transition, ...]]:
        """Every event handled in `state` with its transitions: own events first, then global."""
        spec = self.states[state]
        routes = dict(spec.on)
        if not spec.final:
            for event, transitions in self.on.items():
                routes.setdefault(event, transitions)
        return routes
