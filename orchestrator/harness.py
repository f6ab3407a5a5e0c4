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
from orchestrator.call.session import CallSession
from orchestrator.call.tools import ToolHandler
from orchestrator.call.transcript import Transcript
from orchestrator.flow import Flow, load_flow
from orchestrator.orders import DemoFault
from orchestrator.script import CallScript, load_script
from orchestrator.settings import Settings
from orchestrator.simulator import FakeSautikit, SimulatedCall, SimulatorOptions
from orchestrator.telephony.call_id import CallId

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

    def render(self, *, prompts: bool = False) -> str:
        """The service's transcript, then the platform's view: what a reviewer reads in a snapshot.

        With `prompts`, the transcript also shows what each state told the model.
        """
        return (
            f"# {self.script.title}\n"
            + self.transcript.render(prompts=prompts)
            + "# platform\n"
            + "\n".join(self.platform.log)
            + f"\n{self.platform_summary()}\n"
        )

    def render_conversation(self) -> str:
        """The call without its clock: who said what, states, tools, results, what the model was told."""
        return (
            f"# {self.script.title}\n"
            + self.transcript.render_conversation()
            + f"platform  {self.platform_summary()}\n"
        )

    def platform_summary(self) -> str:
        """How the platform saw the call end: who ended it, killAudio messages, the number dialled."""
        summary = f"ended by {self.platform.ended_by or '-'}; killAudio x{self.platform.kill_audio}"
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
    async with serve_line(flow=flow, settings=settings, brain_factory=factory, tools=tools) as line:
        if on_call_started is not None:
            line.orchestrator.on_call_started.append(on_call_started)
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
        if orchestrator.demo_orders is not None:
            orchestrator.demo_orders.fault = DemoFault(script.orders)
        settings = self.settings
        options = simulator or SimulatorOptions(
            voice_path=settings.routes.voice,
            sample_rate=settings.sample_rate,
            webhook_secret=settings.webhook_secret,
        )
        options = replace(options, hosts={**options.hosts, PUBLIC_URL: self.url})
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
