"""CallMachine runs the flow's routes itself; python-statemachine running the chart must agree.

The chart class is built once per flow (it checks and draws the flow); a call does not instantiate
it, since python-statemachine resolves every callback of a chart for each instance. These tests
drive both with the same events and compare every step.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from orchestrator.flow import CallMachine, Flow, load_flow, machine_class
from orchestrator.flow.machine import _CallModel
from tests.flows import ORDER_STATUS


class _ChartCall:
    """One call run by an instance of the flow's chart, as CallMachine once did."""

    def __init__(self, flow: Flow) -> None:
        self.flow = flow
        self.model = _CallModel(flow, {})
        self.chart: Any = machine_class(flow)(model=self.model)
        self.state = flow.initial

    def send(self, event: str) -> str | None:
        if self.flow.states[self.state].final:
            return None
        for counter, events in self.flow.counters.items():
            if event in events:
                self.model.counters[counter] += 1
        if not self.flow.transitions(self.state, event):
            return None
        self.model.entered.clear()
        self.chart.send(event)
        if not self.model.entered:
            return None
        self.state = self.model.entered[-1][0]
        return self.state


def _events(flow: Flow) -> list[str]:
    names = {event for state in flow.states for event in flow.routes(state)}
    return sorted(names | {"speech_started", "unknown_event"})


@pytest.mark.parametrize("seed", range(40))
def test_call_machine_takes_the_transitions_python_statemachine_takes(seed: int) -> None:
    """Random event sequences: the same state and counters after every event, None alike."""
    flow = load_flow(ORDER_STATUS)
    rng = random.Random(seed)
    events = _events(flow)
    ours, chart = CallMachine(flow, {}), _ChartCall(flow)
    ours.start()
    for _ in range(60):
        event = rng.choice(events)
        entered = ours.send(event)
        expected = chart.send(event)
        assert (entered.state if entered else None) == expected, event
        assert ours.state == chart.state
        assert dict(ours.counters) == chart.model.counters
