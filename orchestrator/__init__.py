"""Order-status phone voice agents on Sautikit: every call an explicit state machine declared in YAML.

    from orchestrator import Settings, add_routes, load_flow, make_brain_factory

    settings = Settings(public_url="https://agent.example.com", orders_base_url="https://shop.example.com")
    flow = load_flow(settings.flow)
    add_routes(app, settings=settings, flow=flow, brain_factory=make_brain_factory(settings, flow))

Everything named here is the public API; anything else is internal and may change. Test helpers live in
`orchestrator.testing`.
"""

from orchestrator.app import add_routes, create_app
from orchestrator.brain_choice import make_brain_factory
from orchestrator.brains.base import (
    AgentAudio,
    AgentUtteranceEnd,
    Brain,
    BrainEvent,
    BrainFailure,
    CallInfo,
    Heard,
    ModelInterrupted,
    Speech,
    StateBrief,
    ToolCall,
    TurnComplete,
)
from orchestrator.call.tools import ToolCallContext, ToolError, ToolHandler
from orchestrator.errors import (
    BrainError,
    ConfigError,
    FlowError,
    FlowProblem,
    OrchestratorError,
    OrdersError,
    SignatureError,
    StreamError,
    TelephonyError,
    WebhookError,
)
from orchestrator.flow import CallMachine, Flow, StateEntered, load_flow, to_mermaid
from orchestrator.settings import Routes, Settings

__all__ = [
    "AgentAudio",
    "AgentUtteranceEnd",
    "Brain",
    "BrainError",
    "BrainEvent",
    "BrainFailure",
    "CallInfo",
    "CallMachine",
    "ConfigError",
    "Flow",
    "FlowError",
    "FlowProblem",
    "Heard",
    "ModelInterrupted",
    "OrchestratorError",
    "OrdersError",
    "Routes",
    "Settings",
    "SignatureError",
    "Speech",
    "StateBrief",
    "StateEntered",
    "StreamError",
    "TelephonyError",
    "ToolCall",
    "ToolCallContext",
    "ToolError",
    "ToolHandler",
    "TurnComplete",
    "WebhookError",
    "add_routes",
    "create_app",
    "load_flow",
    "make_brain_factory",
    "to_mermaid",
]
