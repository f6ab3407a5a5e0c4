"""The warm hand-off: before a person takes the call, they get its brief, over real HTTP to a local webhook.

Each call runs through the real service and the fake platform on a fast-forwarded clock; the desk's webhook is
a real aiohttp server on loopback.
"""

import asyncio
import json
from datetime import UTC, datetime

import pytest
from aiohttp import web

from orchestrator.call.handoff import BRIEF_SIGNATURE_HEADER
from orchestrator.call.session import CallSession
from orchestrator.call.store import StoredCall, open_call_store
from orchestrator.flow import Flow, load_flow
from orchestrator.settings import Settings
from orchestrator.simulator import SimulatorOptions
from orchestrator.simulator.rest_api import FakeSautikitState, sautikit_rest_app
from orchestrator.telephony.signing import verify_webhook_signature
from orchestrator.testing import TranscriptSnapshotExtension, run_scripted_call
from tests.flows import CARE_DESK, ORDER_STATUS, SCRIPTS, with_escalation

FLOW = load_flow(ORDER_STATUS)
SCRIPT = SCRIPTS / "handoff_after_lookup.yaml"
SECRET = "whsec_handoff_test"  # noqa: S105  # a test signing secret


@pytest.fixture
def transcript_snapshot(snapshot):
    return snapshot.use_extension(TranscriptSnapshotExtension)


@pytest.fixture
async def desk(aiohttp_server):
    """The care desk's brief webhook: keeps each request's raw body and headers; `behaviour` sets its answer."""
    received: list[tuple[bytes, dict[str, str]]] = []
    behaviour = {"status": 200, "delay_s": 0.0}

    async def receive(request: web.Request) -> web.Response:
        received.append((await request.read(), dict(request.headers)))
        await asyncio.sleep(behaviour["delay_s"])
        return web.Response(status=behaviour["status"])

    app = web.Application()
    app.router.add_post("/brief", receive)
    server = await aiohttp_server(app)
    return received, behaviour, str(server.make_url("/brief"))


async def _call(flow: Flow, *, secret: str | None = None, rest: FakeSautikitState | None = None, url: str = ""):
    api = {"sautikit_api_key": "sk_test", "sautikit_base_url": url} if rest is not None else {}
    settings = Settings(webhook_secret=secret, fallback_voice="synthetic", **api)
    return await run_scripted_call(
        SCRIPT,
        flow=flow,
        settings=settings,
        simulator=SimulatorOptions(rest=rest, webhook_secret=secret),
    )


@pytest.mark.looptime
async def test_handoff_brief_reaches_the_desk_webhook_signed_before_the_dial(desk, transcript_snapshot):
    """The desk's webhook gets the brief (masked caller, order, words, reason), signed; then the Dial goes out."""
    received, _, url = desk
    record = await _call(with_escalation(strategies=("dial",), brief_url=url), secret=SECRET)
    assert len(received) == 1
    body, headers = received[0]
    verify_webhook_signature(SECRET.encode(), body, headers[BRIEF_SIGNATURE_HEADER], now=_signed_at(headers))
    brief = json.loads(body)
    assert brief["type"] == "handoff_brief"
    assert brief["caller"] == "+2547*****888"
    assert "254733999888" not in body.decode()
    assert brief["order"]["order_number"] == "DX1042"
    assert brief["order"]["status"] == "out_for_delivery"
    assert brief["asked"][-1].startswith("It was supposed to come yesterday.")
    assert brief["reason"] == "the caller asked for a person (delivery is late and the caller is upset)"
    assert brief["whisper"].startswith("Call from +2547*****888. Order DX1042 is out for delivery")
    assert record.platform.dialed == CARE_DESK
    escalate = record.transcript.of_kind("escalate")
    assert escalate.index("brief delivered (HTTP 200), signed") < escalate.index(
        "dial +2547*****100: closing the stream for Sautikit's next request"
    )
    assert record.render() == transcript_snapshot


