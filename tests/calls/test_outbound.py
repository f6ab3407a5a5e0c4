"""Outbound notification calls over the real stack: placed through the fake REST API (real HTTP), rung by the
fake platform, answered by the service at the flow's `initial_outbound` state, retried per its `outbound:`."""

import asyncio
import contextlib
from urllib.parse import urlsplit

import aiohttp
import pytest

from orchestrator.app import serve_on_loopback
from orchestrator.brains.scripted import ScriptedBrain
from orchestrator.flow import load_flow
from orchestrator.harness import serve_line
from orchestrator.script import CallScript
from orchestrator.settings import Settings
from orchestrator.simulator.rest_api import (
    DEFAULT_API_KEY,
    FakeNumber,
    FakeSautikitState,
    sautikit_rest_app,
)
from orchestrator.telephony.outbound import OutboundRequest, outbound_callback_url
from orchestrator.testing import run_scripted_call
from tests.flows import TESTS

FLOW = load_flow(TESTS / "flows" / "outbound.yaml")
CUSTOMER = "+254712345678"  # DX1042's customer in the demo orders


def _script(*answers: str, turns: list[dict[str, object]] | None = None) -> CallScript:
    return CallScript.model_validate(
        {
            "title": "outbound",
            "caller": CUSTOMER,
            "outbound": {"order": "DX1042", "answers": list(answers)},
            "turns": turns
            if turns is not None
            else [
                {"caller": "When exactly?"},
                {"agent": [{"say": "Between 4 and 6 PM today."}, {"tool": "end_call"}]},
            ],
        }
    )


@contextlib.asynccontextmanager
async def _line(flow=FLOW):
    """The flow served with a REST client pointed at the fake Sautikit REST API on loopback."""
    rest = FakeSautikitState()
    async with serve_on_loopback(sautikit_rest_app(rest)) as rest_url:
        settings = Settings(
            fallback_voice="synthetic",
            sautikit_api_key=DEFAULT_API_KEY,
            sautikit_base_url=rest_url,
        )
        script_holder: list[CallScript] = []

        def brain(start):
            return ScriptedBrain(script_holder[0] if script_holder else CallScript(title="x", turns=[]))

        async with serve_line(flow=flow, settings=settings, brain_factory=brain) as line:
            yield line, rest, script_holder


@pytest.mark.looptime
async def test_outbound_answered_call_tells_the_order_then_answers_a_question() -> None:
    """A person answers: the order is said from the `answered` route, a question is answered, the call ends."""
    record = await run_scripted_call(_script("answer"), flow=FLOW)
    transcript = record.render()
    assert "(outbound: order DX1042, attempt 1)" in transcript
    assert "state     calling_out -> narrating (answered)" in transcript
    assert "Your order D X one zero four two is arriving today between 4 and 6 PM." in transcript
    assert transcript.index("answered by a person") < transcript.index('caller    "When exactly?"')
    assert record.transcript.outcome == "resolved"
    assert record.attempts == ("attempt 1 HD_00000001: answer",)


@pytest.mark.looptime
async def test_outbound_call_is_placed_with_a_stable_idempotency_key() -> None:
    """`POST /v1/calls` carries an Idempotency-Key and a signed webhook URL naming the order."""
    async with _line() as (line, rest, holder):
        holder.append(_script("answer"))
        await line.call_outbound(holder[0], rest)
    posts = [r for r in rest.requests if r.method == "POST" and r.path == "/v1/calls"]
    assert len(posts) == 1
    assert posts[0].idempotency_key is not None
    assert posts[0].idempotency_key.startswith("notify-outbound-DX1042-a1-")
    (call,) = rest.calls.values()
    assert call.direction == "outbound"
    assert call.remote_e164 == CUSTOMER
    assert "outbound=DX1042" in str(call.events[0]["voice_callback_url"])


@pytest.mark.looptime
async def test_outbound_not_answered_then_busy_is_retried_and_each_attempt_is_stored() -> None:
    """No answer, then busy: each attempt is recorded with its outcome; the third is answered."""
    async with _line() as (line, rest, holder):
        holder.append(_script("no_answer", "busy", "answer"))
        record = await line.call_outbound(holder[0], rest)
        await line.orchestrator.records.flush(5)
        stored = await line.orchestrator.store.recent(limit=10)
    assert [a.split(":")[1].split()[0] for a in record.attempts] == ["no_answer", "busy", "answer"]
    assert "(rang 630 s after the first)" in record.attempts[1]  # 30 s of ringing + retry_after 10m
    outcomes = sorted(call.outcome for call in stored)
    assert outcomes == ["busy", "no_answer", "resolved"]
    missed = next(call for call in stored if call.outcome == "no_answer")
    assert "attempt 2 in 600 s" in missed.transcript_text
    assert missed.caller_masked == "+2547*****678"


