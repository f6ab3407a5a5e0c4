"""What the console's pages show, read from a stored call: pure functions, no HTTP and no templates.

A stored call keeps its whole transcript as JSON (`call/store.py`); this module reads back from it the lines
with their place in the recording, the per-turn latency figures, and the path through the flow's states, and
draws that path onto the flow's Mermaid diagram.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

from orchestrator.call.store import StoredCall
from orchestrator.flow import Flow, to_mermaid

__all__ = [
    "CallFilter",
    "CallPage",
    "ChartBar",
    "LatencyChart",
    "PathStep",
    "TranscriptLine",
    "TurnLatency",
    "call_page",
    "diagram_with_path",
    "latency_chart",
    "matches",
]

_LATENCY = re.compile(
    r"reply audio (?P<total>-?\d+) ms after the caller stopped "
    r"\(end of turn detected (?P<eot>-?\d+) ms, agent (?P<brain>-?\d+) ms\)"
)
_STATE = re.compile(r"^(?:(?P<previous>[\w-]+) )?-> (?P<state>[\w-]+)(?: \((?P<event>[^)]*)\))?$")
# The line marking the recording's time zero (the media stream's start).
_STREAM_START = ("stream", "connected")


@dataclass(frozen=True, slots=True, kw_only=True)
class TranscriptLine:
    at_ms: int
    clock: str  # mm:ss.mmm on the call's clock
    kind: str
    text: str
    audio_s: float | None  # where this line is in the recording; None before the stream began


@dataclass(frozen=True, slots=True, kw_only=True)
class TurnLatency:
    at_ms: int
    end_of_turn_ms: int
    brain_ms: int
    total_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PathStep:
    state: str
    event: str | None  # None for the initial state


@dataclass(frozen=True, slots=True, kw_only=True)
class CallPage:
    call: StoredCall
    lines: tuple[TranscriptLine, ...]
    latencies: tuple[TurnLatency, ...]
    path: tuple[PathStep, ...]
    stream_offset_ms: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallFilter:
    """The list page's filters; None means any."""

    outcome: str | None = None
    since: date | None = None
    until: date | None = None
    escalated: bool | None = None


def matches(call: StoredCall, wanted: CallFilter) -> bool:
    if wanted.outcome is not None and call.outcome != wanted.outcome:
        return False
    day = date.fromisoformat(call.started_at[:10])
    if wanted.since is not None and day < wanted.since:
        return False
    if wanted.until is not None and day > wanted.until:
        return False
    return wanted.escalated is None or (call.escalation is not None) == wanted.escalated


def _clock(at_ms: int) -> str:
    minutes, ms = divmod(at_ms, 60_000)
    seconds, ms = divmod(ms, 1000)
    return f"{minutes:02d}:{seconds:02d}.{ms:03d}"


def call_page(call: StoredCall) -> CallPage:
    """Everything the call page shows, from the stored transcript."""
    try:
        entries = json.loads(call.transcript_json).get("entries", [])
    except (json.JSONDecodeError, AttributeError):
        entries = []
    raw = [
        (int(e["at_ms"]), str(e["kind"]), str(e["text"]))
        for e in entries
        if isinstance(e, dict) and {"at_ms", "kind", "text"} <= e.keys()
    ]
    offset = next((at for at, kind, text in raw if (kind, text) == _STREAM_START), None)
    lines = tuple(
        TranscriptLine(
            at_ms=at,
            clock=_clock(at),
            kind=kind,
            text=text,
            audio_s=(at - offset) / 1000 if offset is not None and at >= offset else None,
        )
        for at, kind, text in raw
    )
    latencies = tuple(
        TurnLatency(
            at_ms=at,
            end_of_turn_ms=int(m["eot"]),
            brain_ms=int(m["brain"]),
            total_ms=int(m["total"]),
        )
        for at, kind, text in raw
        if kind == "latency" and (m := _LATENCY.search(text))
    )
    path = tuple(
        PathStep(state=m["state"], event=m["event"])
        for _at, kind, text in raw
        if kind == "state" and (m := _STATE.match(text))
    )
    return CallPage(
        call=call, lines=lines, latencies=latencies, path=path, stream_offset_ms=offset
    )


def diagram_with_path(flow: Flow, path: Sequence[PathStep]) -> str:
    """The flow's Mermaid diagram with the states this call went through marked, and where it ended."""
    # Global routes (hang-up, brain failure...) as one note: an edge from every state would hide the path.
    diagram = to_mermaid(flow, include_global=False).rstrip("\n")
    visited = [step.state for step in path if step.state in flow.states]
    if not visited:
        return diagram + "\n"
    lines = [
        diagram,
        "    classDef visited fill:#dcefe3,stroke:#17804a,stroke-width:3px,color:#0b3d22",
        "    classDef last fill:#17804a,stroke:#0b3d22,stroke-width:3px,color:#ffffff",
    ]
    earlier = sorted(set(visited) - {visited[-1]}, key=visited.index)
    if earlier:
        lines.append(f"    class {','.join(earlier)} visited")
    lines.append(f"    class {visited[-1]} last")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChartBar:
    x: float
    width: float
    end_of_turn_y: float
    end_of_turn_height: float
    brain_y: float
    brain_height: float
    label: str
    title: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LatencyChart:
    width: int
    height: int
    bars: tuple[ChartBar, ...]
    top_ms: int  # the value of the chart's top line
    baseline_y: float


def latency_chart(
    latencies: Iterable[TurnLatency], *, width: int = 560, height: int = 160
) -> LatencyChart:
    """A stacked bar per turn (end of turn detection under the brain's share), scaled to the slowest."""
    turns = list(latencies)
    margin_top, margin_bottom, margin_left = 12.0, 22.0, 44.0
    top_ms = max([t.total_ms for t in turns] + [100])
    top_ms = int(-(-top_ms // 100) * 100)  # round up to a whole 100 ms
    plot_height = height - margin_top - margin_bottom
    baseline = height - margin_bottom
    slot = (width - margin_left) / max(len(turns), 1)
    bar_width = max(4.0, min(40.0, slot * 0.6))
    bars = []
    for index, turn in enumerate(turns):
        eot = max(turn.end_of_turn_ms, 0) / top_ms * plot_height
        brain = max(turn.total_ms - max(turn.end_of_turn_ms, 0), 0) / top_ms * plot_height
        x = margin_left + index * slot + (slot - bar_width) / 2
        bars.append(
            ChartBar(
                x=round(x, 1),
                width=round(bar_width, 1),
                end_of_turn_y=round(baseline - eot, 1),
                end_of_turn_height=round(eot, 1),
                brain_y=round(baseline - eot - brain, 1),
                brain_height=round(brain, 1),
                label=str(index + 1),
                title=(
                    f"turn {index + 1}: {turn.total_ms} ms "
                    f"(end of turn {turn.end_of_turn_ms} ms, brain {turn.brain_ms} ms)"
                ),
            )
        )
    return LatencyChart(
        width=width, height=height, bars=tuple(bars), top_ms=top_ms, baseline_y=baseline
    )
