"""A flow as a Mermaid `stateDiagram-v2`, drawn from the Flow model so labels keep the YAML's
event names.

Deterministic: states in file order, each state's own routes, then the global routes it inherits.
Imports this package's model only.
"""

from __future__ import annotations

from orchestrator.flow.model import Flow

__all__ = ["to_mermaid"]


def to_mermaid(flow: Flow) -> str:
    """Every transition labelled with its event (and `[guard]`); `[*]` marks initial and final."""
    lines = ["stateDiagram-v2", f"    [*] --> {flow.initial}"]
    for state, spec in flow.states.items():
        for event, transitions in flow.routes(state).items():
            for transition in transitions:
                guard = "" if transition.when is None else f" [{transition.when}]"
                lines.append(f"    {state} --> {transition.target} : {event}{guard}")
        if spec.final:
            lines.append(f"    {state} --> [*]")
    return "\n".join(lines) + "\n"
