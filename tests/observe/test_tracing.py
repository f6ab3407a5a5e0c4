"""One OpenTelemetry trace per call, exported over OTLP/HTTP to a collector listening on a real socket.

The collector is a small fake of the OTLP/HTTP trace receiver (tests/fakes/otlp_collector.py) that decodes the
protobuf bodies the SDK's exporter sends.
"""

from __future__ import annotations

import pytest

from orchestrator.brains.scripted import ScriptedBrain
from orchestrator.harness import serve_line
from orchestrator.script import load_script
from orchestrator.settings import Settings
from tests.calls.test_tool_actions import sms_done_then_failed
from tests.fakes.otlp_collector import fake_otlp_collector
from tests.flows import SCRIPTS

CALLS = SCRIPTS  # the engine tests' pinned call scripts
STATUS_UNSET, STATUS_ERROR = 0, 2  # OTLP's Status.code


async def _traced_call(monkeypatch, script_name: str, call_sid: str):
    """Place one scripted call with OTLP pointed at a fresh fake collector; the collector and the record."""
    script = load_script(CALLS / script_name)
    async with fake_otlp_collector() as collector:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
        async with serve_line(
            settings=Settings(fallback_voice="synthetic"),
            brain_factory=lambda start: ScriptedBrain(script),
        ) as line:
            record = await line.call(script, call_sid=call_sid)
        # Leaving serve_line shut the tracer provider down, which exported every span.
    return collector, record


@pytest.mark.looptime
async def test_tracing_exports_one_trace_per_call_with_its_steps(monkeypatch):
    """A resolved call is one trace: call → webhook and stream → turns, tool calls and the lookup."""
    collector, record = await _traced_call(monkeypatch, "order_number_read_out.yaml", "HD_trace001")
    (call,) = collector.named("call")
    assert collector.requests >= 1
    assert call.service == "sautikit-orchestrator"
    assert call.attributes["call.sid"] == "HD_trace001"
    assert call.attributes["call.outcome"] == record.transcript.outcome == "resolved"
    assert call.attributes["call.final_state"] == "ended"
    assert call.parent_span_id == ""
    assert {span.trace_id for span in collector.spans} == {call.trace_id}, "one trace per call"
    (webhook,) = collector.named("webhook")
    (stream,) = collector.named("stream")
    assert webhook.parent_span_id == stream.parent_span_id == call.span_id
    children = [s for s in collector.spans if s.parent_span_id == stream.span_id]
    names = {span.name for span in children}
    assert {"turn", "tool_call", "lookup"} <= names
    (lookup,) = collector.named("lookup")
    assert lookup.attributes == {"lookup.result": "order_found", "lookup.by": "order_number"}
    assert call.start_ns <= webhook.start_ns <= webhook.end_ns <= stream.start_ns <= stream.end_ns
    assert stream.end_ns <= call.end_ns
    for turn in collector.named("turn"):
        assert turn.attributes["turn.end_of_turn_ms"] >= 0
        assert stream.start_ns <= turn.start_ns <= turn.end_ns <= stream.end_ns
    states = [attrs["state.name"] for name, attrs in call.events if name == "state_entered"]
    assert states[0] == "identifying"
    assert "narrating" in states


@pytest.mark.looptime
async def test_tracing_masks_the_callers_number_and_records_escalation_steps(monkeypatch):
    """The caller's number is masked as in logs; a transfer shows each escalation strategy it tried."""
    collector, _record = await _traced_call(monkeypatch, "asks_for_human.yaml", "HD_trace002")
    (call,) = collector.named("call")
    caller = str(call.attributes["call.caller"])
    assert "*" in caller
    assert "733999888" not in caller
    assert all("733999888" not in str(span.attributes) for span in collector.spans)
    steps = collector.named("escalation_step")
    assert [s.attributes["escalation.strategy"] for s in steps][-1] == "dial"
    assert steps[-1].attributes["escalation.succeeded"] is True
    assert call.attributes["call.outcome"] == "escalated"


@pytest.mark.looptime
async def test_tracing_records_each_tool_action_failed_ones_as_errors(monkeypatch, tmp_path):
    """A flow tool's action is a span under the stream: done, or failed with an error status."""
    async with fake_otlp_collector() as collector:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.url)
        async with sms_done_then_failed(tmp_path):
            pass
        # Leaving the line shut the tracer provider down, which exported every span.
    streams = {span.trace_id: span for span in collector.named("stream")}
    actions = sorted(collector.named("tool_action"), key=lambda span: span.start_ns)
    assert [a.attributes for a in actions] == [
        {"tool.name": "send_tracking_sms", "tool.succeeded": True},
        {"tool.name": "send_tracking_sms", "tool.succeeded": False},
    ]
    assert [a.status_code for a in actions] == [STATUS_UNSET, STATUS_ERROR]
    for action in actions:
        stream = streams[action.trace_id]
        assert action.parent_span_id == stream.span_id
        assert stream.start_ns <= action.start_ns <= action.end_ns <= stream.end_ns
    assert len(streams) == 2, "one trace per call"


async def test_tracing_is_off_without_the_endpoint_variable(monkeypatch):
    """No OTEL_EXPORTER_OTLP_ENDPOINT, no tracer: the app starts without touching the SDK's exporter."""
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    script = load_script(CALLS / "asks_for_human.yaml")
    async with serve_line(
        settings=Settings(fallback_voice="synthetic"),
        brain_factory=lambda start: ScriptedBrain(script),
    ) as line:
        assert line.orchestrator.observability is not None
        assert line.orchestrator.observability.tracing is None
