"""The call-script format (`fixtures/calls/*.yaml`): one scripted phone call, both sides.

The caller's turns drive the simulator (a fake Sautikit that speaks them as audio); the agent's turns drive the
scripted brain (it replays the model's tool calls and replies). Both read the same file, so a script is a whole
conversation a product person can read. Any turn may carry an `expect:` checked after the call, and the
script chooses how its reviewed snapshot is written (docs/call-scripts.md):

```yaml
title: Returning caller asks by phone
caller: "+254712345678"
turns:
  - caller: "Hi, is my order out for delivery?"
  - agent:
      - tool: lookup_order
      - say: "Your order {{ result.order.order_number }} is {{ result.order.status_text }}."
    expect: {state: narrating, tool: lookup_order}
  - caller: "Thanks, bye."
  - agent:
      - say: "Goodbye!"
      - tool: end_call
expect: {outcome: resolved}
```
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)

from orchestrator.errors import FlowError, FlowProblem
from orchestrator.flow.suggestions import unknown_name
from orchestrator.flow.yamlsource import (
    Loc,
    YamlSource,
    parse_yaml,
    plain,
    read_yaml_text,
    sorted_problems,
)

if TYPE_CHECKING:
    from orchestrator.flow.model import Flow

__all__ = [
    "AgentStep",
    "AgentTurn",
    "CallScript",
    "CallerTurn",
    "Expect",
    "HangupTurn",
    "NoiseTurn",
    "OutboundCall",
    "PressTurn",
    "SayStep",
    "ScriptFile",
    "ScriptTurn",
    "SilenceTurn",
    "SnapshotForm",
    "ToolStep",
    "load_script",
    "load_script_file",
]

# How a script's reviewed snapshot is written: the conversation alone (no clock), with the call clock, or
# not at all (the script's `expect:` steps are its only checks).
SnapshotForm = Literal["conversation", "timed", "none"]
_OUTCOMES = Literal["resolved", "escalated", "abandoned", "failed", "voicemail", "no_answer", "busy"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Expect(_Strict):
    """What must have happened: on a turn, since the caller last spoke; at the top level, in the whole call."""

    state: str | None = None  # the call was in this state
    tool: str | None = None  # the model called this tool
    says: str | None = None  # the agent said something containing this (case-insensitive)
    outcome: _OUTCOMES | None = None  # the call ended this way

    @model_validator(mode="after")
    def _says_something(self) -> Expect:
        if self.state is None and self.tool is None and self.says is None and self.outcome is None:
            raise ValueError("expect needs at least one of state, tool, says, outcome")
        return self


class SayStep(_Strict):
    """The agent speaks; `{{ result.* }}` reads the last tool result."""

    say: str


class ToolStep(_Strict):
    """The agent's model calls a tool and waits for its result."""

    tool: str
    args: dict[str, str | int | float | bool | None] = Field(default_factory=dict)


def _step_kind(value: object) -> str | None:
    if isinstance(value, dict):
        return next((key for key in ("say", "tool") if key in value), None)
    return "say" if isinstance(value, SayStep) else "tool" if isinstance(value, ToolStep) else None


AgentStep = Annotated[
    Annotated[SayStep, Tag("say")] | Annotated[ToolStep, Tag("tool")],
    Discriminator(
        _step_kind,
        custom_error_type="agent_step",
        custom_error_message="an agent step is `say: TEXT` or `tool: NAME` (with optional `args`)",
    ),
]


class _Turn(_Strict):
    expect: Expect | None = None


class AgentTurn(_Turn):
    agent: list[AgentStep]


class CallerTurn(_Turn):
    """The caller says something once the agent has been quiet for `pause_ms`, or cuts in."""

    caller: str
    pause_ms: int = Field(default=700, ge=0)
    # Start speaking this many ms into the agent's current speech: a barge-in.
    barge_in_after_ms: int | None = Field(default=None, ge=0)


class PressTurn(_Turn):
    """The caller types keys (`"1042#"`) once the agent has been quiet for `pause_ms`, or cuts in with them.

    One press turn is one keypad entry: the keys go out `gap_ms` apart as DTMF text frames on the media
    socket, or in the voice webhook's `Digits` field (`via: webhook`).
    """

    press: Annotated[str, Field(pattern=r"^[0-9*#]+$")]
    pause_ms: int = Field(default=700, ge=0)
    barge_in_after_ms: int | None = Field(default=None, ge=0)
    gap_ms: int = Field(default=250, ge=20, le=5000)
    via: Literal["socket", "webhook"] = "socket"


class HangupTurn(_Turn):
    """The caller hangs up, `after_ms` into the agent's current speech (or, when empty, once it is quiet)."""

    hangup: Annotated[int | None, Field(ge=0)]


class NoiseTurn(_Turn):
    """A burst of noise on the caller's line (a cough, a click, a bump), `after_ms` into the agent's speech."""

    noise_ms: int = Field(gt=0, le=5000)
    level_dbfs: float = Field(default=-20.0, le=0)
    after_ms: int = Field(default=0, ge=0)


class SilenceTurn(_Turn):
    """The caller stays silent for this long (to exercise the flow's silence timeouts)."""

    silence_ms: int = Field(ge=0)


_TURN_KEYS = {
    "caller": CallerTurn,
    "press": PressTurn,
    "agent": AgentTurn,
    "hangup": HangupTurn,
    "silence_ms": SilenceTurn,
    "noise_ms": NoiseTurn,
}


def _turn_kind(value: object) -> str | None:
    if isinstance(value, dict):
        return next((key for key in _TURN_KEYS if key in value), None)
    return next((key for key, cls in _TURN_KEYS.items() if isinstance(value, cls)), None)


