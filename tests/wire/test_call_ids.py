"""Hostile call ids against the app as `orchestrator serve` runs it, over real HTTP on loopback.

Regression: the transcript file name was built from the call id and any string was accepted, so
`CallSid=/tmp/owned` or `../x` wrote files outside ORCHESTRATOR_TRANSCRIPTS_DIR; a NUL raised an unhandled
error; a 10 kB id made a Stream URL our own media route refused. Now an id is letters, digits, `_` and `-`
(at most 64) at every edge, or a 400 that says why, and nothing is written anywhere.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from orchestrator.app import create_app, serve_on_loopback
from orchestrator.brains.scripted import ScriptedBrain
from orchestrator.script import load_script
from orchestrator.settings import Settings
from orchestrator.telephony.stream import SUBPROTOCOL
from tests.flows import SCRIPTS

SCRIPT = load_script(SCRIPTS / "returning_caller_by_phone.yaml")
CALLER = "+254712345678"

HOSTILE_IDS = {
    "dot-dot": "../x",
    "dot-dot-deep": "../../../../tmp/owned",
    "absolute": "/tmp/owned",  # noqa: S108 - a hostile id, no file is made
    "dot-dot-alone": "..",
    "nul": "HD_1\x00evil",
    "ten-kilobytes": "H" * 10_240,
    "unicode-letters": "HD_звонок",
    "unicode-slash": "HD_a\u2215b",  # DIVISION SLASH looks like '/'
    "backslash": "..\\x",
    "space": "HD 1",
    "newline": "HD_1\nSet-Cookie: x",
    "percent": "HD_%2e%2e",
}


@pytest.fixture
async def service(tmp_path: Path):
    """The app on a loopback port with a transcripts folder inside tmp_path, and an HTTP client."""
    transcripts = tmp_path / "inside" / "transcripts"
    settings = Settings(public_url="https://agent.example.com", transcripts_dir=transcripts)
    app = create_app(settings, brain_factory=lambda start: ScriptedBrain(SCRIPT))
    async with serve_on_loopback(app) as url, httpx.AsyncClient(base_url=url) as client:
        yield client


def _files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("call_id", HOSTILE_IDS.values(), ids=HOSTILE_IDS.keys())
@pytest.mark.parametrize("encoding", ["form", "json"])
async def test_call_ids_hostile_id_is_400_and_writes_nothing(service, tmp_path, call_id, encoding):
    """Every hostile id gets a 400 with a reason, and no file appears anywhere under tmp_path."""
    fields = {"CallSid": call_id, "From": CALLER}
    if encoding == "form":
        body, content_type = urlencode(fields).encode(), "application/x-www-form-urlencoded"
    else:
        body, content_type = json.dumps(fields).encode(), "application/json"

    response = await service.post("/voice", content=body, headers={"Content-Type": content_type})

    assert response.status_code == 400
    assert "call id" in response.text
    assert _files_under(tmp_path) == []


@pytest.mark.parametrize("call_id", HOSTILE_IDS.values(), ids=HOSTILE_IDS.keys())
async def test_call_ids_hostile_id_on_the_media_route_is_400_before_any_upgrade(service, call_id):
    """The media socket's `call_sid` goes through the same check: 400, no WebSocket, nothing else.

    (A 10 kB id makes the request line itself too long: aiohttp's parser answers that 400 first.)
    """
    response = await service.get(
        "/audio",
        params={"call_sid": call_id, "token": "1.00"},
        headers={
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Protocol": SUBPROTOCOL,
        },
    )

    assert response.status_code == 400
    assert "call id" in response.text or len(call_id) > 8000


@pytest.mark.parametrize(
    "call_id", [HOSTILE_IDS["dot-dot"], HOSTILE_IDS["absolute"], HOSTILE_IDS["nul"]], ids=["dot-dot", "abs", "nul"]
)
async def test_call_ids_hostile_id_in_a_status_callback_touches_no_call(service, call_id):
    """A status callback naming an odd id is still answered 204 (fire and forget) and attaches to nothing."""
    response = await service.post(
        "/stream-status",
        content=urlencode({"callSid": call_id, "event": "stream-started"}).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 204


async def test_call_ids_longest_accepted_id_makes_a_stream_url_the_media_route_takes(service):
    """The longest id accepted (64 characters) yields a Stream URL short enough for our own media route."""
    call_id = "HD_" + "a" * 61
    response = await service.post(
        "/voice",
        content=urlencode({"CallSid": call_id, "From": CALLER}).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 200
    assert f"call_sid={call_id}" in response.text


async def test_call_ids_a_reused_id_gets_its_own_record(tmp_path):
    """Regression: a call id the platform reuses (here across a restart) overwrote the older call's record."""
    db = tmp_path / "calls.sqlite3"
    for _ in range(2):  # the same service started twice on one database
        app = create_app(
            Settings(public_url="https://agent.example.com", calls_db=str(db)),
            brain_factory=lambda start: ScriptedBrain(SCRIPT),
        )
        async with serve_on_loopback(app) as url, httpx.AsyncClient(base_url=url) as client:
            response = await client.post(
                "/voice",
                content=urlencode({"CallSid": "HD_reused01", "From": CALLER}).encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert response.status_code == 200

    connection = sqlite3.connect(db)
    try:
        kept = connection.execute(
            "SELECT call_sid, COUNT(DISTINCT record_id) FROM calls GROUP BY call_sid"
        ).fetchall()
    finally:
        connection.close()
    assert kept == [("HD_reused01", 2)]
