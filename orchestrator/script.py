"""The call-script format (`fixtures/calls/*.yaml`): one scripted phone call, both sides.

The caller's turns drive the simulator (a fake Sautikit that speaks them as audio); the agent's turns drive the
scripted brain (it replays the model's tool calls and replies). Both read the same file, so a script is a whole
conversation a product person can read:

```yaml
title: Returning caller asks by phone
caller: "+254712345678"
turns:
  - caller: "Hi, is my order out for delivery?"
  - agent:
      - tool: lookup_order
      - say: "Your order {{ result.order.order_number }} is {{ result.order.status_text }}."
  - caller: "Thanks, bye."
  - agent:
      - say: "Goodbye!"
      - tool: end_call
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from orchestrator.errors import FlowError, FlowProblem

__all__ = [
    "AgentStep",
    "AgentTurn",
    "CallScript",
    "CallerTurn",
    "HangupTurn",
    "NoiseTurn",
    "SayStep",
    "ScriptTurn",
    "SilenceTurn",
    "ToolStep",
    "load_script",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SayStep(_Strict):
    """The agent speaks; `{{ result.* }}` reads the last tool result."""

    say: str


class ToolStep(_Strict):
    """The agent's model calls a tool and waits for its result."""

    tool: str
    args: dict[str, str | int | float | bool | None] = Field(default_factory=dict)


AgentStep = SayStep | ToolStep


class AgentTurn(_Strict):
    agent: list[AgentStep]


class CallerTurn(_Strict):
    """The caller says something once the agent has been quiet for `pause_ms`, or cuts in."""

    caller: str
    pause_ms: int = Field(default=700, ge=0)
    # Start speaking this many ms into the agent's current speech: a barge-in.
    barge_in_after_ms: int | None = Field(default=None, ge=0)


class HangupTurn(_Strict):
    """The caller hangs up, `after_ms` into the agent's current speech (or once it is quiet)."""

    hangup: Annotated[int | None, Field(ge=0)] = None


class NoiseTurn(_Strict):
    """A burst of noise on the caller's line (a cough, a click, a bump), `after_ms` into the agent's speech."""

    noise_ms: int = Field(gt=0, le=5000)
    level_dbfs: float = Field(default=-20.0, le=0)
    after_ms: int = Field(default=0, ge=0)


class SilenceTurn(_Strict):
    """The caller stays silent for this long (to exercise the flow's silence timeouts)."""

    silence_ms: int = Field(ge=0)


ScriptTurn = CallerTurn | AgentTurn | HangupTurn | SilenceTurn | NoiseTurn


class CallScript(_Strict):
    title: str
    caller: str = "+254712345678"
    callee: str = "+254711000000"
    call_sid: str | None = None
    # Fault mode of the embedded orders backend for this call.
    orders: Literal["healthy", "error_5xx", "slow", "bad_json"] = "healthy"
    # How the simulator encodes the voice webhook, as different Sautikit pages do.
    webhook: Literal["form", "json"] = "form"
    turns: list[ScriptTurn]

    @property
    def caller_turns(self) -> list[CallerTurn | HangupTurn | SilenceTurn | NoiseTurn]:
        return [t for t in self.turns if not isinstance(t, AgentTurn)]


def load_script(path: str | Path) -> CallScript:
    """Read and validate a call script; problems come back as a located FlowError."""
    path = Path(path)
    try:
        data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    except (OSError, YAMLError) as exc:
        raise FlowError([FlowProblem(path=str(path), line=1, column=1, message=str(exc))]) from exc
    try:
        return CallScript.model_validate(data)
    except ValidationError as exc:
        problems = [
            FlowProblem(
                path=str(path),
                line=1,
                column=1,
                message=f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}",
            )
            for err in exc.errors()
        ]
        raise FlowError(problems) from exc
