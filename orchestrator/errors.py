"""The orchestrator's exception tree: one root, one branch per party who must act.

    OrchestratorError
     ├── FlowError            the flow author: carries every located problem (path:line:col: message)
     ├── ConfigError          the operator: a missing or contradictory setting, named
     ├── TelephonyError       bad input from the platform side; carries an HTTP status or WS close code
     │    ├── WebhookError        malformed voice webhook (400)
     │    ├── SignatureError      bad/missing/stale signature or stream token (401/403)
     │    └── StreamError         malformed stream input (WS close 1003/1008)
     ├── BrainError           the LLM adapter failed; the caller hears an apology (event brain_failed)
     └── OrdersError          the shop's orders API failed; the caller hears it (event lookup_failed)
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BrainError",
    "ConfigError",
    "FlowError",
    "FlowProblem",
    "OrchestratorError",
    "OrdersError",
    "SignatureError",
    "StreamError",
    "TelephonyError",
    "WebhookError",
]


class OrchestratorError(Exception):
    """Root of every error this package raises on purpose."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FlowProblem:
    """One problem in a flow file, located for an editor."""

    path: str
    line: int  # 1-based
    column: int  # 1-based
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.message}"


class FlowError(OrchestratorError):
    """A flow definition is invalid; `problems` lists every located error found."""

    def __init__(self, problems: list[FlowProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ConfigError(OrchestratorError):
    """A setting is missing or wrong; the message names it."""


class TelephonyError(OrchestratorError):
    """Bad input from the telephony side, mapped to an HTTP status or a WebSocket close code."""

    status: int = 400
    close_code: int = 1008

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class WebhookError(TelephonyError):
    status = 400


class SignatureError(TelephonyError):
    status = 403


class StreamError(TelephonyError):
    close_code = 1003


class BrainError(OrchestratorError):
    """The LLM adapter failed in a way the call must route (brain_failed)."""


class OrdersError(OrchestratorError):
    """An orders lookup failed (timeout, 5xx, bad payload): the flow's lookup_failed route."""

    def __init__(self, reason: str, *, status: int | None = None) -> None:
        self.reason = reason
        self.status = status
        super().__init__(reason)
