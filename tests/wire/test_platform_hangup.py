"""Sautikit saying the call is over (a re-POST with callSessionState=Completed) ends a streaming call.

A Completed re-POST hangs up a live call, so it is only taken as said when it is signed, or when the
platform's own call record (REST) confirms the call ended; an unsigned one is otherwise ignored.
"""

import asyncio
import json
import time
from urllib.parse import urlencode, urlsplit
from xml.etree import ElementTree

import pytest

from orchestrator.app import ORCHESTRATOR, create_app
from orchestrator.brains.scripted import ScriptedBrain
from orchestrator.script import load_script
from orchestrator.settings import Settings
from orchestrator.simulator.rest_api import DEFAULT_API_KEY, FakeSautikitState, sautikit_rest_app
from orchestrator.telephony.signing import sign_webhook
from orchestrator.telephony.stream import SUBPROTOCOL
from tests.flows import SCRIPTS

SCRIPT = load_script(SCRIPTS / "returning_caller_by_phone.yaml")
SECRET = "whsec_hangup_test"  # noqa: S105 - test credential
RINGING = {"CallSid": "HD_gone0001", "From": "+254712345678", "callSessionState": "Ringing"}
COMPLETED = {**RINGING, "callSessionState": "Completed"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _signed(fields: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    body = urlencode(fields).encode()
    return body, {**FORM, "X-Sautikit-Signature": sign_webhook(SECRET.encode(), body, now=time.time())}


async def _streaming_call(client, *, secret: str | None = None):
    """Answer the first webhook, open the media socket and send a little audio: a live call."""
    body, headers = _signed(RINGING) if secret else (urlencode(RINGING).encode(), FORM)
    xml = await (await client.post("/voice", data=body, headers=headers)).text()
    stream = ElementTree.fromstring(xml).find("Stream")  # noqa: S314 - our own app's reply, not untrusted
    assert stream is not None
    url = urlsplit(stream.get("url", ""))
    ws = await client.ws_connect(f"{url.path}?{url.query}", protocols=(SUBPROTOCOL,))
    await ws.send_str(json.dumps({"callSid": "HD_gone0001", "sampleRate": 16000}))
    for _ in range(25):
        await ws.send_bytes(bytes(640))
        await asyncio.sleep(0.02)
    return ws


async def _until_closed(ws) -> None:
    async with asyncio.timeout(5):
        async for _ in ws:  # agent audio until the service closes the socket
            pass


@pytest.mark.looptime
async def test_platform_signed_completed_repost_ends_the_streaming_call(aiohttp_client):
    """Signed: the session records the caller leaving, moves the flow to `ended` and closes the socket."""
    app = create_app(Settings(webhook_secret=SECRET), brain_factory=lambda start: ScriptedBrain(SCRIPT))
    client = await aiohttp_client(app)
    ws = await _streaming_call(client, secret=SECRET)

    body, headers = _signed(COMPLETED)
    answer = await client.post("/voice", data=body, headers=headers)
    assert (await answer.text()).endswith("<Response/>")
    await _until_closed(ws)
    assert ws.closed

    session = app[ORCHESTRATOR].sessions["HD_gone0001"]
    await asyncio.wait_for(session.finished.wait(), timeout=5)
    assert session.transcript.outcome == "abandoned"
    assert "identifying -> ended (hangup)" in session.transcript.of_kind("state")


@pytest.mark.looptime
async def test_platform_unsigned_completed_repost_does_not_end_a_live_call(aiohttp_client):
    """Without a secret or a REST key to confirm it, a forged Completed re-POST hangs nobody up."""
    app = create_app(Settings(), brain_factory=lambda start: ScriptedBrain(SCRIPT))
    client = await aiohttp_client(app)
    ws = await _streaming_call(client)

    answer = await client.post("/voice", data=COMPLETED)
    assert (await answer.text()).endswith("<Response/>")
    await asyncio.sleep(1)

    session = app[ORCHESTRATOR].sessions["HD_gone0001"]
    assert not ws.closed
    assert not session.finished.is_set()
    assert "unsigned completed not trusted (no REST key to confirm it)" in (
        session.transcript.of_kind("call")
    )
    await ws.close()


@pytest.mark.looptime
@pytest.mark.parametrize(("platform_status", "ends"), [("completed", True), ("answered", False)])
async def test_platform_unsigned_completed_repost_is_checked_against_the_call_record(
    aiohttp_client, aiohttp_server, platform_status, ends
):
    """Unsigned, the platform's REST record decides: ended there ends it here; still answered does not."""
    state = FakeSautikitState()
    state.add_call(id="HD_gone0001", status=platform_status)
    rest = await aiohttp_server(sautikit_rest_app(state))
    settings = Settings(
        sautikit_api_key=DEFAULT_API_KEY, sautikit_base_url=str(rest.make_url("")).rstrip("/")
    )
    app = create_app(settings, brain_factory=lambda start: ScriptedBrain(SCRIPT))
    client = await aiohttp_client(app)
    ws = await _streaming_call(client)

    await client.post("/voice", data=COMPLETED)
    session = app[ORCHESTRATOR].sessions["HD_gone0001"]
    if ends:
        await _until_closed(ws)
        await asyncio.wait_for(session.finished.wait(), timeout=5)
        assert session.transcript.outcome == "abandoned"
    else:
        await asyncio.sleep(1)
        assert not session.finished.is_set()
        assert "unsigned completed not trusted (platform says answered)" in (
            session.transcript.of_kind("call")
        )
        await ws.close()


@pytest.mark.looptime
async def test_platform_completed_repost_silences_the_agent_at_once(aiohttp_client):
    """Regression: after a signed Completed the agent's queued reply played on for seconds to nobody.

    Now the session stops the paced audio and closes the stream as soon as the re-POST is heard: less
    than a fifth of a second of agent audio (the pacer's lead) reaches the socket after the answer."""
    app = create_app(Settings(webhook_secret=SECRET), brain_factory=lambda start: ScriptedBrain(SCRIPT))
    client = await aiohttp_client(app)
    ws = await _streaming_call(client, secret=SECRET)  # the agent's first reply is playing
    heard = {"before": 0, "after": 0}
    answered = asyncio.Event()

    async def listen() -> None:
        async for message in ws:
            if isinstance(message.data, bytes):
                heard["after" if answered.is_set() else "before"] += len(message.data)

    listening = asyncio.get_running_loop().create_task(listen())
    await asyncio.sleep(0.3)
    body, headers = _signed(COMPLETED)
    answer = await client.post("/voice", data=body, headers=headers)
    assert (await answer.text()).endswith("<Response/>")
    answered.set()
    await asyncio.wait_for(listening, timeout=5)
    after = heard["after"]

    assert heard["before"] > 0  # the reply was playing when the caller left
    assert after < 16000 * 2 // 5  # bytes of 16 kHz 16-bit audio in 0.2 s
    session = app[ORCHESTRATOR].sessions["HD_gone0001"]
    await asyncio.wait_for(session.finished.wait(), timeout=5)
    assert "caller hung up (the platform reported the call completed)" in session.transcript.of_kind("hangup")
