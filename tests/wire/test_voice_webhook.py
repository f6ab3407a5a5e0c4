"""The voice webhook over a real loopback socket: liberal parsing in, strict voice XML out.

Each test builds the service inline with `create_app` and POSTs to it the way Sautikit does (form or JSON,
every field-name variant of reference/sautikit.md), then reads the answer as XML with ElementTree.
"""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from pytest_aiohttp import AiohttpClient

from orchestrator.app import ORCHESTRATOR, create_app
from orchestrator.brains.scripted import ScriptedBrain
from orchestrator.script import load_script
from orchestrator.settings import Settings
from orchestrator.telephony.signing import verify_stream_token
from orchestrator.testing import run_scripted_call
from tests.flows import SCRIPTS

SCRIPT = SCRIPTS / "returning_caller_by_phone.yaml"
PUBLIC_URL = "https://agent.example.com"
SECRET = "wire-test-stream-secret"  # noqa: S105 - test credential
CALLER = "+254712345678"
CALLEE = "+254711000000"


def _stream(root: ET.Element) -> ET.Element:
    streams = root.findall("Stream")
    assert len(streams) == 1, ET.tostring(root, encoding="unicode")
    return streams[0]


def _form(fields: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    return urlencode(fields).encode(), {"Content-Type": "application/x-www-form-urlencoded"}


def _json(fields: dict[str, object]) -> tuple[bytes, dict[str, str]]:
    return json.dumps(fields).encode(), {"Content-Type": "application/json"}


@pytest.mark.parametrize("encoding", ["form", "json"])
@pytest.mark.parametrize("id_key", ["CallSid", "callSid", "call_sid", "CallId", "call_id", "sessionId"])
async def test_voice_webhook_accepts_every_call_id_spelling(
    aiohttp_client: AiohttpClient, id_key: str, encoding: str
) -> None:
    """Every call-id spelling, form or JSON, starts a call and answers a Say greeting then one Stream."""
    app = create_app(
        Settings(public_url=PUBLIC_URL, stream_secret=SECRET),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)
    fields = {id_key: "HD_variant01", "From": CALLER, "To": CALLEE, "callSessionState": "Ringing"}
    body, headers = _form(fields) if encoding == "form" else _json(dict(fields))

    response = await client.post("/voice", data=body, headers=headers)

    assert response.status == 200
    assert response.content_type == "application/xml"
    root = ET.fromstring(await response.text())  # noqa: S314 - our own service's reply
    assert root.tag == "Response"
    assert [child.tag for child in root] == ["Say", "Stream"]
    assert (root.find("Say").text or "").strip()  # type: ignore[union-attr]
    assert "HD_variant01" in app[ORCHESTRATOR].sessions


@pytest.mark.parametrize("encoding", ["form", "json"])
@pytest.mark.parametrize(
    ("caller_key", "callee_key"),
    [("From", "To"), ("from", "to"), ("callerNumber", "destinationNumber")],
)
async def test_voice_webhook_accepts_every_caller_and_callee_spelling(
    aiohttp_client: AiohttpClient, caller_key: str, callee_key: str, encoding: str
) -> None:
    """Caller and callee are read under each of their spellings and normalised to E.164."""
    app = create_app(
        Settings(public_url=PUBLIC_URL, stream_secret=SECRET),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)
    fields = {"CallSid": "HD_numbers01", caller_key: "0712 345 678", callee_key: "254711000000"}
    body, headers = _form(fields) if encoding == "form" else _json(dict(fields))

    response = await client.post("/voice", data=body, headers=headers)

    assert response.status == 200
    session = app[ORCHESTRATOR].sessions["HD_numbers01"]
    assert session.caller == CALLER
    # The transcript masks both numbers but keeps them recognisable: the callee was read too.
    assert session.transcript.of_kind("call")[0].startswith(
        "HD_numbers01 from +2547*****678 to +2547*****000"
    )


async def test_voice_webhook_stream_verb_carries_every_attribute(aiohttp_client: AiohttpClient) -> None:
    """The Stream verb has connect, track, both sampling rates, status callback and events, and a wss url."""
    app = create_app(
        Settings(public_url=PUBLIC_URL, stream_secret=SECRET),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)
    body, headers = _form({"CallSid": "HD_attrs01", "From": CALLER, "To": CALLEE})

    response = await client.post("/voice", data=body, headers=headers)

    stream = _stream(ET.fromstring(await response.text()))  # noqa: S314
    assert stream.get("connect") == "true"
    assert stream.get("track") == "inbound_track"
    assert stream.get("outputSamplingRate") == "16000"
    assert stream.get("bidirectionalSamplingRate") == "16000"
    assert stream.get("statusCallback") == f"{PUBLIC_URL}/stream-status?call_sid=HD_attrs01"
    assert set((stream.get("statusEvents") or "").split()) == {
        "stream-started",
        "stream-stopped",
        "stream-error",
    }
    url = urlsplit(stream.get("url") or "")
    assert (url.scheme, url.netloc, url.path) == ("wss", "agent.example.com", "/audio")


async def test_voice_webhook_stream_url_carries_call_sid_and_a_token_that_verifies(
    aiohttp_client: AiohttpClient,
) -> None:
    """The Stream url names the call and carries a token that verifies for that call and no other."""
    app = create_app(
        Settings(public_url=PUBLIC_URL, stream_secret=SECRET),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)
    body, headers = _form({"CallSid": "HD_token01", "From": CALLER})

    response = await client.post("/voice", data=body, headers=headers)

    stream = _stream(ET.fromstring(await response.text()))  # noqa: S314
    query = parse_qs(urlsplit(stream.get("url") or "").query)
    assert query["call_sid"] == ["HD_token01"]
    verify_stream_token(SECRET.encode(), "HD_token01", query["token"][0], now=time.time())
    with pytest.raises(Exception, match="does not match"):
        verify_stream_token(SECRET.encode(), "HD_other01", query["token"][0], now=time.time())


async def test_voice_webhook_honours_track_and_sample_rate_settings(aiohttp_client: AiohttpClient) -> None:
    """An 8 kHz, both-tracks service asks Sautikit for exactly that in the Stream verb."""
    app = create_app(
        Settings(public_url=PUBLIC_URL, sample_rate=8000, track="both_tracks"),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)
    body, headers = _form({"CallSid": "HD_rate01", "From": CALLER})

    response = await client.post("/voice", data=body, headers=headers)

    stream = _stream(ET.fromstring(await response.text()))  # noqa: S314
    assert stream.get("track") == "both_tracks"
    assert stream.get("outputSamplingRate") == "8000"
    assert stream.get("bidirectionalSamplingRate") == "8000"


async def test_voice_webhook_reads_a_call_nested_in_an_event_envelope(aiohttp_client: AiohttpClient) -> None:
    """A JSON envelope with the call under data.call is read like a flat body."""
    app = create_app(
        Settings(public_url=PUBLIC_URL),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)
    body, headers = _json(
        {"kind": "call.answered", "data": {"call": {"callSid": "HD_nested01", "from": CALLER}}}
    )

    response = await client.post("/voice", data=body, headers=headers)

    assert response.status == 200
    _stream(ET.fromstring(await response.text()))  # noqa: S314
    assert app[ORCHESTRATOR].sessions["HD_nested01"].caller == CALLER


async def test_voice_webhook_first_post_already_completed_still_gets_the_stream(
    aiohttp_client: AiohttpClient,
) -> None:
    """A first POST that already says callSessionState=Completed is answered with the Stream anyway."""
    app = create_app(
        Settings(public_url=PUBLIC_URL),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)
    body, headers = _form(
        {"CallSid": "HD_early01", "From": CALLER, "callSessionState": "Completed", "isActive": "false"}
    )

    response = await client.post("/voice", data=body, headers=headers)

    assert response.status == 200
    _stream(ET.fromstring(await response.text()))  # noqa: S314


@pytest.mark.parametrize("state", ["Active", "Completed"])
async def test_voice_webhook_repost_for_a_known_call_answers_an_empty_response(
    aiohttp_client: AiohttpClient, state: str
) -> None:
    """A lifecycle re-POST for a call that has its session gets `<Response/>`, never a second Stream."""
    app = create_app(
        Settings(public_url=PUBLIC_URL),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)
    first, headers = _form({"CallSid": "HD_again01", "From": CALLER, "callSessionState": "Ringing"})
    again, _ = _form({"CallSid": "HD_again01", "From": CALLER, "callSessionState": state})

    await client.post("/voice", data=first, headers=headers)
    response = await client.post("/voice", data=again, headers=headers)

    assert response.status == 200
    assert response.content_type == "application/xml"
    root = ET.fromstring(await response.text())  # noqa: S314
    assert root.tag == "Response"
    assert list(root) == []
    assert len(app[ORCHESTRATOR].sessions) == 1


async def test_voice_webhook_repost_in_json_after_form_is_still_the_same_call(
    aiohttp_client: AiohttpClient,
) -> None:
    """A re-POST under another encoding and spelling is recognised as the same call."""
    app = create_app(
        Settings(public_url=PUBLIC_URL),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)
    first, form_headers = _form({"CallSid": "HD_mixed01", "From": CALLER})
    again, json_headers = _json({"sessionId": "HD_mixed01", "callerNumber": CALLER})

    await client.post("/voice", data=first, headers=form_headers)
    response = await client.post("/voice", data=again, headers=json_headers)

    assert list(ET.fromstring(await response.text())) == []  # noqa: S314
    transcript = app[ORCHESTRATOR].sessions["HD_mixed01"].transcript
    assert "webhook again (callSessionState=-)" in transcript.of_kind("call")


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"From": CALLER, "To": CALLEE}, "missing call id"),
        ({"CallSid": "", "From": CALLER}, "missing call id"),
    ],
    ids=["no-call-id", "empty-call-id"],
)
@pytest.mark.parametrize("encoding", ["form", "json"])
async def test_voice_webhook_without_call_id_is_400_with_the_reason(
    aiohttp_client: AiohttpClient, fields: dict[str, str], reason: str, encoding: str
) -> None:
    """A body lacking the call id is refused with 400 and says which field is missing."""
    app = create_app(
        Settings(public_url=PUBLIC_URL),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)
    body, headers = _form(fields) if encoding == "form" else _json(dict(fields))

    response = await client.post("/voice", data=body, headers=headers)

    assert response.status == 400
    assert reason in await response.text()
    assert app[ORCHESTRATOR].sessions == {}


