"""Prometheus metrics of one service: the families, a per-call observer that feeds them, `GET /metrics`.

Every family lives in the app's own `CollectorRegistry`, never the process-wide default, so several apps in one
process (tests, an embedding host) each count their own calls. Labels take only values from a small closed set
(outcomes, the flow's state and tool names, stages, strategies, brain kinds): never a call id or a number.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable, Iterable
from typing import Literal

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from orchestrator.call.observer import (
    BargeInOutcome,
    LookupResultKind,
    NullObserver,
    ToolCallResult,
)

__all__ = ["CallMetrics", "ServiceMetrics", "metrics_response"]

# A reply later than a few seconds has already failed the caller: finer buckets below one second.
_TURN_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0)
_LOOKUP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)
_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_BARGE_IN_LABEL: dict[BargeInOutcome, str] = {
    "interrupted": "confirmed",
    "backchannel": "resumed",
    "ignored": "ignored",
}
_LOOKUP_LABEL: dict[LookupResultKind, str] = {
    "order_found": "found",
    "order_not_found": "not_found",
    "lookup_failed": "failed",
}
TurnStage = Literal["end_of_turn", "brain", "first_audio"]
UNDECLARED_TOOL = "undeclared"


class ServiceMetrics:
    """The service's metric families, in their own registry."""

    def __init__(
        self,
        *,
        active_calls: Callable[[], int],
        tools: Iterable[str] = (),
        action_tools: Iterable[str] = (),
        strategies: Iterable[str] = (),
    ) -> None:
        registry = self.registry = CollectorRegistry()
        self._tools = frozenset(tools)
        self.active_calls = Gauge(
            "orchestrator_active_calls",
            "Calls in progress: answered and not yet finished.",
            registry=registry,
        )
        self.active_calls.set_function(lambda: float(active_calls()))
        self.calls_started = Counter(
            "orchestrator_calls_started", "Calls answered at the voice webhook.", registry=registry
        )
        self.calls = Counter(
            "orchestrator_calls",
            "Finished calls by outcome and the flow state they ended in.",
            ["outcome", "final_state"],
            registry=registry,
        )
        self.turn_latency = Histogram(
            "orchestrator_turn_latency_seconds",
            "Per caller turn: end of speech to end of turn detected (end_of_turn), end of turn to the "
            "reply's first audio (brain), end of speech to the reply's first audio (first_audio).",
            ["stage"],
            buckets=_TURN_BUCKETS,
            registry=registry,
        )
        self.first_prompt = Histogram(
            "orchestrator_first_prompt_latency_seconds",
            "Media stream start to the agent's first audio on it.",
            buckets=_TURN_BUCKETS,
            registry=registry,
        )
        self.barge_ins = Counter(
            "orchestrator_barge_ins",
            "Caller speech over the agent: confirmed (the agent was cut off), resumed (a short sound; "
            "the agent went on), ignored (the state is not interruptible).",
            ["outcome"],
            registry=registry,
        )
        self.lookups = Counter(
            "orchestrator_lookups", "Order lookups by result.", ["result"], registry=registry
        )
        self.lookup_latency = Histogram(
            "orchestrator_lookup_latency_seconds",
            "Order lookup time as the call waited on it (retries included), by result.",
            ["result"],
            buckets=_LOOKUP_BUCKETS,
            registry=registry,
        )
        self.tool_calls = Counter(
            "orchestrator_tool_calls",
            "Tool calls from the brain: accepted (the state allows the tool) or refused.",
            ["tool", "result"],
            registry=registry,
        )
        self.tool_actions = Counter(
            "orchestrator_tool_actions",
            "Tool actions (`http:` or a code handler) by tool: done or failed.",
            ["tool", "result"],
            registry=registry,
        )
        self.tool_action_latency = Histogram(
            "orchestrator_tool_action_latency_seconds",
            "How long a tool's action took, by tool.",
            ["tool"],
            buckets=_LOOKUP_BUCKETS,
            registry=registry,
        )
        self.escalations = Counter(
            "orchestrator_escalation_steps",
            "Escalation strategies tried, by strategy and whether it worked.",
            ["strategy", "result"],
            registry=registry,
        )
        self.brain_failures = Counter(
            "orchestrator_brain_failures",
            "Brains that failed mid-call (the flow's brain_failed route), by brain kind.",
            ["brain"],
            registry=registry,
        )
        self.brain_reconnects = Counter(
            "orchestrator_brain_reconnects",
            "Brain connections re-established mid-call, by brain kind.",
            ["brain"],
            registry=registry,
        )
        self.store_write_failures = Counter(
            "orchestrator_call_store_write_failures",
            "Call-record writes the call store refused (each attempt; records are retried).",
            registry=registry,
        )
        self.loop_lag = Histogram(
            "orchestrator_event_loop_lag_seconds",
            "How late the event loop ran a timer (sampled): anything high means something blocks it.",
            buckets=_LAG_BUCKETS,
            registry=registry,
        )
        # Known label values start at zero, so a dashboard shows a flat line rather than no series.
        for stage in ("end_of_turn", "brain", "first_audio"):
            self.turn_latency.labels(stage)
        for barge in _BARGE_IN_LABEL.values():
            self.barge_ins.labels(barge)
        for lookup in _LOOKUP_LABEL.values():
            self.lookups.labels(lookup)
            self.lookup_latency.labels(lookup)
        for tool in self._tools:
            for tool_result in ("accepted", "refused"):
                self.tool_calls.labels(tool, tool_result)
        for tool in action_tools:
            if tool in self._tools:
                self.tool_action_latency.labels(tool)
                for action_result in ("done", "failed"):
                    self.tool_actions.labels(tool, action_result)
        for strategy in strategies:
            for step in ("succeeded", "failed"):
                self.escalations.labels(strategy, step)

    def observer(self, *, brain: str) -> CallMetrics:
        """What one call reports into these families."""
        # The brain kind is known only once a call has one: from its first call on, a flat zero.
        self.brain_failures.labels(brain)
        self.brain_reconnects.labels(brain)
        return CallMetrics(self, brain=brain)

    def tool_label(self, tool: str) -> str:
        # A model may call a tool the flow never declared: its name must not become a new series.
        return tool if tool in self._tools else UNDECLARED_TOOL

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def watch_loop_lag(self, interval_s: float = 0.5) -> None:
        """Sample how late the loop wakes a sleeper, until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + interval_s
            await asyncio.sleep(interval_s)
            self.loop_lag.observe(max(0.0, loop.time() - due))


class CallMetrics(NullObserver):
    """One call's observer: each fact becomes a counter or histogram update, nothing more."""

    def __init__(self, metrics: ServiceMetrics, *, brain: str) -> None:
        self._metrics = metrics
        self._brain = brain

    def webhook_answered(self, *, at: float) -> None:
        self._metrics.calls_started.inc()

    def turn(
        self, *, state: str, speech_ended: float, turn_detected: float, reply_started: float
    ) -> None:
        latency = self._metrics.turn_latency
        latency.labels("end_of_turn").observe(max(0.0, turn_detected - speech_ended))
        latency.labels("brain").observe(max(0.0, reply_started - turn_detected))
        latency.labels("first_audio").observe(max(0.0, reply_started - speech_ended))

    def first_prompt(self, *, stream_started: float, audio_started: float) -> None:
        self._metrics.first_prompt.observe(max(0.0, audio_started - stream_started))

    def barge_in(self, outcome: BargeInOutcome, *, at: float) -> None:
        self._metrics.barge_ins.labels(_BARGE_IN_LABEL[outcome]).inc()

    def tool_call(self, *, tool: str, result: ToolCallResult, at: float) -> None:
        self._metrics.tool_calls.labels(self._metrics.tool_label(tool), result).inc()

    def lookup(
        self, *, result: LookupResultKind, by: Literal["order_number", "phone"], started: float,
        ended: float
    ) -> None:
        label = _LOOKUP_LABEL[result]
        self._metrics.lookups.labels(label).inc()
        self._metrics.lookup_latency.labels(label).observe(max(0.0, ended - started))

    def tool_action(self, *, tool: str, succeeded: bool, started: float, ended: float) -> None:
        label = self._metrics.tool_label(tool)
        self._metrics.tool_actions.labels(label, "done" if succeeded else "failed").inc()
        self._metrics.tool_action_latency.labels(label).observe(max(0.0, ended - started))

    def escalation_step(
        self, *, strategy: str, succeeded: bool, started: float, ended: float
    ) -> None:
        self._metrics.escalations.labels(strategy, "succeeded" if succeeded else "failed").inc()

    def brain_failed(self, *, reason: str, at: float) -> None:
        self._metrics.brain_failures.labels(self._brain).inc()

    def brain_reconnected(self, *, at: float) -> None:
        self._metrics.brain_reconnects.labels(self._brain).inc()

    def call_finished(self, *, outcome: str, final_state: str, at: float) -> None:
        self._metrics.calls.labels(outcome, final_state).inc()


def metrics_response(request: web.Request, metrics: ServiceMetrics, token: str | None) -> web.Response:
    """The exposition, behind `Authorization: Bearer <token>` when a token is set."""
    if token is not None:
        given = request.headers.get("Authorization", "")
        scheme, _, credential = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(credential.encode(), token.encode()):
            return web.Response(
                status=401,
                text="a bearer token is required (ORCHESTRATOR_METRICS_TOKEN)\n",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
    response = web.Response(body=metrics.render())
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