@pytest.mark.looptime
async def test_outbound_retries_stop_after_the_flows_retries() -> None:
    """Never answered: the first call and `retries` (2) more, then it is recorded with no retry left."""
    async with _line() as (line, rest, holder):
        holder.append(_script("no_answer"))
        record = await line.call_outbound(holder[0], rest)
        await line.orchestrator.records.flush(5)
        stored = await line.orchestrator.store.recent(limit=10)
    assert len(record.attempts) == 3
    assert len([c for c in rest.calls.values() if c.direction == "outbound"]) == 3
    last = max(stored, key=lambda call: call.started_at)
    assert "no retry left after attempt 3" in last.transcript_text
    assert record.transcript.outcome == "unfinished"  # nobody answered: no conversation


@pytest.mark.looptime
async def test_outbound_voicemail_gets_the_message_after_the_beep() -> None:
    """A long greeting is a voicemail; the flow's `voicemail` route speaks once the beep is over."""
    record = await run_scripted_call(_script("voicemail", turns=[]), flow=FLOW)
    transcript = record.render()
    assert "answered by voicemail" in transcript
    assert "state     calling_out -> ended (voicemail)" in transcript
    assert "This is Duka Express: order D X one zero four two arrives" in transcript
    assert record.transcript.outcome == "voicemail"
    assert record.platform.voicemail_recorded_ms > 3000
    log = "\n".join(record.platform.log)
    assert log.index("voicemail greeting over (beep)") < log.index("stream closed by the service")
    assert record.platform.kill_audio == 0  # the message did not start over the beep


@pytest.mark.looptime
async def test_outbound_voicemail_hang_up_leaves_no_message_and_retries() -> None:
    """`voicemail: hang_up`: the call ends at the greeting, with nothing said, and is placed again."""
    assert FLOW.outbound is not None
    flow = FLOW.model_copy(
        update={"outbound": FLOW.outbound.model_copy(update={"voicemail": "hang_up"})}
    )
    record = await run_scripted_call(_script("voicemail", "answer"), flow=flow)
    assert [a.split(":")[1].split()[0] for a in record.attempts] == ["voicemail", "answer"]
    assert record.transcript.outcome == "resolved"


async def _post_voice(line, query: str, **fields: str) -> tuple[int, str]:
    """POST the voice webhook the way Sautikit does (form encoded), to the service's loopback port."""
    async with aiohttp.ClientSession() as http:
        url = f"{line.url}{line.settings.routes.voice}?{query}"
        async with http.post(url, data=fields) as response:
            return response.status, await response.text()


def _signed_query(line, *, order: str = "DX1042", attempt: int = 1) -> str:
    request = OutboundRequest(order=order, to=CUSTOMER, attempt=attempt)
    return urlsplit(outbound_callback_url("https://x.test/voice", request, line.orchestrator.secret)).query


@pytest.mark.looptime
async def test_outbound_webhook_with_a_tampered_order_is_answered_as_an_inbound_call() -> None:
    """An order the service did not sign starts the inbound flow (its greeting), never the outbound one."""
    async with _line() as (line, _rest, _holder):
        query = _signed_query(line).replace("DX1042", "DX1043")
        status, xml = await _post_voice(
            line, query, CallSid="HD_tamper1", From="+254711000000", To=CUSTOMER, direction="outbound"
        )
    assert status == 200
    assert "Hello, this is Duka Express." in xml  # the inbound greeting's <Say>


@pytest.mark.looptime
async def test_outbound_webhook_of_any_direction_spelling_listens_first() -> None:
    """A signed outbound URL is answered with a Stream and no Say, whatever `direction` says."""
    async with _line() as (line, _rest, _holder):
        status, xml = await _post_voice(
            line, _signed_query(line), CallSid="HD_out1", From="+254711000000", To=CUSTOMER,
            direction="Outbound-API", callSessionState="Answered",
        )
        session = line.orchestrator.sessions["HD_out1"]
    assert status == 200
    assert "<Stream" in xml and "<Say" not in xml
    assert session.machine.state == "calling_out"
    assert session.caller == CUSTOMER


@pytest.mark.looptime
async def test_outbound_not_answered_reported_twice_is_recorded_and_retried_once() -> None:
    """At-least-once delivery: the same NoAnswer twice gives one record and one retry placed."""
    async with _line() as (line, rest, _holder):
        rest.numbers["n"] = FakeNumber(id="n", e164="+254711000000", inventory_id="i")
        for _ in range(2):
            status, xml = await _post_voice(
                line, _signed_query(line), CallSid="HD_miss1", From="+254711000000", To=CUSTOMER,
                direction="outbound", callSessionState="NoAnswer", isActive="false",
            )
            assert (status, "<Response/>" in xml) == (200, True)
        await asyncio.sleep(FLOW.outbound.retry_after + 5)
        await line.orchestrator.records.flush(5)
        stored = await line.orchestrator.store.recent(limit=10)
    posts = [r for r in rest.requests if r.path == "/v1/calls"]
    assert len(posts) == 1
    assert "-a2-" in str(posts[0].idempotency_key)
    assert [call.outcome for call in stored] == ["no_answer"]
