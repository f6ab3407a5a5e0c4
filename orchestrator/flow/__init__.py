"""Flows: the YAML that declares each call as a state machine, its loader, and the per-call engine.

    flow = load_flow("flows/order_status.yaml")   # FlowError lists every `path:line:col: message`
    machine = CallMachine(flow, context={"caller": {"number": "+254711000001"}})
    machine.start()                                # StateEntered(state="greeting", ...)
    machine.send("stream_started")                 # StateEntered(state="identifying", ...)

No sockets and no asyncio here: flows load once at start-up and the machine steps synchronously.
"""

from orchestrator.flow.diagram import to_mermaid
from orchestrator.flow.loader import load_flow, load_flow_text
from orchestrator.flow.machine import CallMachine, StateEntered, machine_class
from orchestrator.flow.model import KNOWN_EVENTS, Flow, StateSpec, ToolSpec, Transition
from orchestrator.flow.summary import FlowSummary, check_flow, summarize
from orchestrator.flow.templates import render

__all__ = [
    "CallMachine",
    "Flow",
    "FlowSummary",
    "KNOWN_EVENTS",
    "StateEntered",
    "StateSpec",
    "ToolSpec",
    "Transition",
    "check_flow",
    "load_flow",
    "load_flow_text",
    "machine_class",
    "render",
    "summarize",
    "to_mermaid",
]
