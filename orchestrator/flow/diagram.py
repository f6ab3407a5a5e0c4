"""A flow as a Mermaid `stateDiagram-v2`, drawn from the Flow model so labels keep the YAML's
event names.

Deterministic: states in file order, each state's own routes, then the global routes it inherits.
Without the global routes (`include_global=False`), a note lists them once instead of drawing an
edge from every state. Imports this package's model only.
"""

from __future__ import annotations

from orchestrator.flow.model import Flow, Transition

__all__ = ["to_mermaid"]


def to_mermaid(flow: Flow, *, include_global: bool = True) -> str:
    """Every transition labelled with its event (and `[guard]`); `[*]` marks initial and final."""
    lines = ["stateDiagram-v2", f"    [*] --> {flow.initial}"]
    if flow.initial_outbound is not None:
        lines.append(f"    [*] --> {flow.initial_outbound}: outbound call")
    for state, spec in flow.states.items():
        routes = flow.routes(state) if include_global else spec.on
        for event, transitions in routes.items():
            lines.extend(
                f"    {state} --> {transition.target} : {_label(event, transition)}"
                for transition in transitions
            )
        if spec.final:
            lines.append(f"    {state} --> [*]")
    shared = [
        f"{_label(event, transition)} → {transition.target}"
        for event, transitions in flow.on.items()
        for transition in transitions
    ]
    if not include_global and shared:
        # A note where the call starts, instead of one edge per state and global route. One route per
        # line: Mermaid reads ';' as the end of a statement, so a one-line note would be cut short.
        lines.append(f"    note right of {flow.initial}")
        lines.append("        global routes, from any state:")
        lines.extend(f"        {route}" for route in shared)
        lines.append("    end note")
    return "\n".join(lines) + "\n"


def _label(event: str, transition: Transition) -> str:
    return event if transition.when is None else f"{event} [{transition.when}]"
