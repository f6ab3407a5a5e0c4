"""Serve a flow and place one simulated Sautikit call against it: the demo, the tests and the benchmarks.

`place_call` starts the real aiohttp application on a loopback port, places the call with the fake Sautikit
over real HTTP and WebSocket connections, and returns both sides' records. On a fast-forwarded loop clock
(looptime, in tests) a minute-long call takes milliseconds and its timings are exact; on the real clock (the
demo) it takes as long as the call.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from aiohttp import web

from orchestrator.app import ORCHESTRATOR, BrainFactory, Orchestrator, create_app, serve_on_loopback
from orchestrator.brains.scripted import ScriptedBrain
from orchestrator.call.dialer import place_notification
from orchestrator.call.session import CallSession
from orchestrator.call.tools import ToolHandler
from orchestrator.call.transcript import Transcript
from orchestrator.flow import Flow, load_flow
from orchestrator.flow.model import Outbound
from orchestrator.orders import DemoFault
from orchestrator.script import CallScript, load_script
from orchestrator.settings import Settings
from orchestrator.simulator import (
    Answer,
    FakeDialler,
    FakeSautikit,
    SimulatedCall,
    SimulatorOptions,
)
from orchestrator.simulator.rest_api import (
    DEFAULT_API_KEY,
    FakeNumber,
    FakeSautikitState,
    sautikit_rest_app,
)
from orchestrator.telephony.call_id import CallId
from orchestrator.telephony.outbound import OutboundRequest
from orchestrator.telephony.rest import SautikitClient, SautikitConfig

__all__ = ["CallRecord", "Line", "PUBLIC_URL", "place_call", "serve_line"]

# Where the fake Sautikit believes the service lives; it resolves this name to the loopback port.
PUBLIC_URL = "https://orders-agent.example.test"


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRecord:
    """Both sides of one simulated call."""

    script: CallScript
    transcript: Transcript  # the service's record
    platform: SimulatedCall  # what the fake Sautikit saw and heard
    platform_rate: int = 16000  # sample rate of the platform's two recorded tracks
    # An outbound script's attempts, as the platform carried them ("attempt 1 HD_00000001: no_answer").
    attempts: tuple[str, ...] = ()

    def _attempt_lines(self) -> str:
        return "".join(f"outbound  {line}\n" for line in self.attempts)

    def render(self, *, prompts: bool = False) -> str:
        """The service's transcript, then the platform's view: what a reviewer reads in a snapshot.

        With `prompts`, the transcript also shows what each state told the model.
        """
        return (
            f"# {self.script.title}\n"
            + self._attempt_lines()
            + self.transcript.render(prompts=prompts)
            + "# platform\n"
            + "\n".join(self.platform.log)
            + f"\n{self.platform_summary()}\n"
        )

    def render_conversation(self) -> str:
        """The call without its clock: who said what, states, tools, results, what the model was told."""
        return (
            f"# {self.script.title}\n"
            + self._attempt_lines()
            + self.transcript.render_conversation()
            + f"platform  {self.platform_summary()}\n"
        )

    def platform_summary(self) -> str:
        """How the platform saw the call end: who ended it, killAudio messages, the number dialled."""
        summary = f"ended by {self.platform.ended_by or '-'}; killAudio x{self.platform.kill_audio}"
        if self.platform.answer == "voicemail":
            summary += f"; voicemail recorded {self.platform.voicemail_recorded_ms / 1000:.1f} s of the agent"
        return summary + (f"; dialed {self.platform.dialed}" if self.platform.dialed else "")


async def place_call(
    script: CallScript | str | Path,
    *,
    flow: Flow | str | Path | None = None,
    settings: Settings | None = None,
    simulator: SimulatorOptions | None = None,
    call_sid: str = "HD_test0001",
    brain_factory: BrainFactory | None = None,
    on_call_started: Callable[[CallSession], None] | None = None,
    call_timeout_s: float = 30.0,
    tools: Mapping[str, ToolHandler] | None = None,
) -> CallRecord:
    """Serve the flow and place the script's call against it.

    The brain is a ScriptedBrain playing the script's agent turns unless `brain_factory` gives another one
    (e.g. a Gemini Live adapter pointed at a local fake); the script's caller turns always drive the caller.
    `tools` are code handlers of the flow's tools, as `add_routes` takes them.
    """
    script = script if isinstance(script, CallScript) else load_script(script)
    factory = brain_factory or (lambda start: ScriptedBrain(script))
    async with contextlib.AsyncExitStack() as stack:
        rest_state: FakeSautikitState | None = None
        if script.outbound is not None:
            # The shop places this call: the service talks to a fake of Sautikit's REST API on loopback.
            rest_state = FakeSautikitState()
            rest_url = await stack.enter_async_context(
                serve_on_loopback(sautikit_rest_app(rest_state))
            )
            settings = (settings or Settings(fallback_voice="synthetic")).model_copy(
                update={"sautikit_api_key": DEFAULT_API_KEY, "sautikit_base_url": rest_url}
            )
        line = await stack.enter_async_context(
            serve_line(flow=flow, settings=settings, brain_factory=factory, tools=tools)
        )
        if on_call_started is not None:
            line.orchestrator.on_call_started.append(on_call_started)
        if rest_state is not None:
            return await line.call_outbound(script, rest_state, simulator=simulator)
        return await line.call(
            script, call_sid=call_sid, simulator=simulator, call_timeout_s=call_timeout_s
        )


@dataclass(slots=True, kw_only=True)
class Line:
    """A flow served on loopback that simulated calls can be placed to, one after another."""

    app: web.Application
    url: str  # the service's loopback base URL (GET /metrics, /console, ... answer here)
    settings: Settings

    @property
    def orchestrator(self) -> Orchestrator:
        return self.app[ORCHESTRATOR]

    def _platform(self, script: CallScript, simulator: SimulatorOptions | None) -> SimulatorOptions:
        """The fake platform's options for this line (the demo orders set to the script's fault mode)."""
        orchestrator = self.orchestrator
        if orchestrator.demo_orders is not None:
            orchestrator.demo_orders.fault = DemoFault(script.orders)
        settings = self.settings
        options = simulator or SimulatorOptions(
            voice_path=settings.routes.voice,
            sample_rate=settings.sample_rate,
            webhook_secret=settings.webhook_secret,
        )
        return replace(options, hosts={**options.hosts, PUBLIC_URL: self.url})

    async def call(
        self,
        script: CallScript | str | Path,
        *,
        call_sid: str = "HD_test0001",
        simulator: SimulatorOptions | None = None,
        call_timeout_s: float = 30.0,
    ) -> CallRecord:
        """Place the script's call and return once the service has finished reporting it."""
        script = script if isinstance(script, CallScript) else load_script(script)
        orchestrator = self.orchestrator
        reported = asyncio.Event()  # after-call work (call record, transcript files) is done
        finished: list[CallSession] = []  # a finished call leaves the live map soon after its end

        def on_finished(session: CallSession) -> None:
            if session.call_sid == call_sid:
                finished.append(session)
                reported.set()

        orchestrator.on_call_finished.append(on_finished)
        options = self._platform(script, simulator)
        try:
            platform = await FakeSautikit(PUBLIC_URL, options=options).call(
                script, call_sid=call_sid
            )
            live = orchestrator.sessions.get(CallId(call_sid))
            if live is not None:
                await asyncio.wait_for(live.finished.wait(), timeout=call_timeout_s)
            await asyncio.wait_for(reported.wait(), timeout=call_timeout_s)
            session = finished[0]
        finally:
            orchestrator.on_call_finished.remove(on_finished)
        return CallRecord(
            script=script,
            transcript=session.transcript,
            platform=platform,
            platform_rate=options.sample_rate,
        )


    async def call_outbound(
        self,
        script: CallScript,
        rest: FakeSautikitState,
        *,
        simulator: SimulatorOptions | None = None,
    ) -> CallRecord:
        """Place the script's outbound call as `orchestrator calls place` does, and let the service retry it
        per the flow; the record is the last answered attempt's (with every attempt listed)."""
        outbound = script.outbound
        orchestrator = self.orchestrator
        flow = orchestrator.flow
        if outbound is None or flow.outbound is None:
            raise ValueError("an outbound script needs a flow with `outbound:` and `initial_outbound:`")
        rest.numbers["num_outbound"] = FakeNumber(
            id="num_outbound", e164=flow.outbound.caller_id, inventory_id="inv_outbound"
        )
        finished: dict[str, CallSession] = {}
        done = asyncio.Event()

        def on_finished(session: CallSession) -> None:
            finished[session.call_sid] = session
            done.set()

        orchestrator.on_call_finished.append(on_finished)
        options = replace(self._platform(script, simulator), rest=rest)
        settings = self.settings
        dialler = FakeDialler(
            FakeSautikit(PUBLIC_URL, options=options),
            rest,
            answers={script.caller: list(outbound.answers)},
            script=script,
        )
        attempts = _attempts(outbound.answers, flow.outbound)
        # Retries wait `retry_after` on the loop's clock (fast-forwarded in tests and `orchestrator test`).
        budget_s = attempts * (flow.outbound.retry_after + options.max_call_ms / 1000 + 60)
        try:
            config = SautikitConfig(api_key=DEFAULT_API_KEY, base_url=settings.sautikit_base_url)
            async with SautikitClient(config) as client:
                await place_notification(
                    client,
                    flow=flow,
                    request=OutboundRequest(order=outbound.order, to=script.caller),
                    voice_url=PUBLIC_URL + settings.routes.voice,
                    secret=orchestrator.secret,
                )
            calls = await asyncio.wait_for(dialler.wait_for(attempts), timeout=budget_s)
            answered = [c.call_sid for c in calls if c.answer in ("answer", "voicemail")]
            while not all(sid in finished for sid in answered):
                done.clear()
                await asyncio.wait_for(done.wait(), timeout=budget_s)
        finally:
            orchestrator.on_call_finished.remove(on_finished)
        lines = tuple(
            f"attempt {number} {c.call_sid}: {c.answer}"
            + (f" (rang {c.placed_at - calls[0].placed_at:.0f} s after the first)" if number > 1 else "")
            for number, c in enumerate(calls, start=1)
        )
        last = calls[-1]
        if answered:
            transcript = finished[answered[-1]].transcript
            last = next(c for c in reversed(calls) if c.call_sid == answered[-1])
        else:
            transcript = Transcript(call_sid=last.call_sid)
        return CallRecord(
            script=script,
            transcript=transcript,
            platform=last,
            platform_rate=options.sample_rate,
            attempts=lines,
        )


