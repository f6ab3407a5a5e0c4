"""The health endpoint over a real loopback socket: a load balancer's view of the service."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import aiohttp
import httpx
import pytest
from pytest_aiohttp import AiohttpClient

from orchestrator.app import ORCHESTRATOR, create_app, drain_calls, serve_on_loopback
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


async def test_health_says_degraded_while_the_calls_database_is_locked(tmp_path: Path) -> None:
    """A real lock on the calls database: records are refused, /healthz says degraded (200), then ok again."""
    db = tmp_path / "calls.sqlite3"
    app = create_app(
        Settings(calls_db=str(db), calls_db_busy_timeout_s=0.05),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    async with serve_on_loopback(app) as url, httpx.AsyncClient(base_url=url) as client:
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            await client.post("/voice", content=urlencode({"CallSid": "HD_locked01"}), headers=FORM)
            async with asyncio.timeout(20):
                while (health := (await client.get("/healthz")).json())["status"] != "degraded":  # noqa: ASYNC110 - polling the service as a monitor does
                    await asyncio.sleep(0.1)
        finally:
            blocker.execute("COMMIT")
            blocker.close()
        async with asyncio.timeout(20):
            while (after := (await client.get("/healthz")).json())["status"] != "ok":  # noqa: ASYNC110 - as above
                await asyncio.sleep(0.1)

    assert health["record_failures"] >= 1
    assert health["records_pending"] >= 1
    assert after["records_pending"] == 0
    stored = sqlite3.connect(db).execute("SELECT call_sid, outcome FROM calls").fetchall()
    assert stored == [("HD_locked01", "live")] or stored == [("HD_locked01", "interrupted")]


async def test_health_draining_is_503_and_new_calls_are_refused(aiohttp_client: AiohttpClient) -> None:
    """Once draining, /healthz is 503 "draining" and a new call's webhook gets 503 to try elsewhere."""
    app = create_app(
        Settings(public_url="https://agent.example.com"),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)

    assert await drain_calls(app[ORCHESTRATOR], grace_s=1)
    health = await client.get("/healthz")
    webhook = await client.post(
        "/voice", data=urlencode({"CallSid": "HD_late01", "From": "+254712345678"}), headers=FORM
    )

    assert (health.status, (await health.json())["status"]) == (503, "draining")
    assert webhook.status == 503
    assert app[ORCHESTRATOR].sessions == {}