@pytest.mark.parametrize(
    "body",
    [b'{"CallSid": "HD_1", "From": ', b"[1, 2, 3]", b"\xff\xfe{not json"],
    ids=["truncated", "not-an-object", "bad-bytes"],
)
async def test_voice_webhook_malformed_json_is_400(aiohttp_client: AiohttpClient, body: bytes) -> None:
    """Malformed JSON is a 400 that says so, and starts no call."""
    app = create_app(
        Settings(public_url=PUBLIC_URL),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)

    response = await client.post("/voice", data=body, headers={"Content-Type": "application/json"})

    assert response.status == 400
    assert "JSON" in await response.text()
    assert app[ORCHESTRATOR].sessions == {}


async def test_voice_webhook_oversize_body_is_413(aiohttp_client: AiohttpClient) -> None:
    """A body larger than the service accepts is refused with 413 and starts no call."""
    app = create_app(
        Settings(public_url=PUBLIC_URL),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)
    body, headers = _form({"CallSid": "HD_big01", "From": CALLER, "padding": "x" * (512 * 1024)})

    response = await client.post("/voice", data=body, headers=headers)

    assert response.status == 413
    assert app[ORCHESTRATOR].sessions == {}


async def test_voice_webhook_reply_is_xml_with_a_declaration(aiohttp_client: AiohttpClient) -> None:
    """The whole reply parses as XML with a declaration, so Sautikit's parser sees exactly our verbs."""
    app = create_app(
        Settings(public_url=PUBLIC_URL),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)
    body, headers = _form({"CallSid": "HD_xml-01", "From": CALLER})

    response = await client.post("/voice", data=body, headers=headers)

    text = await response.text()
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    stream = _stream(ET.fromstring(text))  # noqa: S314
    assert parse_qs(urlsplit(stream.get("url") or "").query)["call_sid"] == ["HD_xml-01"]


@pytest.mark.parametrize("call_id", ["HD_<&>01", "HD_a&b=c"])
async def test_voice_webhook_call_id_with_markup_or_query_characters_is_400(
    aiohttp_client: AiohttpClient, call_id: str
) -> None:
    """Regression: ids holding `<&>` or `&=` reached the XML and the URLs; now they are refused at the edge."""
    app = create_app(
        Settings(public_url=PUBLIC_URL),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)
    body, headers = _form({"CallSid": call_id, "From": CALLER})

    response = await client.post("/voice", data=body, headers=headers)

    assert response.status == 400
    assert "only letters, digits" in await response.text()
    assert app[ORCHESTRATOR].sessions == {}


@pytest.mark.looptime
async def test_voice_webhook_json_encoded_whole_call_resolves() -> None:
    """A whole call whose platform POSTs JSON webhooks is served and resolved like a form-encoded one."""
    script = load_script(SCRIPT).model_copy(update={"webhook": "json"})

    record = await run_scripted_call(script, call_sid="HD_jsoncall01")

    assert record.transcript.outcome == "resolved"
    first, again = (ET.fromstring(xml) for xml in record.platform.xml_answers)  # noqa: S314
    assert first.find("Stream") is not None
    assert list(again) == []
