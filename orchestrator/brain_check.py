"""`orchestrator brain check gemini|openai`: one short simulated call against the real service.

Layer: a command on top (like cli.py). It drives a brain adapter the way a call session does, with
caller audio synthesised here, and checks the rules of the model's row in `brains/capabilities.py`:

    orchestrator brain check gemini    # GEMINI_API_KEY, GEMINI_LIVE_MODEL, GEMINI_BASE_URL
    orchestrator brain check openai    # OPENAI_API_KEY, OPENAI_REALTIME_MODEL, OPENAI_REALTIME_URL

The call: a state change with no tool call waiting (the model should greet), the caller asking for
an order (the model should call `lookup_order`), the tool's answer carrying the next state (the
model should speak it), and a cough while it speaks (server barge-in is off: nothing may cut it
off). It prints a pass/fail table; exit 0 when every check passed, 1 when one failed, 2 without a
key. It costs one short session (well under a minute of audio).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from orchestrator.audio.synth import noise_burst, synthesize_speech
from orchestrator.brains.base import (
    AgentAudio,
    Brain,
    BrainEvent,
    BrainFailure,
    CallInfo,
    JSONValue,
    ModelInterrupted,
    Speech,
    StateBrief,
    StateDelivered,
    ToolCall,
    ToolDeclaration,
    TurnComplete,
)
from orchestrator.brains.capabilities import ModelCapabilities, capabilities_for, choose_delivery
from orchestrator.cli_output import format_table
from orchestrator.errors import ConfigError
from orchestrator.script import CallScript

__all__ = ["CALLER_LINE", "CheckReport", "EXPECTED_CALL", "add_brain_commands", "run_check"]

BrainName = Literal["gemini", "openai"]
Result = Literal["pass", "FAIL", "not run"]
CallerVoiceFn = Callable[[str, int], bytes]

RATE = 16000
_FRAME_BYTES = RATE * 2 * 20 // 1000  # 20 ms, as a phone call sends it
CALLER_LINE = "Hello. Where is my order D X one zero four two?"
_LOOKUP = ToolDeclaration(
    name="lookup_order",
    description="Fetch the delivery status of an order by its order number.",
    parameters={
        "type": "object",
        "properties": {"order_number": {"type": "string", "description": "e.g. DX1042"}},
        "required": [],
    },
)
_PROMPT = (
    "You are the phone order-status assistant of a small shop. Speak briefly, one short "
    "sentence per turn. Never guess an order's status: always call lookup_order with the order "
    "number the caller gives."
)
_GREET = "Greet the caller in one short sentence and ask for their order number."
_NARRATE = (
    "Tell the caller that order DX1042 is out for delivery and arrives today, "
    "then ask if that is all."
)
# The model's side of the check call when it does what is asked: what the loopback fakes play in the
# tests.
EXPECTED_CALL = CallScript.model_validate(
    {
        "title": "brain check",
        "turns": [
            {"agent": [{"say": "Hello, which order is it?"}]},
            {"caller": CALLER_LINE},
            {
                "agent": [
                    {"tool": "lookup_order", "args": {"order_number": "DX1042"}},
                    {"say": "Order {{ result.order.order_number }} is on its way. Is that all?"},
                ]
            },
        ],
    }
)
_ORDER_FOUND: dict[str, JSONValue] = {
    "found": True,
    "order": {"order_number": "DX1042", "status_text": "out for delivery", "eta": "today"},
}


@dataclass(slots=True)
class Check:
    rule: str
    result: Result = "not run"
    detail: str = ""


@dataclass(slots=True, kw_only=True)
class CheckReport:
    """What one check call found: the model, its capability row, and one line per rule."""

    brain: BrainName
    model: str
    row: str
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.result == "pass" for check in self.checks)

    def table(self) -> str:
        rows = [[c.rule, c.result, c.detail] for c in self.checks]
        return format_table(("check", "result", "detail"), rows)


class _Events:
    """A brain's events, collected in the background; `wait` for the first match after a mark."""

    def __init__(self, brain: Brain) -> None:
        self.seen: list[BrainEvent] = []
        self._changed = asyncio.Condition()
        self._task = asyncio.get_running_loop().create_task(self._collect(brain))

    async def _collect(self, brain: Brain) -> None:
        async for event in brain.events():
            async with self._changed:
                self.seen.append(event)
                self._changed.notify_all()

    def mark(self) -> int:
        return len(self.seen)

    async def wait(
        self, kinds: tuple[type, ...], *, since: int, timeout_s: float
    ) -> BrainEvent | None:
        def found() -> BrainEvent | None:
            return next((e for e in self.seen[since:] if isinstance(e, kinds)), None)

        try:
            async with asyncio.timeout(timeout_s), self._changed:
                await self._changed.wait_for(lambda: found() is not None)
        except TimeoutError:
            return None
        return found()

    def of(self, kind: type, *, since: int = 0) -> list[BrainEvent]:
        return [e for e in self.seen[since:] if isinstance(e, kind)]

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


