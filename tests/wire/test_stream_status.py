"""The stream status callback over a real loopback socket: any body shape is accepted, logged and attached.

Sautikit's status bodies are undocumented (reference/sautikit.md), so the service answers 204 to every one,
logs it raw, and adds it to the call's transcript when it can tell which call it is about.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import structlog
from pytest_aiohttp import AiohttpClient

from orchestrator.app import ORCHESTRATOR, create_app
from orchestrator.brains.scripted import ScriptedBrain
from orchestrator.script import load_script
from orchestrator.settings import Settings
from tests.flows import SCRIPTS

SCRIPT = SCRIPTS / "returning_caller_by_phone.yaml"
PUBLIC_URL = "https://agent.example.com"
CALLER = "+254712345678"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def test_stream_status_form_body_is_204_logged_and_attached(aiohttp_client: AiohttpClient) -> None:
    """A form-encoded status callback on the url we gave is 204, logged, and a `status` transcript line."""
    app = create_app(
        Settings(public_url=PUBLIC_URL),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)
    await client.post("/voice", data=urlencode({"CallSid": "HD_status01", "From": CALLER}), headers=FORM)

    with structlog.testing.capture_logs() as logs:
        response = await client.post(
            "/stream-status?call_sid=HD_status01",
            data=urlencode({"event": "stream-started", "streamSid": "MZ1"}),
            headers=FORM,
        )

    assert response.status == 204
    assert "stream status stream-started" in app[ORCHESTRATOR].sessions["HD_status01"].transcript.of_kind(
        "status"
    )
    logged = [e for e in logs if e["event"] == "stream_status"]
    assert [(e["call_sid"], e["fields"]["event"]) for e in logged] == [("HD_status01", "stream-started")]


async def test_stream_status_json_body_names_the_call_without_a_query(aiohttp_client: AiohttpClient) -> None:
    """A JSON status body naming the call by callSid is attached even when the url has no call_sid."""
    app = create_app(
        Settings(public_url=PUBLIC_URL),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)
    await client.post("/voice", data=urlencode({"CallSid": "HD_status02", "From": CALLER}), headers=FORM)

    response = await client.post(
        "/stream-status",
        data=json.dumps({"callSid": "HD_status02", "event": "stream-stopped"}),
        headers={"Content-Type": "application/json"},
    )

    assert response.status == 204
    assert app[ORCHESTRATOR].sessions["HD_status02"].transcript.of_kind("status") == [
        "stream status stream-stopped"
    ]


@pytest.mark.parametrize("id_key", ["callSid", "CallSid", "call_sid", "sessionId"])
async def test_stream_status_accepts_every_call_id_spelling(
    aiohttp_client: AiohttpClient, id_key: str
) -> None:
    """The status body may name the call under any of Sautikit's spellings of the call id."""
    app = create_app(
        Settings(public_url=PUBLIC_URL),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)
    await client.post("/voice", data=urlencode({"CallSid": "HD_status03", "From": CALLER}), headers=FORM)

    response = await client.post(
        "/stream-status", data=urlencode({id_key: "HD_status03", "status": "stream-error"}), headers=FORM
    )

    assert response.status == 204
    assert app[ORCHESTRATOR].sessions["HD_status03"].transcript.of_kind("status") == [
        "stream status stream-error"
    ]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b'{"callSid": "HD_nobody", "event": "stream-started"}', "application/json"),
        (b"{broken json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b"", "application/x-www-form-urlencoded"),
        (b"\xff\xfe\x00", "application/octet-stream"),
    ],
    ids=["unknown-call", "broken-json", "json-array", "empty", "binary"],
)
async def test_stream_status_odd_bodies_are_still_204(
    aiohttp_client: AiohttpClient, body: bytes, content_type: str
) -> None:
    """Unknown calls and unreadable bodies are acknowledged with 204 and touch no live call."""
    app = create_app(
        Settings(public_url=PUBLIC_URL),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)
    await client.post("/voice", data=urlencode({"CallSid": "HD_status04", "From": CALLER}), headers=FORM)

    response = await client.post("/stream-status", data=body, headers={"Content-Type": content_type})

    assert response.status == 204
    assert app[ORCHESTRATOR].sessions["HD_status04"].transcript.of_kind("status") == []


async def test_stream_status_callback_url_names_the_call(aiohttp_client: AiohttpClient) -> None:
    """The statusCallback url's query names the call exactly (ids with '&' or '=' never get this far)."""
    app = create_app(
        Settings(public_url=PUBLIC_URL),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)

    response = await client.post(
        "/voice", data=urlencode({"CallSid": "HD_a-b_c", "From": CALLER}), headers=FORM
    )

    stream = ET.fromstring(await response.text()).find("Stream")  # noqa: S314
    assert stream is not None
    query = parse_qs(urlsplit(stream.get("statusCallback") or "").query)
    assert query == {"call_sid": ["HD_a-b_c"]}