@pytest.mark.looptime
async def test_handoff_brief_is_kept_in_the_call_record(desk):
    """The stored transcript JSON carries the same brief the desk received."""
    received, _, url = desk
    record = await _call(with_escalation(strategies=("dial",), brief_url=url))
    stored = json.loads(record.transcript.to_json())
    assert stored["handoff"] == json.loads(received[0][0])
    assert BRIEF_SIGNATURE_HEADER not in received[0][1], "no secret, no signature"


@pytest.mark.looptime
async def test_handoff_desk_webhook_error_still_hands_the_call_over(desk):
    """A webhook answering 503 is noted; the Dial still goes out and the call is escalated."""
    _, behaviour, url = desk
    behaviour["status"] = 503
    record = await _call(with_escalation(strategies=("dial",), brief_url=url))
    assert "brief webhook answered 503; handing over anyway" in record.transcript.of_kind("escalate")
    assert record.platform.dialed == CARE_DESK
    assert record.transcript.outcome == "escalated"


@pytest.mark.looptime
async def test_handoff_slow_desk_webhook_times_out_and_the_call_is_handed_over(desk):
    """A webhook slower than `brief_timeout` is given up on; the hand-off does not wait for it."""
    _, behaviour, url = desk
    behaviour["delay_s"] = 30.0
    record = await _call(with_escalation(strategies=("dial",), brief_url=url, brief_timeout=2.0))
    assert "brief webhook failed (ReadTimeout); handing over anyway" in record.transcript.of_kind("escalate")
    assert record.platform.dialed == CARE_DESK


@pytest.mark.looptime
async def test_handoff_unreachable_desk_webhook_still_hands_the_call_over():
    """Nothing listening at brief_url: the connection error is noted and the Dial goes out."""
    record = await _call(with_escalation(strategies=("dial",), brief_url="http://127.0.0.1:9/brief"))
    assert "brief webhook failed (ConnectError); handing over anyway" in record.transcript.of_kind("escalate")
    assert record.platform.dialed == CARE_DESK


@pytest.mark.looptime
async def test_handoff_brief_is_sent_once_before_supervise_and_not_again_before_the_dial(desk, aiohttp_server):
    """supervise fails (503), dial follows: the desk got the brief once, before the first person strategy."""
    received, _, url = desk
    state = FakeSautikitState()
    state.fail_next(1, status=503)
    server = await aiohttp_server(sautikit_rest_app(state))
    record = await _call(
        with_escalation(strategies=("supervise", "dial"), brief_url=url),
        rest=state,
        url=str(server.make_url("")).rstrip("/"),
    )
    assert len(received) == 1
    assert record.platform.dialed == CARE_DESK


@pytest.mark.looptime
async def test_handoff_callback_request_carries_the_brief(desk):
    """callback brings no person now: no brief webhook, but the callback request carries the brief."""
    received, _, url = desk
    record = await _call(with_escalation(strategies=("callback",), brief_url=url, callback_url=url))
    assert len(received) == 1  # the callback request itself
    request = json.loads(received[0][0])
    assert request["type"] == "callback_request"
    assert request["brief"]["order"]["order_number"] == "DX1042"
    assert record.transcript.outcome == "escalated"


def _signed_at(headers: dict[str, str]) -> float:
    return float(headers[BRIEF_SIGNATURE_HEADER].split(",")[0].removeprefix("t="))


@pytest.mark.looptime
async def test_handoff_brief_survives_the_sqlite_call_store(desk, tmp_path):
    """The stored call's transcript JSON keeps the brief; a reopened SQLite store gives it back unchanged."""
    _, _, url = desk
    sessions: list[CallSession] = []
    await run_scripted_call(
        SCRIPT,
        flow=with_escalation(strategies=("dial",), brief_url=url),
        on_call_started=sessions.append,
    )
    call = StoredCall.from_session(sessions[0], flow_name="order_status", stored_at=datetime.now(UTC))
    store = await open_call_store(tmp_path / "calls.sqlite3")
    await store.save(call)
    await store.close()
    reopened = await open_call_store(tmp_path / "calls.sqlite3")
    stored = await reopened.get(call.call_sid)
    await reopened.close()
    assert stored is not None
    assert json.loads(stored.transcript_json)["handoff"]["order"]["order_number"] == "DX1042"
