"""Sautikit's event webhook: answered at once, deduplicated on event_id, attached to the call, signed."""

import json
import time

import pytest

from orchestrator.app import ORCHESTRATOR, create_app
from orchestrator.brains.scripted import ScriptedBrain
from orchestrator.script import load_script
from orchestrator.settings import Settings
from orchestrator.telephony.signing import sign_webhook
from tests.flows import SCRIPTS

SCRIPT = load_script(SCRIPTS / "returning_caller_by_phone.yaml")


async def _client(aiohttp_client, **settings):
    app = create_app(Settings(**settings), brain_factory=lambda start: ScriptedBrain(SCRIPT))
    return await aiohttp_client(app)


async def _start_call(client, call_sid="HD_evt0001"):
    response = await client.post("/voice", data={"CallSid": call_sid, "From": "+254712345678"})
    assert response.status == 200


def _event(event_id="evt_1", kind="call.completed", **data):
    return {"kind": kind, "event_id": event_id, "occurred_at": "2026-11-26T09:00:00Z", "data": data}


async def test_events_attach_to_the_call_they_name(aiohttp_client):
    """A call.completed event naming the call's session id lands in its transcript."""
    client = await _client(aiohttp_client)
    await _start_call(client)
    response = await client.post("/events", json=_event(session_id="HD_evt0001", status="completed"))
    assert response.status == 204
    session = client.app[ORCHESTRATOR].sessions["HD_evt0001"]
    assert session.transcript.of_kind("event") == ["call.completed: status=completed"]


async def test_events_are_deduplicated_on_event_id(aiohttp_client):
    """Sautikit delivers at least once: the same event_id twice is recorded once, both answered 2xx."""
    client = await _client(aiohttp_client)
    await _start_call(client)
    body = _event(event_id="evt_dup", kind="recording.ready", call={"session_id": "HD_evt0001"}, url="https://r")
    first = await client.post("/events", json=body)
    second = await client.post("/events", json=body)
    assert (first.status, second.status) == (204, 204)
    session = client.app[ORCHESTRATOR].sessions["HD_evt0001"]
    assert session.transcript.of_kind("event") == ["recording.ready: url=https://r"]


async def test_events_for_unknown_calls_are_still_acknowledged(aiohttp_client):
    """An event about a call this worker never saw is answered 2xx (so Sautikit stops retrying)."""
    client = await _client(aiohttp_client)
    response = await client.post("/events", json=_event(call_id="HD_elsewhere"))
    assert response.status == 204


@pytest.mark.parametrize("body", [b"{}", b"not json", json.dumps([1, 2]).encode(), b'{"kind": "x"}'])
async def test_events_malformed_bodies_get_400(aiohttp_client, body):
    """A body that is not an event envelope gets 400 with what was expected."""
    client = await _client(aiohttp_client)
    response = await client.post("/events", data=body, headers={"Content-Type": "application/json"})
    assert response.status == 400
    assert "event_id" in await response.text()


async def test_events_signature_enforced_when_a_secret_is_set(aiohttp_client):
    """With a webhook secret, an unsigned event is refused and a signed one accepted."""
    client = await _client(aiohttp_client, webhook_secret="whsec_test")  # noqa: S106 - test credential
    body = json.dumps(_event(event_id="evt_signed")).encode()
    unsigned = await client.post("/events", data=body, headers={"Content-Type": "application/json"})
    assert unsigned.status == 403
    signature = sign_webhook(b"whsec_test", body, now=time.time())
    signed = await client.post(
        "/events", data=body, headers={"Content-Type": "application/json", "X-Sautikit-Signature": signature}
    )
    assert signed.status == 204
