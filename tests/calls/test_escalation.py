"""Escalation to a person, strategy by strategy and with fallbacks, against a fake Sautikit REST API.

Each call runs through the real service and the fake platform on a fast-forwarded clock; the fake REST API is
a real aiohttp server on loopback that records hang-ups and supervisions.
"""


import pytest
from aiohttp import web

from orchestrator.flow import Flow, load_flow
from orchestrator.settings import Settings
from orchestrator.simulator import SimulatorOptions
from orchestrator.simulator.rest_api import FakeSautikitState, sautikit_rest_app
from orchestrator.testing import TranscriptSnapshotExtension, run_scripted_call
from tests.flows import CARE_DESK, ORDER_STATUS, SCRIPTS, with_escalation

FLOW = load_flow(ORDER_STATUS)
API_KEY = "sk_test_sautikit"


@pytest.fixture
def transcript_snapshot(snapshot):
    return snapshot.use_extension(TranscriptSnapshotExtension)


@pytest.fixture
async def sautikit(aiohttp_server):
    """The fake REST API on loopback, and its state."""
    state = FakeSautikitState()
    server = await aiohttp_server(sautikit_rest_app(state))
    return state, str(server.make_url("")).rstrip("/")


@pytest.fixture
async def callback_receiver(aiohttp_server):
    """A shop's callback webhook: records each request; answers with the status set in `status`."""
    received: list[dict] = []
    status = {"code": 200}

    async def receive(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(status=status["code"])

    app = web.Application()
    app.router.add_post("/callbacks", receive)
    server = await aiohttp_server(app)
    return received, status, str(server.make_url("/callbacks"))


async def _call(script: str, sautikit, flow: Flow, **simulator):
    state, url = sautikit
    return await run_scripted_call(
        SCRIPTS / script,
        flow=flow,
        settings=Settings(sautikit_api_key=API_KEY, sautikit_base_url=url),
        simulator=SimulatorOptions(rest=state, **simulator),
    )


@pytest.mark.looptime
async def test_escalation_dial_answers_the_next_request(sautikit, transcript_snapshot):
    """dial: the stream closes, Sautikit's next request gets the <Dial>, and the record is fetched after."""
    record = await _call("asks_for_human.yaml", sautikit, with_escalation(strategies=("dial",)))
    assert record.platform.dialed == CARE_DESK
    assert record.transcript.outcome == "escalated"
    assert record.render() == transcript_snapshot


@pytest.mark.looptime
async def test_escalation_supervise_brings_a_person_in_and_mutes_the_agent(sautikit, transcript_snapshot):
    """supervise: REST supervision in barge mode with the desk's number; the agent goes quiet."""
    state, _ = sautikit
    record = await _call("supervised_then_caller_hangs_up.yaml", sautikit, with_escalation(strategies=("supervise", "dial")))
    assert [(s.mode, s.supervisor_number) for s in state.supervisions] == [("barge", CARE_DESK)]
    assert record.platform.dialed is None
    assert record.transcript.outcome == "escalated"
    assert record.render() == transcript_snapshot


@pytest.mark.looptime
async def test_escalation_supervise_api_error_falls_back_to_dial(sautikit, transcript_snapshot):
    """A failing supervision request (503) is said to the caller, and the next strategy, dial, works."""
    state, _ = sautikit
    state.fail_next(1, status=503)
    record = await _call("asks_for_human.yaml", sautikit, with_escalation(strategies=("supervise", "dial")))
    assert state.supervisions == []
    assert record.platform.dialed == CARE_DESK
    assert any("supervise failed" in line for line in record.transcript.of_kind("escalate"))
    assert '"I\'m sorry, I couldn\'t reach a colleague that way."' in record.transcript.of_kind("agent")
    assert record.render() == transcript_snapshot


@pytest.mark.looptime
async def test_escalation_callback_posts_the_request_and_hangs_up(sautikit, callback_receiver, transcript_snapshot):
    """callback: the caller hears the promise, the shop's webhook gets the request, REST hangs the call up."""
    state, _ = sautikit
    received, _, url = callback_receiver
    record = await _call("asks_for_human.yaml", sautikit, with_escalation(strategies=("callback",), callback_url=url))
    assert [r["call_sid"] for r in received] == ["HD_test0001"]
    assert received[0]["caller"] == "+254733999888"
    assert received[0]["reason"] == "tool:transfer_to_human"
    assert state.hangups, "the call is ended through the REST API, not left in dead air"
    assert record.transcript.outcome == "escalated"
    assert record.render() == transcript_snapshot


@pytest.mark.looptime
async def test_escalation_callback_webhook_failure_falls_back_to_dial(sautikit, callback_receiver):
    """A callback webhook answering 500 is a failed strategy: dial is tried next."""
    received, status, url = callback_receiver
    status["code"] = 500
    record = await _call("asks_for_human.yaml", sautikit, with_escalation(strategies=("callback", "dial"), callback_url=url))
    assert len(received) == 1
    assert any("callback webhook failed" in line for line in record.transcript.of_kind("escalate"))
    assert record.platform.dialed == CARE_DESK


@pytest.mark.looptime
async def test_escalation_dial_without_a_next_request_falls_back_to_callback(sautikit, callback_receiver):
    """When Sautikit never asks again after the stream closes, the dial fails and the callback is recorded."""
    received, _, url = callback_receiver
    record = await _call(
        "asks_for_human.yaml", sautikit, with_escalation(strategies=("dial", "callback"), callback_url=url),
        repost_on_stream_end=False,
    )
    assert record.platform.dialed is None
    assert any("dial failed" in line for line in record.transcript.of_kind("escalate"))
    assert len(received) == 1
    assert record.transcript.outcome == "escalated"


@pytest.mark.looptime
async def test_escalation_every_strategy_failing_tells_the_caller_and_hangs_up(sautikit):
    """No API key for supervise and a broken callback: the caller hears that no one is available."""
    state, _ = sautikit
    flow = with_escalation(strategies=("supervise", "callback"), callback_url="http://127.0.0.1:9/unreachable")
    state.fail_next(1, status=503)
    record = await _call("asks_for_human.yaml", sautikit, flow)
    agent = record.transcript.of_kind("agent")
    assert any("no one is available right now" in line for line in agent)
    assert "escalating -> ended (escalation_failed)" in record.transcript.of_kind("state")
    assert record.transcript.outcome == "failed"
    assert state.hangups


@pytest.mark.looptime
async def test_escalation_ended_flow_hangs_up_through_rest_and_keeps_the_record(sautikit, transcript_snapshot):
    """The flow reaching `ended` hangs the caller up through REST; the call record is stored afterwards."""
    state, _ = sautikit
    record = await _call("returning_caller_by_phone.yaml", sautikit, FLOW)
    assert state.hangups
    records = record.transcript.of_kind("record")
    assert len(records) == 1
    assert records[0].startswith("status completed")
    assert record.render() == transcript_snapshot
