"""`orchestrator test`: a flow's scripted calls through the real stack, checked against snapshots.

Each script (docs/call-scripts.md) is placed as a real call: the aiohttp service on a loopback port,
the fake Sautikit speaking the caller's turns, the scripted brain playing the model's, the embedded
demo orders backend answering lookups. The loop's clock is fast-forwarded (looptime), so a minute-long
call takes milliseconds and reads the same on every machine. Each call is then

- checked against its script's `expect:` steps, located at `file:line:col`;
- rendered in the script's snapshot form (the conversation alone by default, or timed) and compared
  with the reviewed `__snapshots__/<script>.txt` beside it: a difference is a unified diff, in full;
- counted towards a coverage table of the flow's states and routes.

`--update` rewrites the snapshots of the scripts it ran, and only those: none is ever deleted.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TextIO

import looptime

from orchestrator.errors import FlowError
from orchestrator.flow import Flow, load_flow
from orchestrator.harness import CallRecord, place_call
from orchestrator.script import CallerTurn, Expect, PressTurn, ScriptFile, load_script_file
from orchestrator.settings import Settings

__all__ = [
    "Coverage",
    "ScriptResult",
    "TestRun",
    "check_expectations",
    "find_scripts",
    "render_snapshot",
    "run_flow_tests",
    "snapshot_path",
]

SNAPSHOTS = "__snapshots__"
Status = Literal["passed", "changed", "new", "failed", "error"]
_STATE_LINE = re.compile(r"^(?:(?P<source>\w+) )?-> (?P<target>\w+)(?: \((?P<event>[^)]+)\))?$")


def find_scripts(paths: Iterable[str | Path]) -> list[Path]:
    """The scripts named: files as given, folders as their `*.yaml` (not subfolders), sorted."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found.extend(sorted([*path.glob("*.yaml"), *path.glob("*.yml")]))
        else:
            found.append(path)
    return found


def snapshot_path(script: Path) -> Path:
    """Where a script's reviewed snapshot lives: `__snapshots__/<name>.txt` beside it."""
    return script.parent / SNAPSHOTS / f"{script.stem}.txt"


def render_snapshot(record: CallRecord) -> str | None:
    """The call in its script's snapshot form (None when the script keeps no snapshot)."""
    form = record.script.snapshot
    if form == "none":
        return None
    if form == "timed":
        return record.render(prompts=True)
    return record.render_conversation()


@dataclass(frozen=True, slots=True, kw_only=True)
class _Segment:
    """What happened from one caller line to the next: the states the call was in, tools, words."""

    heard: str | None  # the caller line that opened the segment (None: the start of the call)
    states: tuple[str, ...]
    tools: tuple[str, ...]
    said: tuple[str, ...]


def _segments(record: CallRecord) -> list[_Segment]:
    segments: list[_Segment] = []
    heard: str | None = None
    state = ""
    states: list[str] = []
    tools: list[str] = []
    said: list[str] = []
    for entry in record.transcript:
        if entry.kind in ("caller", "keypad"):  # a keypad entry is the caller's turn too
            segments.append(
                _Segment(heard=heard, states=tuple(states), tools=tuple(tools), said=tuple(said))
            )
            heard, states, tools, said = entry.text, [state], [], []
        elif entry.kind == "state" and (match := _STATE_LINE.match(entry.text)):
            state = match["target"]
            states.append(state)
        elif entry.kind == "tool":
            tools.append(entry.text.split(" ", 1)[0])
        elif entry.kind == "agent":
            said.append(entry.text)
        elif entry.kind == "xml":
            said.extend(re.findall(r"<Say[^>]*>([^<]*)</Say>", entry.text))
    segments.append(
        _Segment(heard=heard, states=tuple(states), tools=tuple(tools), said=tuple(said))
    )
    return segments


def _whole_call(segments: Sequence[_Segment]) -> _Segment:
    return _Segment(
        heard=None,
        states=tuple(s for segment in segments for s in segment.states),
        tools=tuple(t for segment in segments for t in segment.tools),
        said=tuple(w for segment in segments for w in segment.said),
    )


