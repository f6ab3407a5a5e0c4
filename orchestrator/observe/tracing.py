"""OpenTelemetry traces: one trace per call, exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.

The call's root span runs from the voice webhook to the outcome. Its children: `webhook` (until the XML is
answered), `stream` (the media socket), and under the stream one span per caller turn (the caller's wait for
the reply), per tool call, per order lookup and per escalation step. State changes and barge-ins are span
events. Spans are made after the fact from the session's loop-clock moments (mapped onto the wall clock once,
when the call starts), so tracing adds no context switches and nothing to the audio path. Every string
attribute goes through the logs' phone masking.

The SDK is an optional extra (`pip install 'sautikit-orchestrator[otel]'`); its batch processor exports from
its own thread, so a slow collector never holds up a call.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from typing import Literal

from orchestrator.call.observer import (
    BargeInOutcome,
    LookupResultKind,
    NullObserver,
    ToolCallResult,
)
from orchestrator.errors import ConfigError
from orchestrator.logging import mask_phone, mask_phone_numbers_in

__all__ = ["CallTracer", "ServiceTracing", "tracing_configured"]

_ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
SERVICE_NAME = "sautikit-orchestrator"
_Attribute = str | int | float | bool


def tracing_configured(environ: Mapping[str, str] = os.environ) -> bool:
    """Traces are on when the standard OTLP endpoint variable is set (and tracing is not disabled)."""
    if environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return any(environ.get(name) for name in _ENDPOINT_VARIABLES)


def _masked(attributes: Mapping[str, _Attribute | None]) -> dict[str, _Attribute]:
    strings = {k: v for k, v in attributes.items() if isinstance(v, str)}
    masked = mask_phone_numbers_in(strings)
    return {
        k: (str(masked[k]) if isinstance(v, str) else v)
        for k, v in attributes.items()
        if v is not None
    }


class ServiceTracing:
    """The app's own tracer provider and OTLP/HTTP exporter (the SDK reads the OTEL_* variables)."""

    def __init__(self) -> None:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError as exc:
            raise ConfigError(
                "OTEL_EXPORTER_OTLP_ENDPOINT is set but the OpenTelemetry SDK is not installed: "
                "pip install 'sautikit-orchestrator[otel]'"
            ) from exc
        # Not the global provider: each app (and each test) exports its own spans.
        self._provider = TracerProvider(
            resource=Resource.create({"service.name": SERVICE_NAME}), shutdown_on_exit=False
        )
        self._provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        self._tracer = self._provider.get_tracer("orchestrator")

    def observer(
        self, *, call_sid: str, caller: str | None, flow: str, brain: str, started: float
    ) -> CallTracer:
        return CallTracer(
            self._tracer, call_sid=call_sid, caller=caller, flow=flow, brain=brain, started=started
        )

    async def shutdown(self) -> None:
        """Export what is left and stop (the SDK blocks while it flushes: done in a worker thread)."""
        await asyncio.to_thread(self._provider.shutdown)


