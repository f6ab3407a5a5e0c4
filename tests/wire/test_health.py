"""The health endpoint over a real loopback socket: a load balancer's view of the service."""

from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ET
from urllib.parse import urlencode, urlsplit

import aiohttp
import pytest
from pytest_aiohttp import AiohttpClient

from orchestrator.app import ORCHESTRATOR, create_app
from orchestrator.brains.scripted import ScriptedBrain
from orchestrator.script import load_script
from orchestrator.settings import Settings
from orchestrator.telephony.stream import SUBPROTOCOL
from tests.flows import SCRIPTS

SCRIPT = SCRIPTS / "returning_caller_by_phone.yaml"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def test_health_is_ok_json_with_no_calls(aiohttp_client: AiohttpClient) -> None:
    """A fresh service answers 200 JSON: status ok and no active calls."""
    app = create_app(
        Settings(public_url="https://agent.example.com"),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)

    response = await client.get("/healthz")

    assert response.status == 200
    assert response.content_type == "application/json"
    body = await response.json()
    assert (body["status"], body["active_calls"]) == ("ok", 0)


async def test_health_counts_calls_started_by_the_webhook(aiohttp_client: AiohttpClient) -> None:
    """Each call the webhook starts counts as active; a re-POST does not count twice."""
    app = create_app(
        Settings(public_url="https://agent.example.com"),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)
    for sid in ("HD_health01", "HD_health02", "HD_health01"):
        await client.post("/voice", data=urlencode({"CallSid": sid, "From": "+254712345678"}), headers=FORM)

    body = await (await client.get("/healthz")).json()

    assert body["active_calls"] == 2


@pytest.mark.looptime
async def test_health_stops_counting_a_call_once_it_has_finished(aiohttp_client: AiohttpClient) -> None:
    """A call whose stream has ended leaves the active count and joins the finished count."""
    app = create_app(
        Settings(public_url="https://agent.example.com"),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)
    response = await client.post(
        "/voice", data=urlencode({"CallSid": "HD_health03", "From": "+254712345678"}), headers=FORM
    )
    stream = ET.fromstring(await response.text()).find("Stream")  # noqa: S314
    assert stream is not None
    url = urlsplit(stream.get("url") or "")
    session = app[ORCHESTRATOR].sessions["HD_health03"]

    async with client.ws_connect(f"{url.path}?{url.query}", protocols=(SUBPROTOCOL,)) as ws:
        await ws.send_str(json.dumps({"callSid": "HD_health03"}))
        assert (await ws.receive(timeout=5)).type is aiohttp.WSMsgType.BINARY
        during = await (await client.get("/healthz")).json()
    await asyncio.wait_for(session.finished.wait(), timeout=5)
    after = await (await client.get("/healthz")).json()

    assert (during["active_calls"], during["finished_calls"]) == (1, 0)
    assert (after["active_calls"], after["finished_calls"]) == (0, 1)
