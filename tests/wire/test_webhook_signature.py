"""Webhook signatures over a real loopback socket, when `Settings(webhook_secret=...)` is set.

Sautikit signs with `X-Sautikit-Signature: t=<unix>,v1=<hex>` (or, per some pages, a plain hex HMAC of the
body); an unsigned, mis-signed, stale or tampered request starts nothing and gets 403.
"""

from __future__ import annotations

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
async def test_webhook_signature_plain_hex_form_is_200(aiohttp_client: AiohttpClient, prefix: str) -> None:
    """The plain hex HMAC of the body that some Sautikit pages describe is accepted too."""
    app = create_app(
        Settings(public_url="https://agent.example.com", webhook_secret=WEBHOOK_SECRET),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)
    digest = hmac.new(WEBHOOK_SECRET.encode(), BODY, hashlib.sha256).hexdigest()

    response = await client.post(
        "/voice", data=BODY, headers={"Content-Type": FORM, "X-Sautikit-Signature": prefix + digest}
    )

    assert response.status == 200


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
    ],
    ids=["absent", "empty", "other-secret", "other-body", "stale", "future", "garbled", "not-hex"],
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