ScriptTurn = Annotated[
    Annotated[CallerTurn, Tag("caller")]
    | Annotated[PressTurn, Tag("press")]
    | Annotated[AgentTurn, Tag("agent")]
    | Annotated[HangupTurn, Tag("hangup")]
    | Annotated[SilenceTurn, Tag("silence_ms")]
    | Annotated[NoiseTurn, Tag("noise_ms")],
    Discriminator(
        _turn_kind,
        custom_error_type="script_turn",
        custom_error_message=(
            "a turn is one of `caller:`, `press:`, `agent:`, `hangup:`, `silence_ms:`, `noise_ms:`"
        ),
    ),
]


AnswerKind = Literal["answer", "voicemail", "no_answer", "busy", "failed"]


class OutboundCall(_Strict):
    """The shop calls the customer (`caller:` is the customer's number) about `order`; each attempt is
    answered as `answers` says, in order (the last one repeats): a person (`answer`, who then plays the
    script's caller turns), a `voicemail` greeting, or nobody (`no_answer`, `busy`, `failed`)."""

    order: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")]
    answers: Annotated[list[AnswerKind], Field(min_length=1)] = Field(
        default_factory=lambda: list[AnswerKind](["answer"])
    )


class CallScript(_Strict):
    title: str
    # Empty: the caller's number is withheld, and the voice webhook carries no `From` at all.
    caller: str = "+254712345678"
    callee: str = "+254711000000"
    call_sid: str | None = None
    # Fault mode of the embedded orders backend for this call.
    orders: Literal["healthy", "error_5xx", "slow", "bad_json"] = "healthy"
    # How the simulator encodes the voice webhook, as different Sautikit pages do.
    webhook: Literal["form", "json"] = "form"
    snapshot: SnapshotForm = "conversation"
    # Not a call in: the shop places this call through Sautikit's REST API (docs/outbound.md).
    outbound: OutboundCall | None = None
    expect: Expect | None = None
    turns: list[ScriptTurn]

    @property
    def caller_turns(self) -> list[CallerTurn | PressTurn | HangupTurn | SilenceTurn | NoiseTurn]:
        return [t for t in self.turns if not isinstance(t, AgentTurn)]


@dataclass(frozen=True, slots=True, kw_only=True)
class ScriptFile:
    """A loaded script and its YAML source, which locates each part for messages (`source.problem`)."""

    path: Path
    script: CallScript
    source: YamlSource


def load_script(path: str | Path, *, flow: Flow | None = None) -> CallScript:
    """Read and validate a call script (against `flow` when given); problems come back as a located FlowError."""
    return load_script_file(path, flow=flow).script


def load_script_file(path: str | Path, *, flow: Flow | None = None) -> ScriptFile:
    """The script at `path` with its positions; every problem at once, as `path:line:col: message`."""
    name = str(path)
    text = read_yaml_text(path, what="the call script")
    source = YamlSource(
        path=name, text=text, root=parse_yaml(text, path=name, what="the call script")
    )
    try:
        script = CallScript.model_validate(plain(source.root))
    except ValidationError as exc:
        raise FlowError(sorted_problems(_validation_problems(exc, source))) from None
    if flow is not None:
        problems = sorted_problems(_check_against_flow(script, flow, source))
        if problems:
            raise FlowError(problems)
    return ScriptFile(path=Path(path), script=script, source=source)


def _validation_problems(exc: ValidationError, source: YamlSource) -> Iterator[FlowProblem]:
    for error in exc.errors(include_url=False):
        message = error["msg"].removeprefix("Value error, ")
        key = error["type"] == "extra_forbidden"
        yield source.problem(_written(tuple(error["loc"])), message, key=key)


def _written(loc: tuple[str | int, ...]) -> Loc:
    """`loc` without the union tags pydantic adds (`turns.2.caller.pause_ms`): they are not in the file."""
    kept: list[str | int] = []
    for index, part in enumerate(loc):
        tag_of = loc[index - 2] if index >= 2 and isinstance(loc[index - 1], int) else None
        if tag_of in ("turns", "agent") and isinstance(part, str):
            continue
        kept.append(part)
    return tuple(kept)


def _check_against_flow(
    script: CallScript, flow: Flow, source: YamlSource
) -> Iterator[FlowProblem]:
    """Every tool and state the script names must exist in the flow."""
    expectations: list[tuple[Loc, Expect]] = []
    if script.expect is not None:
        expectations.append((("expect",), script.expect))
    for index, turn in enumerate(script.turns):
        if turn.expect is not None:
            expectations.append((("turns", index, "expect"), turn.expect))
        if isinstance(turn, AgentTurn):
            for step_index, step in enumerate(turn.agent):
                if isinstance(step, ToolStep) and step.tool not in _tools(flow):
                    loc: Loc = ("turns", index, "agent", step_index, "tool")
                    yield source.problem(loc, unknown_name("tool", step.tool, flow.tools))
    for loc, expect in expectations:
        if expect.state is not None and expect.state not in flow.states:
            yield source.problem((*loc, "state"), unknown_name("state", expect.state, flow.states))
        if expect.tool is not None and expect.tool not in _tools(flow):
            yield source.problem((*loc, "tool"), unknown_name("tool", expect.tool, flow.tools))


def _tools(flow: Flow) -> list[str]:
    """The tools a script's model may call: the flow's, and set_language on a line of several languages."""
    return [*flow.tools, *(["set_language"] if len(flow.call_languages) > 1 else [])]
