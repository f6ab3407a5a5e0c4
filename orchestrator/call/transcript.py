"""A call's transcript: every state change, utterance, tool call, XML reply and barge-in, on the call clock.

Times are milliseconds since the call's webhook, read from the event loop's clock; tests run that clock
fast-forwarded (looptime), so a transcript is deterministic and reads the same on every machine. `render()` is the
text a product person reviews in a snapshot diff.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from orchestrator.telephony.call_id import parse_call_id

__all__ = ["Entry", "EntryKind", "Outcome", "Transcript", "transcript_files"]

EntryKind = Literal[
    "call",  # call facts: ids, numbers (masked), flow
    "xml",  # XML answered to Sautikit
    "stream",  # WebSocket lifecycle: connected, metadata, closed
    "status",  # a status callback from Sautikit
    "state",  # machine transition
    "model",  # how a state change reached a realtime model (tool result, text, context update, reconnect)
    "caller",  # what the caller said (recognised text)
    "agent",  # what the agent said (full utterance text)
    "barge-in",  # the caller cut the agent off; what was heard
    "tool",  # a tool call from the model
    "result",  # the tool's result as given back to the model
    "lookup",  # an orders API request and its outcome
    "timer",  # a silence timeout fired
    "escalate",  # escalation strategy steps
    "hangup",  # who ended the call
    "error",  # something failed; what the caller heard about it
    "event",  # a Sautikit event webhook about the call
    "record",  # the platform's call record, fetched after the call
    "latency",  # how long the caller waited for the agent's reply, by stage
    "outcome",  # the call's result
]

Outcome = Literal["resolved", "escalated", "abandoned", "failed", "unfinished"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    at_ms: int
    kind: EntryKind
    text: str

    def render(self) -> str:
        minutes, ms = divmod(self.at_ms, 60_000)
        seconds, ms = divmod(ms, 1000)
        return f"[{minutes:02d}:{seconds:02d}.{ms:03d}] {self.kind:<9} {self.text}"


@dataclass(slots=True, kw_only=True)
class Transcript:
    """Append-only record of one call."""

    call_sid: str
    entries: list[Entry] = field(default_factory=list)
    outcome: Outcome = "unfinished"
    # Called with each new entry: live printing in the demo, streaming to a UI.
    listeners: list[Callable[[Entry], None]] = field(default_factory=list)

    def add(self, at_ms: int, kind: EntryKind, text: str) -> Entry:
        entry = Entry(at_ms=at_ms, kind=kind, text=text)
        self.entries.append(entry)
        for listener in self.listeners:
            listener(entry)
        return entry

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def of_kind(self, kind: EntryKind) -> list[str]:
        return [e.text for e in self.entries if e.kind == kind]

    def render(self) -> str:
        return "\n".join(e.render() for e in self.entries) + "\n"

    def as_dict(self) -> Mapping[str, object]:
        return {
            "call_sid": self.call_sid,
            "outcome": self.outcome,
            "entries": [{"at_ms": e.at_ms, "kind": e.kind, "text": e.text} for e in self.entries],
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), ensure_ascii=False, indent=2)


def transcript_files(directory: Path, call_sid: str, *, attempt: int = 1) -> tuple[Path, Path]:
    """The `.txt` and `.json` paths of a call's transcript: always directly inside `directory`.

    The name comes from the call id, checked again here (letters, digits, `_`, `-`), so no id can point
    outside the folder; a later call that reuses an id (`attempt` 2, 3, ...) gets `<id>.2.txt` and so on.

    >>> transcript_files(Path("t"), "HD_1")
    (PosixPath('t/HD_1.txt'), PosixPath('t/HD_1.json'))
    """
    stem = parse_call_id(call_sid) + (f".{attempt}" if attempt > 1 else "")
    files = (directory / f"{stem}.txt", directory / f"{stem}.json")
    for path in files:  # belt and braces: the checked id cannot do this, a future change might
        if path.parent != directory or path.name.startswith("."):
            raise ValueError(f"transcript file {path} would leave {directory}")
    return files