def check_expectations(script: ScriptFile, record: CallRecord) -> list[str]:
    """Every `expect:` of the script that the call did not meet, as `file:line:col: message`."""
    segments = _segments(record)
    failures: list[str] = []
    heard = 0
    checks: list[tuple[tuple[str | int, ...], Expect, _Segment, str]] = []
    for index, turn in enumerate(script.script.turns):
        if isinstance(turn, CallerTurn | PressTurn):
            heard += 1
        if turn.expect is None:
            continue
        segment = segments[heard] if heard < len(segments) else None
        if segment is None:
            message = f"the call never heard caller line {heard} (it heard {len(segments) - 1})"
            failures.append(str(script.source.problem(("turns", index, "expect"), message)))
            continue
        since = "since the start" if heard == 0 else f"after the caller's {segment.heard}"
        checks.append((("turns", index, "expect"), turn.expect, segment, since))
    if script.script.expect is not None:
        checks.append((("expect",), script.script.expect, _whole_call(segments), "in the call"))
    for loc, expect, segment, since in checks:
        failures.extend(
            str(script.source.problem((*loc, key), message))
            for key, message in _unmet(expect, segment, since, record.transcript.outcome)
        )
    return failures


def _unmet(expect: Expect, segment: _Segment, since: str, outcome: str) -> list[tuple[str, str]]:
    unmet: list[tuple[str, str]] = []
    if expect.state is not None and expect.state not in segment.states:
        were = ", ".join(dict.fromkeys(segment.states)) or "-"
        unmet.append(("state", f"expected state {expect.state} {since}; the call was in {were}"))
    if expect.tool is not None and expect.tool not in segment.tools:
        called = ", ".join(segment.tools) or "no tool"
        unmet.append(
            ("tool", f"expected a call of {expect.tool} {since}; the model called {called}")
        )
    if expect.says is not None and not any(expect.says.lower() in s.lower() for s in segment.said):
        said = " / ".join(segment.said) or "nothing"
        unmet.append(("says", f"expected the agent to say {expect.says!r} {since}; it said {said}"))
    if expect.outcome is not None and expect.outcome != outcome:
        unmet.append(("outcome", f"expected outcome {expect.outcome}; the call was {outcome}"))
    return unmet


@dataclass(slots=True)
class Coverage:
    """Which states and routes of the flow the scripts' calls went through, and how often."""

    flow: Flow
    states: Counter[str] = field(default_factory=Counter)
    routes: Counter[tuple[str, str, str]] = field(default_factory=Counter)  # (from, event, to)

    def add(self, record: CallRecord) -> None:
        for text in record.transcript.of_kind("state"):
            match = _STATE_LINE.match(text)
            if match is None:
                continue
            self.states[match["target"]] += 1
            if match["source"] and match["event"]:
                self.routes[match["source"], match["event"], match["target"]] += 1

    def declared(self) -> list[tuple[str, str, str, int]]:
        """Every declared route as (from, event, to, times taken); `*` stands for a global route."""
        rows: list[tuple[str, str, str, int]] = []
        for state, spec in self.flow.states.items():
            for event, transitions in spec.on.items():
                for target in dict.fromkeys(t.target for t in transitions):
                    rows.append((state, event, target, self.routes[state, event, target]))
        for event, transitions in self.flow.on.items():
            for target in dict.fromkeys(t.target for t in transitions):
                taken = sum(
                    count
                    for (source, routed, to), count in self.routes.items()
                    if routed == event and to == target and event not in self.flow.states[source].on
                )
                rows.append(("*", event, target, taken))
        return rows

    def render(self) -> str:
        routes = self.declared()
        entered = sum(1 for state in self.flow.states if self.states[state])
        taken = sum(1 for *_, count in routes if count)
        width = max(len(state) for state in self.flow.states)
        lines = [
            f"coverage: {entered} of {len(self.flow.states)} states, "
            f"{taken} of {len(routes)} routes (* = a global route)",
            f"  {'state':<{width}}  calls",
        ]
        lines += [
            f"  {state:<{width}}  {self.states[state]:>5}{'' if self.states[state] else '  never'}"
            for state in self.flow.states
        ]
        labels = [f"{source} --{event}--> {target}" for source, event, target, _ in routes]
        label_width = max((len(label) for label in labels), default=5)
        lines.append(f"  {'route':<{label_width}}  taken")
        lines += [
            f"  {label:<{label_width}}  {count:>5}{'' if count else '  never'}"
            for label, (*_, count) in zip(labels, routes, strict=True)
        ]
        return "\n".join(lines)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScriptResult:
    """One script's run: its status, what differed, what failed."""

    path: Path
    status: Status
    diff: str = ""
    failures: tuple[str, ...] = ()
    updated: bool = False


@dataclass(slots=True)
class TestRun:
    """Every script's result and the flow's coverage."""

    results: list[ScriptResult]
    coverage: Coverage

    @property
    def ok(self) -> bool:
        return all(r.status == "passed" or (r.updated and not r.failures) for r in self.results)


