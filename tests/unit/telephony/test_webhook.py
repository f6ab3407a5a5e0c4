"""The voice webhook parser: every field spelling, form and JSON bodies, nesting, and bad input."""

from __future__ import annotations

import dataclasses
import json

import aiohttp
import pytest
from aiohttp import web

from orchestrator.errors import WebhookError
from orchestrator.telephony import CallStart, normalise_phone, parse_webhook, parse_webhook_fields


def _as_json(start: CallStart) -> dict[str, object]:
    return dataclasses.asdict(start)


async def _client(aiohttp_client):
    """A tiny app that parses the webhook and echoes the CallStart, or the error as a 400."""

    async def voice(request: web.Request) -> web.Response:
        try:
            start = await parse_webhook(request)
        except WebhookError as exc:
            return web.json_response({"error": exc.reason}, status=exc.status)
        return web.json_response(_as_json(start))

    app = web.Application()
    app.router.add_post("/voice", voice)
    return await aiohttp_client(app)


@pytest.mark.parametrize(
    "name", ["CallSid", "callSid", "call_sid", "CallId", "call_id", "sessionId"]
)
def test_parse_webhook_fields_accepts_every_call_id_spelling(name):
    """Each documented or observed spelling of the call id is read."""
    start = parse_webhook_fields({name: "HD_abc123", "From": "+254712345678"})
    assert start.call_sid == "HD_abc123"


@pytest.mark.parametrize("name", ["From", "from", "callerNumber"])
def test_parse_webhook_fields_accepts_every_caller_spelling(name):
    """Each spelling of the caller's number is read."""
    start = parse_webhook_fields({"CallSid": "HD_1", name: "+254712345678"})
    assert start.caller == "+254712345678"


@pytest.mark.parametrize("name", ["To", "to", "destinationNumber"])
def test_parse_webhook_fields_accepts_every_callee_spelling(name):
    """Each spelling of the called number is read."""
    start = parse_webhook_fields({"CallSid": "HD_1", "From": "0712345678", name: "+254209990000"})
    assert start.callee == "+254209990000"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("1", True), (True, True), ("TRUE", True), ("false", False), ("0", False),
     (False, False), ("maybe", None)],
)
def test_parse_webhook_fields_reads_is_active_forms(value, expected):
    """isActive arrives as "true"/"1"/true (or their negatives); anything else is unknown."""
    start = parse_webhook_fields({"CallSid": "HD_1", "From": "0712345678", "isActive": value})
    assert start.is_active is expected


def test_parse_webhook_fields_reads_state_direction_and_digits():
    """callSessionState and direction are lower-cased, Digits kept as sent."""
    start = parse_webhook_fields(
        {
            "CallSid": "HD_1",
            "From": "0712345678",
            "callSessionState": "Completed",
            "direction": "Inbound",
            "Digits": "12#",
        }
    )
    assert (start.state, start.direction, start.digits) == ("completed", "inbound", "12#")


def test_parse_webhook_fields_leaves_absent_optionals_none():
    """Only the call id and caller are required; the rest default to None."""
    start = parse_webhook_fields({"CallSid": "HD_1", "From": "0712345678"})
    assert (start.callee, start.state, start.is_active, start.direction, start.digits) == (
        None, None, None, None, None,
    )


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("254712345678", "+254712345678"),
        ("0712345678", "+254712345678"),
        ("+254712345678", "+254712345678"),
        (" +254 712 345 678 ", "+254712345678"),
        ("0712-345-678", "+254712345678"),
        ("00254712345678", "+254712345678"),
        ("0110123456", "+254110123456"),
        ("+14155550100", "+14155550100"),
        ("+254.711.848.716", "+254711848716"),
        ("(0712) 345 678", "+254712345678"),
        ("  anonymous ", None),
        ("sip:alice@example.com", None),
        ("12345", None),
        ("+12", None),
        ("+2547123456789012", None),  # 16 digits: longer than E.164 allows
        ("+0712345678", None),  # no country code starts with 0
        ("07१२345678", None),  # digits of another script are not ASCII digits
        ("1; DROP TABLE orders", None),
        ("", None),
    ],
)
def test_normalise_phone_makes_e164_or_treats_the_number_as_withheld(given, expected):
    """Kenyan national and bare-country-code forms become E.164; anything else is withheld (None)."""
    assert normalise_phone(given) == expected


