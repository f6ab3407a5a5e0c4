"""Helpers for testing flows and call scripts, importable by users' own test suites.

    record = await run_scripted_call("fixtures/calls/returning_caller_by_phone.yaml")
    assert record.transcript.outcome == "resolved"
    assert record.render() == snapshot(extension_class=TranscriptSnapshotExtension)

`run_scripted_call` starts the real aiohttp application on a loopback port, places the call with the fake
Sautikit over real HTTP and WebSocket connections, and returns both sides' records. Run it on a fast-forwarded
loop clock (`@pytest.mark.looptime`) to make a minute-long call take milliseconds and its timings exact.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from pathlib import Path

from aiohttp import web
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from orchestrator.app import ORCHESTRATOR, BrainFactory, create_app
from orchestrator.brains.scripted import ScriptedBrain
from orchestrator.call.transcript import Transcript
from orchestrator.flow import Flow, load_flow
from orchestrator.orders import DemoFault
from orchestrator.script import CallScript, load_script
from orchestrator.settings import Settings
from orchestrator.simulator import FakeSautikit, SimulatedCall, SimulatorOptions

PUBLIC_URL = "https://orders-agent.example.test"

__all__ = ["PUBLIC_URL", "CallRecord", "ScriptedBrain", "TranscriptSnapshotExtension", "run_scripted_call"]


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRecord:
    """Both sides of one simulated call."""

    script: CallScript
    transcript: Transcript  # the service's record
    platform: SimulatedCall  # what the fake Sautikit saw and heard

    def render(self) -> str:
        """The service's transcript, then the platform's view: what a reviewer reads in a snapshot."""
        return (
            f"# {self.script.title}\n"
            + self.transcript.render()
            + "# platform\n"
            + "\n".join(self.platform.log)
            + f"\nended by {self.platform.ended_by or '-'}; killAudio x{self.platform.kill_audio}"
            + (f"; dialed {self.platform.dialed}" if self.platform.dialed else "")
            + "\n"
        )


class TranscriptSnapshotExtension(SingleFileSnapshotExtension):
    """Snapshots as plain `.txt` files, so a changed prompt is a readable diff."""

    file_extension = "txt"
    _write_mode = WriteMode.TEXT


async def run_scripted_call(
    script: CallScript | str | Path,
    *,
    flow: Flow | str | Path | None = None,
    settings: Settings | None = None,
    simulator: SimulatorOptions | None = None,
    call_sid: str = "HD_test0001",
    brain_factory: BrainFactory | None = None,
) -> CallRecord:
    """Serve the flow and place the script's call against it.

    The brain is a ScriptedBrain playing the script's agent turns unless `brain_factory` gives another one
    (e.g. a Gemini Live adapter pointed at a local fake); the script's caller turns always drive the caller.
    """
    script = script if isinstance(script, CallScript) else load_script(script)
    settings = settings or Settings()
    flow_model = flow if isinstance(flow, Flow) else load_flow(flow or settings.flow)
    factory = brain_factory or (lambda start: ScriptedBrain(script))
    app = create_app(settings, brain_factory=factory, flow=flow_model)
    # A plain AppRunner, as `orchestrator serve` runs: no test-only handler cancellation.
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        local = f"http://{host}:{port}"
        orchestrator = app[ORCHESTRATOR]
        reported = asyncio.Event()  # after-call work (call record, transcript files) is done
        orchestrator.on_call_finished.append(lambda session: reported.set())
        # Sautikit reaches the service at its public URL; the simulator maps that name to loopback.
        orchestrator.settings = settings.model_copy(update={"public_url": PUBLIC_URL})
        if orchestrator.demo_orders is not None:
            orchestrator.demo_orders.fault = DemoFault(script.orders)
        options = simulator or SimulatorOptions(
            voice_path=settings.routes.voice,
            sample_rate=settings.sample_rate,
            webhook_secret=settings.webhook_secret,
        )
        options = replace(options, hosts={**options.hosts, PUBLIC_URL: local})
        platform = await FakeSautikit(PUBLIC_URL, options=options).call(script, call_sid=call_sid)
        session = orchestrator.sessions[call_sid]
        await asyncio.wait_for(session.finished.wait(), timeout=30)
        await asyncio.wait_for(reported.wait(), timeout=30)
        return CallRecord(script=script, transcript=session.transcript, platform=platform)
    finally:
        await runner.cleanup()
