"""Sautikit saying the call is over (a re-POST with callSessionState=Completed) ends a streaming call."""

import asyncio
import json
from urllib.parse import urlsplit
from xml.etree import ElementTree

import pytest

from orchestrator.app import ORCHESTRATOR, create_app
from orchestrator.brains.scripted import ScriptedBrain
from orchestrator.script import load_script
from orchestrator.settings import Settings
from orchestrator.telephony.stream import SUBPROTOCOL
from tests.flows import SCRIPTS

SCRIPT = load_script(SCRIPTS / "returning_caller_by_phone.yaml")


@pytest.mark.looptime
async def test_platform_completed_repost_ends_the_streaming_call(aiohttp_client):
    """The session records the caller leaving, moves the flow to `ended` and closes the socket."""
    app = create_app(Settings(), brain_factory=lambda start: ScriptedBrain(SCRIPT))
    client = await aiohttp_client(app)
    fields = {"CallSid": "HD_gone0001", "From": "+254712345678", "callSessionState": "Ringing"}
    xml = await (await client.post("/voice", data=fields)).text()
    stream = ElementTree.fromstring(xml).find("Stream")  # noqa: S314 - our own app's reply, not untrusted
    assert stream is not None
    url = urlsplit(stream.get("url", ""))
    ws = await client.ws_connect(f"{url.path}?{url.query}", protocols=(SUBPROTOCOL,))
    await ws.send_str(json.dumps({"callSid": "HD_gone0001", "sampleRate": 16000}))
    for _ in range(25):
        await ws.send_bytes(bytes(640))
        await asyncio.sleep(0.02)

    answer = await client.post("/voice", data={**fields, "callSessionState": "Completed"})
    assert (await answer.text()).endswith("<Response/>")
    async with asyncio.timeout(5):
        async for _ in ws:  # agent audio until the service closes the socket
            pass
    assert ws.closed

    session = app[ORCHESTRATOR].sessions["HD_gone0001"]
    await asyncio.wait_for(session.finished.wait(), timeout=5)
    assert session.transcript.outcome == "abandoned"
    assert "identifying -> ended (hangup)" in session.transcript.of_kind("state")
