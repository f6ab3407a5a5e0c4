"""Phone numbers never reach the logs in full: the webhook, status callback and socket paths, over the wire.

The first test captures the raw events our code emits (no processors), which is what an application that
embeds the orchestrator with its own structlog configuration would write. The second runs the same traffic
through the processor `configure_logging()` installs, which is what `orchestrator serve` writes.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from urllib.parse import urlencode, urlsplit

import aiohttp
import pytest
import structlog
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from orchestrator.app import create_app
from orchestrator.brains.scripted import ScriptedBrain
from orchestrator.logging import mask_phone_numbers
from orchestrator.script import load_script
from orchestrator.settings import Settings
from orchestrator.telephony.stream import SUBPROTOCOL
from tests.flows import SCRIPTS

SCRIPT = SCRIPTS / "returning_caller_by_phone.yaml"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
# Every way the caller's number +254 712 345 678 could leak in full.
CALLER_FORMS = ("254712345678", "0712345678", "712345678")


def _texts(value: object) -> Iterator[str]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield str(key)
            yield from _texts(item)
    elif isinstance(value, list | tuple | set):
        for item in value:
            yield from _texts(item)
    else:
        yield str(value)


def _leaks(events: list[structlog.typing.EventDict]) -> list[str]:
    return [
        f"{event['event']}: {text}"
        for event in events
        for text in _texts(event)
        if any(form in text.replace(" ", "").replace("-", "") for form in CALLER_FORMS)
    ]


async def _drive_one_call(http: TestClient[web.Request, web.Application]) -> None:
    """A webhook, a status callback that repeats the caller number, and a short media stream."""
    response = await http.post(
        "/voice",
        data=urlencode({"CallSid": "HD_mask01", "From": "+254712345678", "To": "+254711000000"}),
        headers=FORM,
    )
    assert response.status == 200
    stream = ET.fromstring(await response.text()).find("Stream")  # noqa: S314
    assert stream is not None
    url = urlsplit(stream.get("url") or "")
    status = await http.post(
        "/stream-status",
        data=urlencode({"callSid": "HD_mask01", "event": "stream-started", "from": "0712345678"}),
        headers=FORM,
    )
    assert status.status == 204
    async with http.ws_connect(f"{url.path}?{url.query}", protocols=(SUBPROTOCOL,)) as ws:
        await ws.send_str(json.dumps({"callSid": "HD_mask01", "from": "+254712345678"}))
        assert (await ws.receive(timeout=5)).type is aiohttp.WSMsgType.BINARY


@pytest.mark.looptime
async def test_log_masking_raw_events_never_carry_a_full_caller_number(aiohttp_client: AiohttpClient) -> None:
    """No event our code emits carries the caller's full number, before any processor runs.

    Regression: app.py logged `call_started caller=<full number>` and the raw status fields, relying on
    the mask processor of `configure_logging()`, so an embedding app's own structlog setup logged them.
    """
    app = create_app(
        Settings(public_url="https://agent.example.com"),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)

    with structlog.testing.capture_logs() as events:
        await _drive_one_call(client)

    assert events
    assert _leaks(events) == []


@pytest.mark.looptime
async def test_log_masking_configured_pipeline_masks_every_caller_number(
    aiohttp_client: AiohttpClient,
) -> None:
    """Through the mask processor `configure_logging()` installs, no event keeps the caller's full number."""
    app = create_app(
        Settings(public_url="https://agent.example.com"),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)

    with structlog.testing.capture_logs(processors=[mask_phone_numbers]) as events:
        await _drive_one_call(client)

    started = [e for e in events if e["event"] == "call_started"]
    assert [e["caller"] for e in started] == ["+2547*****678"]
    assert _leaks(events) == []