class CallTracer(NullObserver):
    """One call's spans."""

    def __init__(
        self,
        tracer: object,
        *,
        call_sid: str,
        caller: str | None,
        flow: str,
        brain: str,
        started: float,
    ) -> None:
        from opentelemetry import trace

        self._trace = trace
        self._tracer: trace.Tracer = tracer  # type: ignore[assignment]
        # Loop-clock moment `started` is the wall clock's now: one offset maps every later moment.
        self._offset_ns = time.time_ns() - round(started * 1e9)
        self._root = self._tracer.start_span(
            "call",
            kind=trace.SpanKind.SERVER,
            start_time=self._ns(started),
            attributes=_masked(
                {
                    "call.sid": call_sid,
                    "call.caller": mask_phone(caller) if caller else None,
                    "flow.name": flow,
                    "brain.kind": brain,
                }
            ),
        )
        self._root_context = trace.set_span_in_context(self._root)
        self._started = started
        self._stream: trace.Span | None = None
        self._stream_context = self._root_context

    def _ns(self, at: float) -> int:
        return self._offset_ns + round(at * 1e9)

    def _span(
        self,
        name: str,
        started: float,
        ended: float,
        attributes: Mapping[str, _Attribute | None],
        *,
        error: str | None = None,
    ) -> None:
        span = self._tracer.start_span(
            name,
            context=self._stream_context,
            start_time=self._ns(started),
            attributes=_masked(attributes),
        )
        if error is not None:
            span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, error))
        span.end(end_time=self._ns(ended))

    def webhook_answered(self, *, at: float) -> None:
        span = self._tracer.start_span(
            "webhook", context=self._root_context, start_time=self._ns(self._started)
        )
        span.end(end_time=self._ns(at))

    def stream_started(self, *, at: float) -> None:
        self._stream = self._tracer.start_span(
            "stream", context=self._root_context, start_time=self._ns(at)
        )
        self._stream_context = self._trace.set_span_in_context(self._stream)

    def stream_ended(self, *, at: float) -> None:
        if self._stream is not None:
            self._stream.end(end_time=self._ns(at))
            self._stream = None

    def state_entered(self, *, previous: str | None, state: str, trigger: str, at: float) -> None:
        self._root.add_event(
            "state_entered",
            attributes=_masked({"state.previous": previous, "state.name": state, "trigger": trigger}),
            timestamp=self._ns(at),
        )

    def turn(
        self, *, state: str, speech_ended: float, turn_detected: float, reply_started: float
    ) -> None:
        self._span(
            "turn",
            speech_ended,
            reply_started,
            {
                "state.name": state,
                "turn.end_of_turn_ms": round((turn_detected - speech_ended) * 1000),
                "turn.brain_ms": round((reply_started - turn_detected) * 1000),
            },
        )

    def first_prompt(self, *, stream_started: float, audio_started: float) -> None:
        if self._stream is not None:
            self._stream.set_attribute(
                "first_prompt_ms", round((audio_started - stream_started) * 1000)
            )

    def barge_in(self, outcome: BargeInOutcome, *, at: float) -> None:
        target = self._stream if self._stream is not None else self._root
        target.add_event("barge_in", attributes={"outcome": outcome}, timestamp=self._ns(at))

    def tool_call(self, *, tool: str, result: ToolCallResult, at: float) -> None:
        self._span("tool_call", at, at, {"tool.name": tool, "tool.result": result})

    def tool_action(self, *, tool: str, succeeded: bool, started: float, ended: float) -> None:
        self._span(
            "tool_action",
            started,
            ended,
            {"tool.name": tool, "tool.succeeded": succeeded},
            error=None if succeeded else f"{tool} failed",
        )

    def lookup(
        self, *, result: LookupResultKind, by: Literal["order_number", "phone"], started: float,
        ended: float
    ) -> None:
        self._span(
            "lookup",
            started,
            ended,
            {"lookup.result": result, "lookup.by": by},
            error="lookup failed" if result == "lookup_failed" else None,
        )

    def escalation_step(
        self, *, strategy: str, succeeded: bool, started: float, ended: float
    ) -> None:
        self._span(
            "escalation_step",
            started,
            ended,
            {"escalation.strategy": strategy, "escalation.succeeded": succeeded},
            error=None if succeeded else f"{strategy} failed",
        )

    def brain_failed(self, *, reason: str, at: float) -> None:
        self._root.add_event(
            "brain_failed", attributes=_masked({"reason": reason}), timestamp=self._ns(at)
        )

    def brain_reconnected(self, *, at: float) -> None:
        self._root.add_event("brain_reconnected", timestamp=self._ns(at))

    def call_finished(self, *, outcome: str, final_state: str, at: float) -> None:
        self._root.set_attributes(_masked({"call.outcome": outcome, "call.final_state": final_state}))
        if outcome == "failed":
            self._root.set_status(self._trace.Status(self._trace.StatusCode.ERROR, "call failed"))
        if self._stream is not None:
            self._stream.end(end_time=self._ns(at))
            self._stream = None
        self._root.end(end_time=self._ns(at))