def _attempts(answers: list[Answer], outbound: Outbound) -> int:
    """How many calls the flow places for these answers: until one is taken, or its retries run out."""
    for index in range(outbound.retries + 1):
        answer = answers[min(index, len(answers) - 1)]
        if answer == "answer" or (answer == "voicemail" and outbound.voicemail == "leave_message"):
            return index + 1
    return outbound.retries + 1


@contextlib.asynccontextmanager
async def serve_line(
    *,
    flow: Flow | str | Path | None = None,
    settings: Settings | None = None,
    brain_factory: BrainFactory,
    tools: Mapping[str, ToolHandler] | None = None,
    prepare: Callable[[web.Application], None] | None = None,
) -> AsyncIterator[Line]:
    """Serve the flow on loopback, as `orchestrator serve` would, for calls placed with `Line.call`.

    `prepare` may add to the app before it starts (e.g. `orchestrator.console.add_console`).
    """
    # Without settings, the session's fallback voice is the synthetic one: deterministic on any clock.
    settings = settings or Settings(fallback_voice="synthetic")
    flow_model = flow if isinstance(flow, Flow) else load_flow(flow or settings.flow)
    if not (settings.orders_base_url or flow_model.orders.base_url):
        # A simulated call answers from the demo orders unless told of a shop: say so explicitly.
        settings = settings.model_copy(update={"orders": "demo"})
    app = create_app(settings, brain_factory=brain_factory, flow=flow_model, tools=tools)
    if prepare is not None:
        prepare(app)
    async with serve_on_loopback(app) as local:
        # Sautikit reaches the service at its public URL; the simulator maps that name to loopback.
        app[ORCHESTRATOR].settings = settings.model_copy(update={"public_url": PUBLIC_URL})
        yield Line(app=app, url=local, settings=settings)
