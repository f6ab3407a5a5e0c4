"""Webhook signatures over a real loopback socket, when `Settings(webhook_secret=...)` is set.

Sautikit signs with `X-Sautikit-Signature: t=<unix>,v1=<hex>`; an unsigned, mis-signed, stale, tampered or
replayed request starts nothing and gets 403. The plain hex HMAC of the body that some pages describe is
refused unless `ORCHESTRATOR_WEBHOOK_PLAIN_SIGNATURES=1`, because a timestamped v1 is also a valid plain
signature of another body (`body.t`), which would let anyone replay a captured request forever.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from urllib.parse import urlencode

import pytest
from pytest_aiohttp import AiohttpClient

from orchestrator.app import ORCHESTRATOR, create_app
from orchestrator.brains.scripted import ScriptedBrain
from orchestrator.script import load_script
from orchestrator.settings import Settings
from orchestrator.telephony.signing import sign_webhook
from orchestrator.testing import run_scripted_call
from tests.flows import SCRIPTS

SCRIPT = SCRIPTS / "returning_caller_by_phone.yaml"
WEBHOOK_SECRET = "whsec_wire_test"  # noqa: S105 - test credential
FORM = "application/x-www-form-urlencoded"
BODY = urlencode({"CallSid": "HD_signed01", "From": "+254712345678"}).encode()


async def test_webhook_signature_good_timestamped_signature_is_200(aiohttp_client: AiohttpClient) -> None:
    """A body signed `t=,v1=` with the configured secret starts the call and gets the Stream."""
    app = create_app(
        Settings(public_url="https://agent.example.com", webhook_secret=WEBHOOK_SECRET),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)
    signature = sign_webhook(WEBHOOK_SECRET.encode(), BODY, now=time.time())

    response = await client.post(
        "/voice", data=BODY, headers={"Content-Type": FORM, "X-Sautikit-Signature": signature}
    )

    assert response.status == 200
    assert ET.fromstring(await response.text()).find("Stream") is not None  # noqa: S314
    assert "HD_signed01" in app[ORCHESTRATOR].sessions


@pytest.mark.parametrize("prefix", ["", "sha256="])
async def test_webhook_signature_plain_hex_form_is_403_by_default(
    aiohttp_client: AiohttpClient, prefix: str
) -> None:
    """The plain hex HMAC of the body is refused unless the operator allows it, and says how."""
    app = create_app(
        Settings(public_url="https://agent.example.com", webhook_secret=WEBHOOK_SECRET),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)
    digest = hmac.new(WEBHOOK_SECRET.encode(), BODY, hashlib.sha256).hexdigest()

    response = await client.post(
        "/voice", data=BODY, headers={"Content-Type": FORM, "X-Sautikit-Signature": prefix + digest}
    )

    assert response.status == 403
    assert "ORCHESTRATOR_WEBHOOK_PLAIN_SIGNATURES=1" in await response.text()
    assert app[ORCHESTRATOR].sessions == {}


async def test_webhook_signature_plain_hex_form_is_200_once_when_allowed(
    aiohttp_client: AiohttpClient,
) -> None:
    """Allowed by the operator, the plain form is accepted once; the same request again is a replay (403)."""
    app = create_app(
        Settings(
            public_url="https://agent.example.com",
            webhook_secret=WEBHOOK_SECRET,
            webhook_plain_signatures=True,
        ),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)
    digest = hmac.new(WEBHOOK_SECRET.encode(), BODY, hashlib.sha256).hexdigest()
    headers = {"Content-Type": FORM, "X-Sautikit-Signature": digest}

    first = await client.post("/voice", data=BODY, headers=headers)
    again = await client.post("/voice", data=BODY, headers=headers)

    assert (first.status, again.status) == (200, 403)
    assert "replayed" in await again.text()


async def test_webhook_signature_old_request_replayed_as_a_plain_signature_is_403(
    aiohttp_client: AiohttpClient,
) -> None:
    """Regression: a 28-hour-old signed request, resent as body + ".t" with its bare v1, started a new call.

    v1 = HMAC(secret, body + "." + t) is also a plain signature of the body `body.t`; with the call id
    last in that body, the replay named a call of its own and got a fresh stream token.
    """
    app = create_app(
        Settings(public_url="https://agent.example.com", webhook_secret=WEBHOOK_SECRET),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)
    captured_at = int(time.time()) - 28 * 3600
    body = urlencode({"From": "+254712345678", "CallSid": "HD_captured01"}).encode()
    v1 = sign_webhook(WEBHOOK_SECRET.encode(), body, now=captured_at).split("v1=")[1]
    # As form fields, "...&CallSid=HD_captured01.<t>" carries a call id of its own.
    replayed = body + b"." + str(captured_at).encode()

    response = await client.post(
        "/voice", data=replayed, headers={"Content-Type": FORM, "X-Sautikit-Signature": v1}
    )

    assert response.status == 403
    assert app[ORCHESTRATOR].sessions == {}


async def test_webhook_signature_same_signed_request_twice_is_a_replay(
    aiohttp_client: AiohttpClient,
) -> None:
    """A captured signed webhook sent again within its window is refused as a replay, not re-answered."""
    app = create_app(
        Settings(public_url="https://agent.example.com", webhook_secret=WEBHOOK_SECRET),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)
    headers = {
        "Content-Type": FORM,
        "X-Sautikit-Signature": sign_webhook(WEBHOOK_SECRET.encode(), BODY, now=time.time()),
    }

    first = await client.post("/voice", data=BODY, headers=headers)
    again = await client.post("/voice", data=BODY, headers=headers)

    assert (first.status, again.status) == (200, 403)
    assert "replayed webhook signature" in await again.text()


async def test_webhook_signature_first_webhook_for_a_forgotten_call_is_never_a_new_call(
    aiohttp_client: AiohttpClient,
) -> None:
    """Once an unconnected call is forgotten, a freshly signed first webhook for it gets no new Stream."""
    app = create_app(
        Settings(
            public_url="https://agent.example.com",
            webhook_secret=WEBHOOK_SECRET,
            stream_connect_timeout_s=0.05,
        ),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)

    def signed() -> dict[str, str]:
        signature = sign_webhook(WEBHOOK_SECRET.encode(), BODY, now=time.time())
        return {"Content-Type": FORM, "X-Sautikit-Signature": signature}

    first = await client.post("/voice", data=BODY, headers=signed())
    assert ET.fromstring(await first.text()).find("Stream") is not None  # noqa: S314
    await asyncio.sleep(1.1)  # never connected: forgotten; and a new second, so a new signature
    assert app[ORCHESTRATOR].sessions == {}
    again = await client.post("/voice", data=BODY, headers=signed())

    assert again.status == 200
    assert ET.fromstring(await again.text()).find("Stream") is None  # noqa: S314
    assert app[ORCHESTRATOR].sessions == {}


@pytest.mark.parametrize(
    ("make_header", "reason"),
    [
        (lambda: None, "missing"),
        (lambda: "", "missing"),
        (lambda: sign_webhook(b"whsec_someone_else", BODY, now=time.time()), "mismatch"),
        (lambda: sign_webhook(WEBHOOK_SECRET.encode(), BODY + b"&x=1", now=time.time()), "mismatch"),
        (lambda: sign_webhook(WEBHOOK_SECRET.encode(), BODY, now=time.time() - 3600), "stale"),
        (lambda: sign_webhook(WEBHOOK_SECRET.encode(), BODY, now=time.time() + 3600), "future"),
        (lambda: "t=abc,v1=zz", "malformed"),
        (lambda: "not-hex-at-all", "malformed"),
        (lambda: sign_webhook(WEBHOOK_SECRET.encode(), BODY, now=time.time() - 28 * 3600), "stale"),
    ],
    ids=[
        "absent", "empty", "other-secret", "other-body", "stale", "future", "garbled", "not-hex",
        "28-hours-old",
    ],
)
async def test_webhook_signature_missing_or_bad_is_403(
    aiohttp_client: AiohttpClient, make_header: Callable[[], str | None], reason: str
) -> None:
    """A missing, wrong, stale or malformed signature is refused with 403, says why, and starts no call."""
    app = create_app(
        Settings(public_url="https://agent.example.com", webhook_secret=WEBHOOK_SECRET),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)
    header = make_header()
    headers = {"Content-Type": FORM}
    if header is not None:
        headers["X-Sautikit-Signature"] = header

    response = await client.post("/voice", data=BODY, headers=headers)

    assert response.status == 403
    assert reason in await response.text()
    assert app[ORCHESTRATOR].sessions == {}


async def test_webhook_signature_is_checked_on_stream_status_too(aiohttp_client: AiohttpClient) -> None:
    """With a secret set, an unsigned status callback is 403 and a signed one is 204."""
    app = create_app(
        Settings(public_url="https://agent.example.com", webhook_secret=WEBHOOK_SECRET),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)
    status = b"callSid=HD_signed01&event=stream-started"

    unsigned = await client.post("/stream-status", data=status, headers={"Content-Type": FORM})
    signed = await client.post(
        "/stream-status",
        data=status,
        headers={
            "Content-Type": FORM,
            "X-Sautikit-Signature": sign_webhook(WEBHOOK_SECRET.encode(), status, now=time.time()),
        },
    )

    assert (unsigned.status, signed.status) == (403, 204)


async def test_webhook_signature_not_required_without_a_secret(aiohttp_client: AiohttpClient) -> None:
    """Without a configured secret an unsigned webhook is served, and a stray signature header is ignored."""
    app = create_app(
        Settings(public_url="https://agent.example.com"),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)

    response = await client.post(
        "/voice", data=BODY, headers={"Content-Type": FORM, "X-Sautikit-Signature": "t=1,v1=00"}
    )

    assert response.status == 200


@pytest.mark.looptime
async def test_webhook_signature_whole_signed_call_resolves() -> None:
    """A whole call placed by the simulator with the shared secret is served and resolved."""
    record = await run_scripted_call(SCRIPT, settings=Settings(webhook_secret=WEBHOOK_SECRET))

    assert record.transcript.outcome == "resolved"
    assert not any("HTTP 403" in line for line in record.platform.log)


@pytest.mark.looptime
async def test_webhook_signature_whole_signed_call_records_stream_status() -> None:
    """With a secret set, the simulated platform's stream status callbacks still reach the call's transcript.

    Regression: the simulator sent status callbacks unsigned, and the app (rightly) refused them with 403.
    """
    record = await run_scripted_call(SCRIPT, settings=Settings(webhook_secret=WEBHOOK_SECRET))

    assert record.transcript.of_kind("status") == [
        "stream status stream-started",
        "stream status stream-stopped",
    ]
