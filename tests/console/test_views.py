"""What the console reads back from a stored call: lines on the recording's clock, latencies, the flow path."""

from __future__ import annotations

import json
from datetime import date

from orchestrator.call.store import StoredCall
from orchestrator.cli import main
from orchestrator.console.views import (
    CallFilter,
    PathStep,
    call_page,
    diagram_with_path,
    latency_chart,
    matches,
)
from orchestrator.flow import load_flow
from orchestrator.settings import DEFAULT_FLOW

ENTRIES = [
    (0, "call", "HD_v1 from +2547*****678 to +2547*****000 flow order_status"),
    (0, "state", "-> greeting"),
    (1500, "stream", "connected"),
    (1500, "state", "greeting -> identifying (stream_started)"),
    (4200, "caller", '"Where is my order?"'),
    (4900, "latency", "reply audio 700 ms after the caller stopped (end of turn detected 380 ms, agent 320 ms)"),
    (5000, "state", "identifying -> escalating (tool:transfer_to_human)"),
]


def _stored(**overrides) -> StoredCall:
    transcript = {
        "call_sid": "HD_v1",
        "outcome": "escalated",
        "entries": [{"at_ms": at, "kind": kind, "text": text} for at, kind, text in ENTRIES],
    }
    fields = {
        "call_sid": "HD_v1",
        "caller_masked": "+2547*****678",
        "flow": "order_status",
        "outcome": "escalated",
        "final_state": "escalating",
        "started_at": "2026-12-04T10:00:00.000+00:00",
        "duration_s": 5.0,
        "turns": 1,
        "barge_ins": 0,
        "escalation": "dialled",
        "transcript_text": "",
        "transcript_json": json.dumps(transcript),
    }
    return StoredCall(**{**fields, **overrides})


def test_views_place_lines_on_the_recordings_clock_from_the_stream_start():
    """The recording starts with the media stream: a line's place in it is its time minus the stream's."""
    page = call_page(_stored())
    assert page.stream_offset_ms == 1500
    caller = next(line for line in page.lines if line.kind == "caller")
    assert caller.audio_s == 2.7
    assert caller.clock == "00:04.200"
    assert page.lines[0].audio_s is None, "before the stream there is no audio"


def test_views_read_turn_latencies_and_the_path_through_states():
    """Latency lines become figures by stage; state lines become the ordered path with their events."""
    page = call_page(_stored())
    (turn,) = page.latencies
    assert (turn.total_ms, turn.end_of_turn_ms, turn.brain_ms) == (700, 380, 320)
    assert page.path == (
        PathStep(state="greeting", event=None),
        PathStep(state="identifying", event="stream_started"),
        PathStep(state="escalating", event="tool:transfer_to_human"),
    )
    chart = latency_chart(page.latencies)
    (bar,) = chart.bars
    assert chart.top_ms == 700
    assert bar.end_of_turn_height + bar.brain_height == chart.baseline_y - 12


def test_views_mark_visited_states_and_the_last_one_on_the_diagram():
    """The flow's Mermaid gets classes: earlier states `visited`, where the call ended `last`."""
    diagram = diagram_with_path(load_flow(DEFAULT_FLOW), call_page(_stored()).path)
    assert diagram.startswith("stateDiagram-v2\n")
    assert "    class greeting,identifying visited\n" in diagram
    assert diagram.endswith("    class escalating last\n")


def test_views_filter_by_outcome_date_and_escalation():
    """The list's filters: outcome, an inclusive date range, escalated or not."""
    call = _stored()
    assert matches(call, CallFilter())
    assert matches(call, CallFilter(outcome="escalated", escalated=True))
    assert not matches(call, CallFilter(outcome="resolved"))
    assert not matches(call, CallFilter(escalated=False))
    assert matches(call, CallFilter(since=date(2026, 12, 4), until=date(2026, 12, 4)))
    assert not matches(call, CallFilter(since=date(2026, 12, 5)))


def test_views_survive_a_transcript_that_is_not_json():
    """A damaged stored transcript shows an empty page, not an error."""
    page = call_page(_stored(transcript_json="not json"))
    assert page.lines == () and page.path == () and page.stream_offset_ms is None


def test_console_command_refuses_to_start_without_a_token(monkeypatch, capsys, tmp_path):
    """`orchestrator console` shows callers' conversations: without ORCHESTRATOR_CONSOLE_TOKEN it will not start."""
    monkeypatch.delenv("ORCHESTRATOR_CONSOLE_TOKEN", raising=False)
    assert main(["console", "--db", str(tmp_path / "calls.sqlite3")]) == 2
    assert "ORCHESTRATOR_CONSOLE_TOKEN" in capsys.readouterr().err