async def run_scripts(
    flow_path: Path,
    scripts: Sequence[Path],
    *,
    update: bool = False,
    on_result: Callable[[ScriptResult], None] | None = None,
) -> TestRun:
    """Place every script's call against the flow, one after another, and check each."""
    flow = load_flow(flow_path)
    # Lookups are answered by the embedded demo backend, whatever API the flow points at: scripts
    # are deterministic and never reach a live shop.
    calls_flow = flow.model_copy(
        update={"orders": type(flow.orders)(require_phone_match=flow.orders.require_phone_match)}
    )
    settings = Settings(
        flow=flow_path, fallback_voice="synthetic", orders_base_url=None, transcripts_dir=None
    )
    coverage = Coverage(flow)
    results: list[ScriptResult] = []
    for path in scripts:
        result = await _run_one(path, flow, calls_flow, settings, coverage, update=update)
        results.append(result)
        if on_result is not None:
            on_result(result)
    return TestRun(results=results, coverage=coverage)


async def _run_one(
    path: Path,
    flow: Flow,
    calls_flow: Flow,
    settings: Settings,
    coverage: Coverage,
    *,
    update: bool,
) -> ScriptResult:
    try:
        script = load_script_file(path, flow=flow)
    except FlowError as exc:
        return ScriptResult(path=path, status="error", failures=tuple(map(str, exc.problems)))
    try:
        record = await place_call(script.script, flow=calls_flow, settings=settings)
    except (TimeoutError, OSError, KeyError) as exc:
        message = f"{path}: the call did not finish: {exc!r}"
        return ScriptResult(path=path, status="error", failures=(message,))
    coverage.add(record)
    failures = tuple(check_expectations(script, record))
    actual = render_snapshot(record)
    if actual is None:
        return ScriptResult(path=path, status="failed" if failures else "passed", failures=failures)
    target = snapshot_path(path)
    expected = target.read_text(encoding="utf-8") if target.exists() else None
    if expected == actual:
        status: Status = "failed" if failures else "passed"
        return ScriptResult(path=path, status=status, failures=failures)
    diff = "".join(
        difflib.unified_diff(
            (expected or "").splitlines(keepends=True),
            actual.splitlines(keepends=True),
            fromfile=f"{target} (reviewed)" if expected is not None else "/dev/null",
            tofile=f"{path} (this run)",
        )
    )
    if update:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(actual, encoding="utf-8")
    status = "failed" if failures else "new" if expected is None else "changed"
    return ScriptResult(path=path, status=status, diff=diff, failures=failures, updated=update)


_LABELS: dict[Status, str] = {
    "passed": "ok",
    "changed": "CHANGED",
    "new": "NEW",
    "failed": "FAILED",
    "error": "ERROR",
}


def run_flow_tests(
    flow_path: Path,
    paths: Sequence[str | Path],
    *,
    update: bool = False,
    coverage: bool = True,
    out: TextIO,
) -> int:
    """`orchestrator test`: run; print results, diffs, failures and coverage; return the exit code."""
    scripts = find_scripts(paths)
    if not scripts:
        print(f"orchestrator test: no call scripts in {', '.join(map(str, paths))}", file=out)
        return 2
    print(f"orchestrator test: {len(scripts)} scripts against {flow_path}", file=out, flush=True)

    def report(result: ScriptResult) -> None:
        note = " (snapshot updated)" if result.updated else ""
        print(f"  {_LABELS[result.status]:<8} {result.path}{note}", file=out, flush=True)

    # A fast-forwarded clock: the loop jumps ahead whenever every task waits on a timer.
    loop = looptime.new_event_loop(start=0)
    try:
        run = loop.run_until_complete(
            run_scripts(flow_path, scripts, update=update, on_result=report)
        )
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    for result in run.results:
        if result.diff:
            verb = (
                "snapshot written"
                if result.updated
                else "no reviewed snapshot yet"
                if result.status == "new"
                else "differs from its reviewed snapshot"
            )
            print(f"\n=== {result.path}: {verb}", file=out)
            print(result.diff, end="", file=out)
    failures = [failure for result in run.results for failure in result.failures]
    if failures:
        print("\nfailed:", file=out)
        for failure in failures:
            print(f"  {failure}", file=out)
    if coverage:
        print(f"\n{run.coverage.render()}", file=out)
    counts = Counter(result.status for result in run.results)
    updated = sum(1 for result in run.results if result.updated)
    summary = ", ".join(
        [f"{counts[s]} {s}" for s in _LABELS if counts[s]]
        + ([f"{updated} snapshots written"] if updated else [])
    )
    print(f"\n{summary}", file=out)
    if not update and (counts["changed"] or counts["new"]):
        print(
            "Review the differences; if they are intended, run again with --update "
            "(it rewrites only these scripts' snapshots).",
            file=out,
        )
    return 0 if run.ok else 1