def test_parse_webhook_fields_treats_an_empty_caller_as_withheld():
    """A From that is present but empty means a withheld number, not a malformed webhook."""
    start = parse_webhook_fields({"CallSid": "HD_1", "From": ""})
    assert start.caller is None


def test_parse_webhook_fields_rejects_a_missing_call_id():
    """Without any call id spelling the webhook cannot be tied to a call."""
    with pytest.raises(WebhookError) as info:
        parse_webhook_fields({"From": "0712345678"})
    assert info.value.reason == "missing call id (CallSid/callSid/call_sid/CallId/sessionId)"
    assert info.value.status == 400


def test_parse_webhook_fields_rejects_an_empty_call_id():
    """A blank call id is as useless as a missing one."""
    with pytest.raises(WebhookError, match="missing call id"):
        parse_webhook_fields({"CallSid": "  ", "From": "0712345678"})


def test_parse_webhook_fields_treats_a_missing_caller_as_withheld():
    """No From at all is a withheld caller: the call is answered, and never looked up by phone."""
    start = parse_webhook_fields({"CallSid": "HD_1"})
    assert (start.call_sid, start.caller) == ("HD_1", None)


@pytest.mark.parametrize("junk", ["anonymous", "private", "sip:x@example.com", "12345", "abc"])
def test_parse_webhook_fields_treats_a_junk_caller_as_withheld(junk):
    """A From that is no phone number is withheld too, so it never reaches the orders API as phone=."""
    assert parse_webhook_fields({"CallSid": "HD_1", "From": junk}).caller is None


@pytest.mark.parametrize(
    ("call_id", "reason"),
    [
        ("../x", "only letters, digits"),
        ("/tmp/owned", "only letters, digits"),  # noqa: S108 - a hostile id, no file is made
        ("HD_1\x00", "only letters, digits"),
        ("HD 1", "only letters, digits"),
        ("HD_ñ1", "only letters, digits"),
        ("HD_1.txt", "only letters, digits"),
        ("x" * 65, "65 characters long"),
        ("x" * 10_000, "10000 characters long"),
    ],
)
def test_parse_webhook_fields_refuses_a_call_id_that_could_name_a_path(call_id, reason):
    """A call id is letters, digits, `_` and `-`, at most 64 of them; anything else is a 400 saying why."""
    with pytest.raises(WebhookError) as info:
        parse_webhook_fields({"CallSid": call_id, "From": "+254712345678"})
    assert reason in info.value.reason
    assert info.value.status == 400


@pytest.mark.parametrize("wrapper", ["call", "data"])
def test_parse_webhook_fields_unwraps_a_nested_call(wrapper):
    """A call nested under "call" or "data" is read as if it were top-level."""
    start = parse_webhook_fields(
        {"kind": "call.updated", wrapper: {"callSid": "HD_9", "from": "254712345678"}}
    )
    assert (start.call_sid, start.caller) == ("HD_9", "+254712345678")
    assert start.raw == {"kind": "call.updated", "callSid": "HD_9", "from": "254712345678"}


def test_parse_webhook_fields_unwraps_an_envelope_two_levels_deep():
    """An events envelope {"data": {"call": {...}}} reaches the call."""
    start = parse_webhook_fields(
        {"event_id": "ev_1", "data": {"call": {"call_id": "HD_7", "callerNumber": "0712345678"}}}
    )
    assert start.call_sid == "HD_7"


def test_parse_webhook_fields_keeps_every_field_raw_as_strings():
    """raw holds every field as a string, JSON values rendered as JSON."""
    start = parse_webhook_fields(
        {"CallSid": "HD_1", "From": "0712345678", "isActive": True, "duration": 12, "extra": None,
         "tags": ["a"]}
    )
    assert start.raw == {
        "CallSid": "HD_1",
        "From": "0712345678",
        "isActive": "true",
        "duration": "12",
        "extra": "",
        "tags": '["a"]',
    }