def _make_brain(
    name: BrainName, environ: Mapping[str, str], ssl_context: ssl.SSLContext | None
) -> tuple[Brain, str, ModelCapabilities]:
    """The adapter as `orchestrator serve` would build it; ConfigError when the key is missing."""
    if name == "gemini":
        from orchestrator.brains.gemini import GeminiLiveBrain, GeminiLiveConfig

        gemini = GeminiLiveConfig.from_env(environ, ssl_context=ssl_context)
        brain = GeminiLiveBrain(gemini)
        return brain, gemini.model, brain.capabilities
    from orchestrator.brains.openai_realtime import OpenAIRealtimeBrain, OpenAIRealtimeConfig

    openai = OpenAIRealtimeConfig.from_env(environ)
    return OpenAIRealtimeBrain(openai), openai.model, capabilities_for("openai", openai.model)


def _default_voice(text: str, rate: int) -> bytes:
    """A flite voice (recognisable speech) if flite is installed, else synthetic speech."""
    try:
        from orchestrator.speech.voices import synthesize_caller

        return synthesize_caller(text, "slt", rate=rate)
    except (ConfigError, OSError):
        return synthesize_speech(text, rate=rate)


async def _speak(brain: Brain, pcm: bytes, *, trailing_silence_ms: int = 0) -> None:
    """Send audio in 20 ms frames at the pace of a real call."""
    pcm += b"\0\0" * (RATE * trailing_silence_ms // 1000)
    for start in range(0, len(pcm), _FRAME_BYTES):
        await brain.push_audio(pcm[start : start + _FRAME_BYTES])
        await asyncio.sleep(0.02)


async def run_check(
    name: BrainName,
    environ: Mapping[str, str] = os.environ,
    *,
    ssl_context: ssl.SSLContext | None = None,
    caller_voice: CallerVoiceFn = _default_voice,
    step_timeout_s: float = 20.0,
) -> CheckReport:
    """Place the check call and report what held; ConfigError (no key) before connecting."""
    brain, model, caps = _make_brain(name, environ, ssl_context)
    report = CheckReport(brain=name, model=model, row=caps.name)
    greet_via = choose_delivery(caps, call_waiting=False)
    rules = {
        "setup": Check("connects; the setup is accepted and the model greets"),
        "state": Check(
            f"a state change with no call waiting goes by {greet_via}; the model acts on it"
        ),
        "audio": Check("caller audio (16 kHz in 20 ms frames) is heard"),
        "tool": Check("the model calls lookup_order"),
        "result": Check(
            f"the tool answer ({caps.function_calling}) carries the next state; the model speaks it"
        ),
        "barge": Check("a cough while the model speaks does not cut it off (server barge-in off)"),
        "open": Check("the session stayed open: no refusal, no protocol error"),
    }
    if caps.resumption:
        rules["resume"] = Check("the server issues a session-resumption handle")
    report.checks = list(rules.values())
    if not caps.known:
        rules["setup"].detail = f"model {model!r} has no row: checked with the conservative one"

    info = CallInfo(
        call_sid="brain-check",
        caller=None,
        sample_rate=RATE,
        system_prompt=_PROMPT,
        voice="",
        language="en-KE",
        tools=(_LOOKUP,),
    )
    await brain.start(info)
    events = _Events(brain)
    try:
        await _converse(brain, events, rules, greet_via, caller_voice, step_timeout_s)
    finally:
        await brain.close()
        await events.stop()
    # Every connection that ended in failure counts, even one the adapter recovered from by
    # reconnecting.
    reasons = list(getattr(brain, "dropped", ()))
    reasons += [e.reason for e in events.of(BrainFailure) if isinstance(e, BrainFailure)]
    if reasons:
        rules["open"].result, rules["open"].detail = "FAIL", reasons[0]
        if rules["setup"].result == "not run":
            rules["setup"].result, rules["setup"].detail = "FAIL", reasons[0]
    else:
        rules["open"].result = "pass"
    if "resume" in rules:
        resumable = getattr(brain, "resumable", False)
        rules["resume"].result = "pass" if resumable else "FAIL"
        rules["resume"].detail = "" if resumable else "no sessionResumptionUpdate with a handle"
    return report


async def _converse(
    brain: Brain,
    events: _Events,
    rules: dict[str, Check],
    greet_via: str,
    caller_voice: CallerVoiceFn,
    timeout_s: float,
) -> None:
    start = events.mark()
    await brain.enter_state(
        StateBrief(name="identifying", instructions=_GREET, tools=("lookup_order",))
    )
    spoke = await events.wait((AgentAudio, BrainFailure), since=start, timeout_s=timeout_s)
    if not isinstance(spoke, AgentAudio):
        return  # not even a greeting: the failure (or its absence) says why
    rules["setup"].result = "pass"
    delivered = [e for e in events.of(StateDelivered, since=start) if isinstance(e, StateDelivered)]
    via = delivered[0].via if delivered else "nothing reported"
    rules["state"].result = "pass" if via == greet_via else "FAIL"
    rules["state"].detail = f"went by {via}"
    await events.wait((TurnComplete, BrainFailure), since=start, timeout_s=timeout_s)

    heard_from = events.mark()
    await _speak(brain, caller_voice(CALLER_LINE, RATE), trailing_silence_ms=1500)
    call = await events.wait((ToolCall, BrainFailure), since=heard_from, timeout_s=timeout_s)
    caller = events.of(Speech, since=heard_from)
    heard = [e.text for e in caller if isinstance(e, Speech) and e.role == "caller"]
    if heard or isinstance(call, ToolCall):
        rules["audio"].result = "pass"
        rules["audio"].detail = (
            f'transcribed "{heard[0]}"' if heard else "answered with a tool call"
        )
    else:
        rules["audio"].result = "FAIL"
    if not isinstance(call, ToolCall):
        rules["tool"].result, rules["tool"].detail = "FAIL", "no tool call"
        return
    rules["tool"].result = "pass" if call.name == "lookup_order" else "FAIL"
    rules["tool"].detail = f"{call.name} {dict(call.arguments)}"

    answered = events.mark()
    await brain.enter_state(StateBrief(name="looking_up", instructions=None, tools=()))
    await brain.enter_state(
        StateBrief(name="narrating", instructions=_NARRATE, tools=("lookup_order",))
    )
    await brain.tool_result(call, {**_ORDER_FOUND, "state": "narrating", "instructions": _NARRATE})
    narration = await events.wait((AgentAudio, BrainFailure), since=answered, timeout_s=timeout_s)
    if not isinstance(narration, AgentAudio):
        rules["result"].result, rules["result"].detail = "FAIL", "the model did not speak after it"
        return
    rules["result"].result = "pass"
    # The cough, over the model's reply: only the session may decide to cut it off.
    await _speak(brain, noise_burst(300, RATE, -12.0), trailing_silence_ms=200)
    await events.wait((TurnComplete, BrainFailure), since=answered, timeout_s=timeout_s)
    replies = events.of(Speech, since=answered)
    said = [e.text for e in replies if isinstance(e, Speech) and e.role == "agent"]
    rules["result"].detail = f'said "{" ".join(said)[:60]}"' if said else "spoke (no transcript)"
    cut = events.of(ModelInterrupted, since=answered)
    rules["barge"].result = "FAIL" if cut else "pass"
    rules["barge"].detail = "the model stopped on the cough" if cut else ""


# --- the command ----------------------------------------------------------------------------


def add_brain_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `brain check gemini|openai` on the CLI's subparsers."""
    brain = subparsers.add_parser(
        "brain",
        help="check a realtime model's protocol rules against the real service",
        description="Check a realtime brain against the real service (needs its API key).",
    )
    actions = brain.add_subparsers(title="brain commands", metavar="ACTION")
    check = actions.add_parser(
        "check",
        help="place one short simulated call against Gemini Live or OpenAI Realtime; "
        "print a pass/fail table",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("brain", choices=("gemini", "openai"))
    check.add_argument(
        "--model", help="model name (default: GEMINI_LIVE_MODEL / OPENAI_REALTIME_MODEL)"
    )
    check.add_argument("--ca-file", help="gemini: trust this CA (a TLS proxy or a local fake)")
    check.set_defaults(run=_check_command)


def _check_command(args: argparse.Namespace) -> int:
    environ = dict(os.environ)
    if args.model:
        variable = "GEMINI_LIVE_MODEL" if args.brain == "gemini" else "OPENAI_REALTIME_MODEL"
        environ[variable] = args.model
    context = ssl.create_default_context(cafile=args.ca_file) if args.ca_file else None
    try:
        report = asyncio.run(run_check(args.brain, environ, ssl_context=context))
    except ConfigError as exc:
        print(f"orchestrator brain check: {exc}", file=sys.stderr)
        return 2
    print(f"{report.brain} model {report.model} (capability row {report.row})")
    print(report.table())
    return 0 if report.passed else 1
