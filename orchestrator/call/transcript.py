"""A call's transcript: every state change, utterance, tool call, XML reply and barge-in, on the call clock.

Times are milliseconds since the call's webhook, read from the event loop's clock; tests run that clock
fast-forwarded (looptime), so a transcript is deterministic and reads the same on every machine. `render()` is the
text a product person reviews in a snapshot diff. `render_conversation()` is the call without its clock: who
said what, states, tools, results and what each state told the model, so a changed line changes one line.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from orchestrator.telephony.call_id import parse_call_id

__all__ = ["Entry", "EntryKind", "Outcome", "Prompt", "Transcript", "transcript_files"]

EntryKind = Literal[
    "call",  # call facts: ids, numbers (masked), flow
    "xml",  # XML answered to Sautikit
    "stream",  # WebSocket lifecycle: connected, metadata, closed
    "status",  # a status callback from Sautikit
    "state",  # machine transition
    "model",  # how a state change reached a realtime model (tool result, text, context update, reconnect)
    "caller",  # what the caller said (recognised text)
    "keypad",  # what the caller typed on the keypad (one entry) and what it answers
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
    "language",  # the call's language: where it came from, and each switch
    "outcome",  # the call's result
]

# Outbound calls add: a voicemail reached, and attempts nobody answered (no_answer, busy).
Outcome = Literal[
    "resolved",
    "escalated",
    "abandoned",
    "failed",
    "unfinished",
    "voicemail",
    "no_answer",
    "busy",
    "interrupted",  # the service stopped before the call ended (its shutdown grace was spent)
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    at_ms: int
    kind: EntryKind
    text: str

    def render(self) -> str:
        return f"{_stamp(self.at_ms)} {self.kind:<9} {self.text}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Prompt:
    """What the model was told on entering a state: its rendered instructions and allowed tools."""

    at_ms: int
    after: int  # how many entries came before it: where it sits among them
    state: str
    instructions: str | None
    tools: tuple[str, ...]

    def lines(self, *, repeated: bool) -> list[str]:
        """A heading (the state's tools), then its instructions a sentence a line, once per state."""
        tools = ", ".join(self.tools) or "no tools"
        if self.instructions is None:
            return [f"{self.state}: {tools}; no instructions"]
        if repeated:
            return [f"{self.state}: {tools}; instructions as before"]
        return [f"{self.state}: {tools}; instructions:", *_sentences(self.instructions)]


# Entry kinds of the conversation form: what was said and done, not how the wire carried it.
_CONVERSATION: frozenset[EntryKind] = frozenset(
    {
        "language",
        "state",
        "caller",
        "keypad",
        "agent",
        "barge-in",
        "tool",
        "result",
        "lookup",
        "timer",
        "escalate",
        "hangup",
        "error",
        "outcome",
    }
)
_MS = re.compile(r"\d+(?:/\d+)? ms\b")
_MS_IN_PARENS = re.compile(r" ?\(\d+ ms\)")
_SENTENCE_END = re.compile(r"(?<=[.?!])\s+(?=[A-Z])")


@dataclass(slots=True, kw_only=True)
class Transcript:
    """Append-only record of one call."""

    call_sid: str
    entries: list[Entry] = field(default_factory=list)
    outcome: Outcome = "unfinished"
    # The stream connecting -> the agent's first audio: the dead air a caller hears first.
    first_prompt_ms: int | None = None
    # Called with each new entry: live printing in the demo, streaming to a UI.
    listeners: list[Callable[[Entry], None]] = field(default_factory=list)
    # What the model was told: the system prompt, then each state's instructions and tools.
    system_prompt: str | None = None
    prompts: list[Prompt] = field(default_factory=list)
    # The warm hand-off's brief (call/handoff.py), when the call escalated.
    handoff: Mapping[str, object] | None = None

    def add(self, at_ms: int, kind: EntryKind, text: str) -> Entry:
        entry = Entry(at_ms=at_ms, kind=kind, text=text)
        self.entries.append(entry)
        for listener in self.listeners:
            listener(entry)
        return entry

    def told(
        self, at_ms: int, *, state: str, instructions: str | None, tools: tuple[str, ...]
    ) -> None:
        """Record what the model was told on entering `state`."""
        prompt = Prompt(
            at_ms=at_ms,
            after=len(self.entries),
            state=state,
            instructions=instructions,
            tools=tools,
        )
        self.prompts.append(prompt)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.entries)

    def of_kind(self, kind: EntryKind) -> list[str]:
        return [e.text for e in self.entries if e.kind == kind]

    def render(self, *, prompts: bool = False) -> str:
        """Every entry on the call clock; with `prompts`, also what the model was told, and when."""
        if not prompts:
            return "\n".join(e.render() for e in self.entries) + "\n"
        return self._render(timed=True)

    def render_conversation(self) -> str:
        """The call without its clock or wire details, one line per thing said or done."""
        return self._render(timed=False)

    def _render(self, *, timed: bool) -> str:
        lines = _told("", ["system prompt:", *_sentences(self.system_prompt or "")])
        told: dict[str, str | None] = {}
        for item in self._interleaved():
            if isinstance(item, Prompt):
                repeated = item.state in told and told[item.state] == item.instructions
                told[item.state] = item.instructions
                stamp = f"{_stamp(item.at_ms)} " if timed else ""
                lines.extend(_told(stamp, item.lines(repeated=repeated)))
            elif timed:
                lines.append(item.render())
            elif item.kind == "xml" and (verbs := _xml_verbs(item.text)):
                lines.append(f"{'xml':<9} {verbs}")
            elif item.kind in _CONVERSATION:
                lines.append(f"{item.kind:<9} {_without_timing(item.text)}")
        return "\n".join(lines) + "\n"

    def _interleaved(self) -> Iterator[Entry | Prompt]:
        pending = iter(self.prompts)
        prompt = next(pending, None)
        for index, entry in enumerate(self.entries):
            while prompt is not None and prompt.after <= index:
                yield prompt
                prompt = next(pending, None)
            yield entry
        while prompt is not None:
            yield prompt
            prompt = next(pending, None)

    def as_dict(self) -> Mapping[str, object]:
        return {
            "call_sid": self.call_sid,
            "outcome": self.outcome,
            "first_prompt_ms": self.first_prompt_ms,
            "entries": [{"at_ms": e.at_ms, "kind": e.kind, "text": e.text} for e in self.entries],
            **({"handoff": dict(self.handoff)} if self.handoff is not None else {}),
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


def _sentences(text: str) -> list[str]:
    """Text a sentence a line (and a line per line written): an edited sentence is a one-line diff."""
    return [
        sentence
        for line in text.strip().splitlines()
        for sentence in _SENTENCE_END.split(line.strip())
        if sentence
    ]


def _told(stamp: str, lines: list[str]) -> list[str]:
    """`model` lines: the first after `stamp` (a time, or nothing), the rest indented beneath it."""
    head, *rest = lines
    pad = " " * (len(stamp) + 14)
    return [f"{stamp}{'model':<9} {head}", *(f"{pad}{line}" for line in rest)]


def _stamp(at_ms: int) -> str:
    minutes, ms = divmod(at_ms, 60_000)
    seconds, ms = divmod(ms, 1000)
    return f"[{minutes:02d}:{seconds:02d}.{ms:03d}]"


def _without_timing(text: str) -> str:
    """A line without its milliseconds, which move whenever anything earlier in the call changes."""
    parts = [part for part in text.split("; ") if not _MS.search(part)] or [text]
    return _MS_IN_PARENS.sub("", "; ".join(parts))


def _xml_verbs(xml: str) -> str:
    """The verbs of an XML answer, readably: `Say "Hello" + Stream`, `Dial +254700000100`."""
    try:
        root = ET.fromstring(xml)  # noqa: S314 - our own answer, rendered by telephony/xml.py
    except ET.ParseError:
        return xml
    verbs: list[str] = []
    for verb in root:
        text = (verb.text or "").strip()
        if verb.tag == "Say":
            verbs.append(f'Say "{text}"')
        elif verb.tag == "Stream":
            verbs.append("Stream")
        else:
            verbs.append(f"{verb.tag} {text}".strip())
    return " + ".join(verbs)
