"""A flow in a few readable lines, for `orchestrator flow check FILE`.

Imports this package's model and loader only.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestrator.flow.loader import load_flow
from orchestrator.flow.model import Flow

__all__ = ["FlowSummary", "StateSummary", "check_flow", "summarize", "summarize_flow"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StateSummary:
    """One state's behaviour at a glance."""

    name: str
    tools: tuple[str, ...]
    timeout: float | None
    interruptible: bool
    final: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowSummary:
    """What a product person checks after editing a flow."""

    name: str
    version: int
    initial: str
    states: tuple[StateSummary, ...]
    events: tuple[str, ...]  # every event some state routes or a counter counts, sorted
    tools: tuple[str, ...]
    counters: tuple[tuple[str, tuple[str, ...]], ...]
    strategies: tuple[str, ...]
    initial_outbound: str | None = None

    def __str__(self) -> str:
        width = max(len(state.name) for state in self.states)
        lines = [
            f"flow {self.name} v{self.version}: {len(self.states)} states, initial {self.initial}"
            + (f", outbound calls start at {self.initial_outbound}" if self.initial_outbound else ""),
            "states:",
        ]
        for state in self.states:
            if state.final:
                detail = "final"
            else:
                tools = ", ".join(state.tools) or "no tools"
                timeout = "no timeout" if state.timeout is None else f"timeout {state.timeout:g}s"
                barge_in = "interruptible" if state.interruptible else "not interruptible"
                detail = f"{tools}; {timeout}; {barge_in}"
            lines.append(f"  {state.name:<{width}}  {detail}")
        lines.append(f"events: {', '.join(self.events) or '-'}")
        lines.append(f"tools: {', '.join(self.tools) or '-'}")
        counters = "; ".join(f"{name} <- {', '.join(events)}" for name, events in self.counters)
        lines.append(f"counters: {counters or '-'}")
        lines.append(f"escalation: {' -> '.join(self.strategies) or '-'}")
        return "\n".join(lines)


def summarize_flow(flow: Flow) -> FlowSummary:
    """The summary of a loaded flow."""
    events = {event for events in flow.counters.values() for event in events}
    for name in flow.states:
        events.update(event for event, routes in flow.routes(name).items() if routes)
    return FlowSummary(
        name=flow.name,
        version=flow.version,
        initial=flow.initial,
        initial_outbound=flow.initial_outbound,
        states=tuple(
            StateSummary(
                name=name,
                tools=spec.tools,
                timeout=spec.timeout,
                interruptible=spec.interruptible,
                final=spec.final,
            )
            for name, spec in flow.states.items()
        ),
        events=tuple(sorted(events)),
        tools=tuple(flow.tools),
        counters=tuple(flow.counters.items()),
        strategies=() if flow.escalation is None else flow.escalation.strategies,
    )


def summarize(flow: Flow) -> str:
    """The human summary `orchestrator flow check` prints."""
    return str(summarize_flow(flow))


def check_flow(path: str | Path) -> FlowSummary:
    """Load the flow at `path` (raising FlowError with every problem) and summarise it."""
    return summarize_flow(load_flow(path))
