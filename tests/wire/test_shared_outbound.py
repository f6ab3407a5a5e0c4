"""An outbound call's webhook on one worker and its socket on another: the order travels with the call."""

from __future__ import annotations

import contextlib

from orchestrator.app import ORCHESTRATOR, create_app, serve_on_loopback
from orchestrator.brains.scripted import ScriptedBrain
from orchestrator.flow import load_flow
from orchestrator.script import CallScript
from orchestrator.simulator import FakeSautikit, SimulatorOptions
from orchestrator.simulator.rest_api import FakeSautikitState
from orchestrator.telephony.outbound import OutboundRequest, outbound_callback_url
from tests.flows import TESTS
from tests.wire.test_shared_calls import SECRET, _prefix, _session_on, _settings

FLOW = load_flow(TESTS / "flows" / "outbound.yaml")
CUSTOMER = "+254712345678"
SCRIPT = CallScript.model_validate(
    {
        "title": "outbound across workers",
        "caller": CUSTOMER,
        "turns": [
            {"caller": "Thank you, bye."},
            {"agent": [{"say": "Goodbye!"}, {"tool": "end_call"}]},
        ],
    }
)


async def test_outbound_call_answered_by_one_worker_keeps_its_order_on_the_worker_with_the_socket(
    tmp_path,
) -> None:
    """Webhook on A, socket on B: B starts the call at `initial_outbound` with the order A verified."""
    prefix, db = _prefix(), tmp_path / "calls.sqlite3"
    shared = {"stream_secret": "one-secret-for-the-line"}  # `calls place` signs with it too
    async with contextlib.AsyncExitStack() as stack:
        b = create_app(
            _settings(prefix, db, **shared), brain_factory=lambda s: ScriptedBrain(SCRIPT), flow=FLOW
        )
        url_b = await stack.enter_async_context(serve_on_loopback(b))
        a = create_app(
            _settings(prefix, db, public_url=url_b, **shared),
            brain_factory=lambda s: ScriptedBrain(SCRIPT),
            flow=FLOW,
        )
        url_a = await stack.enter_async_context(serve_on_loopback(a))
        worker_a, worker_b = a[ORCHESTRATOR], b[ORCHESTRATOR]

        rest = FakeSautikitState()
        record = rest.add_call(
            direction="outbound", local_e164="+254711000000", remote_e164=CUSTOMER, status="ringing"
        )
        request = OutboundRequest(order="DX1042", to=CUSTOMER)
        voice_url = outbound_callback_url(f"{url_a}/voice", request, worker_a.secret)
        platform = FakeSautikit(url_a, options=SimulatorOptions(webhook_secret=SECRET, rest=rest))
        call = await platform.ring(record, voice_url, answer="answer", script=SCRIPT)
        session = await _session_on(worker_b, record.session_id)

    transcript = session.transcript.render()
    assert call.ended_by == "agent"
    assert record.session_id not in worker_a.sessions
    assert f"taken over from worker {worker_a.live.worker_id}" in transcript
    assert "(outbound: order DX1042, attempt 1)" in transcript
    assert "calling_out -> narrating (answered)" in transcript
    assert "Your order D X one zero four two is arriving" in transcript
    assert session.transcript.outcome == "resolved"