async def test_parse_webhook_reads_a_urlencoded_form(aiohttp_client):
    """The documented form encoding parses over real HTTP."""
    client = await _client(aiohttp_client)
    response = await client.post(
        "/voice",
        data={"CallSid": "HD_1", "From": "0712345678", "To": "254209990000",
              "callSessionState": "Ringing", "isActive": "1", "direction": "inbound"},
    )
    assert response.status == 200
    assert await response.json() == {
        "call_sid": "HD_1",
        "caller": "+254712345678",
        "callee": "+254209990000",
        "state": "ringing",
        "is_active": True,
        "direction": "inbound",
        "digits": None,
        "raw": {"CallSid": "HD_1", "From": "0712345678", "To": "254209990000",
                "callSessionState": "Ringing", "isActive": "1", "direction": "inbound"},
    }


async def test_parse_webhook_reads_a_multipart_form(aiohttp_client):
    """A multipart/form-data body parses too, file parts ignored."""
    client = await _client(aiohttp_client)
    form = aiohttp.FormData()
    form.add_field("callSid", "HD_2")
    form.add_field("from", "+254712345678")
    form.add_field("recording", b"\x00\x01", filename="a.wav", content_type="audio/wav")
    response = await client.post("/voice", data=form)
    body = await response.json()
    assert (response.status, body["call_sid"], body["caller"]) == (200, "HD_2", "+254712345678")
    assert body["raw"] == {"callSid": "HD_2", "from": "+254712345678"}


async def test_parse_webhook_reads_json(aiohttp_client):
    """A JSON body with JSON-typed values parses by its content type."""
    client = await _client(aiohttp_client)
    response = await client.post(
        "/voice", json={"call_id": "HD_3", "callerNumber": "0712345678", "isActive": True}
    )
    body = await response.json()
    assert (body["call_sid"], body["caller"], body["is_active"]) == ("HD_3", "+254712345678", True)


async def test_parse_webhook_reads_nested_json(aiohttp_client):
    """JSON with the call under "data" parses over HTTP."""
    client = await _client(aiohttp_client)
    response = await client.post(
        "/voice", json={"data": {"sessionId": "HD_4", "from": "254712345678"}}
    )
    assert (await response.json())["call_sid"] == "HD_4"


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_parse_webhook_sniffs_json_under_a_wrong_content_type(aiohttp_client, content_type):
    """A body starting with '{' is JSON whatever the content type claims."""
    client = await _client(aiohttp_client)
    headers = {} if content_type is None else {"Content-Type": content_type}
    payload = b'  {"CallSid": "HD_5", "From": "0712345678"}'
    response = await client.post("/voice", data=payload, headers=headers)
    assert (await response.json())["call_sid"] == "HD_5"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"CallSid": "HD_1",', "malformed JSON body"),
        (b"[1, 2]", "JSON body must be an object, got list"),
        (b'"HD_1"', "JSON body must be an object, got str"),
        (b"\xff\xfe{}", "malformed JSON body"),
    ],
)
async def test_parse_webhook_rejects_bad_json(aiohttp_client, payload, reason):
    """Malformed or non-object JSON is a 400 with a reason."""
    client = await _client(aiohttp_client)
    response = await client.post(
        "/voice", data=payload, headers={"Content-Type": "application/json"}
    )
    assert response.status == 400
    assert (await response.json())["error"].startswith(reason)


async def test_parse_webhook_rejects_an_empty_body(aiohttp_client):
    """An empty POST has no call id."""
    client = await _client(aiohttp_client)
    response = await client.post(
        "/voice", data=b"", headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status == 400
    assert "missing call id" in (await response.json())["error"]


async def test_parse_webhook_leaves_the_body_readable_for_signatures(aiohttp_client):
    """After parsing, request.read() still returns the exact bytes, for signature checks."""

    async def voice(request: web.Request) -> web.Response:
        start = await parse_webhook(request)
        return web.json_response({"sid": start.call_sid, "body": (await request.read()).decode()})

    app = web.Application()
    app.router.add_post("/voice", voice)
    client = await aiohttp_client(app)
    payload = json.dumps({"CallSid": "HD_6", "From": "0712345678"})
    response = await client.post(
        "/voice", data=payload, headers={"Content-Type": "application/json"}
    )
    assert await response.json() == {"sid": "HD_6", "body": payload}
