"""A finished call leaves the live map soon after its end, and a late re-POST for it starts nothing new."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit
from xml.etree import ElementTree

import pytest

from orchestrator.app import FINISHED_CALL_GRACE_S, ORCHESTRATOR, create_app
from orchestrator.brains.scripted import ScriptedBrain
from orchestrator.script import load_script
from orchestrator.settings import Settings
from orchestrator.telephony.stream import SUBPROTOCOL
from tests.flows import SCRIPTS

SCRIPT = load_script(SCRIPTS / "returning_caller_by_phone.yaml")
FIELDS = {"CallSid": "HD_done0001", "From": "+254712345678", "callSessionState": "Ringing"}


async def _finished_call(client) -> None:
    """One call whose caller hangs up at once: the webhook, the socket opened and closed."""
    xml = await (await client.post("/voice", data=FIELDS)).text()
    stream = ElementTree.fromstring(xml).find("Stream")  # noqa: S314 - our own app's reply
    assert stream is not None
    url = urlsplit(stream.get("url", ""))
    async with client.ws_connect(f"{url.path}?{url.query}", protocols=(SUBPROTOCOL,)) as ws:
        await ws.send_str(json.dumps({"callSid": "HD_done0001", "sampleRate": 16000}))
        await ws.send_bytes(bytes(640))


@pytest.mark.looptime
async def test_finished_call_leaves_the_live_map_after_its_grace(aiohttp_client):
    """Stream-status callbacks trailing the end still find the call; after the grace it is gone."""
    app = create_app(Settings(), brain_factory=lambda start: ScriptedBrain(SCRIPT))
    client = await aiohttp_client(app)
    started = []
    app[ORCHESTRATOR].on_call_started.append(started.append)
    await _finished_call(client)
    await asyncio.wait_for(started[0].finished.wait(), timeout=5)

    assert "HD_done0001" in app[ORCHESTRATOR].sessions
    await asyncio.sleep(FINISHED_CALL_GRACE_S + 1)
    assert app[ORCHESTRATOR].sessions == {}
    assert started[0].transcript.outcome == "abandoned"


@pytest.mark.looptime
async def test_late_repost_for_a_finished_call_is_answered_empty_and_starts_no_call(aiohttp_client):
    """Sautikit's Completed re-POST long after the end gets an empty Response, not a new greeting."""
    app = create_app(Settings(), brain_factory=lambda start: ScriptedBrain(SCRIPT))
    client = await aiohttp_client(app)
    await _finished_call(client)
    await asyncio.sleep(FINISHED_CALL_GRACE_S + 1)

    answer = await client.post("/voice", data={**FIELDS, "callSessionState": "Completed"})

    assert answer.status == 200
    assert (await answer.text()).endswith("<Response/>")
    assert app[ORCHESTRATOR].sessions == {}
