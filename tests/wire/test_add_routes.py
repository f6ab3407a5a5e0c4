"""Embedding: `add_routes` into a user's own aiohttp application, on custom paths, served end to end.

The fake Sautikit places a whole scripted call against the user's app over real loopback sockets, so
the custom voice, audio and status paths are each exercised the way the platform would use them.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient, AiohttpServer

from orchestrator.app import ORCHESTRATOR, add_routes
from orchestrator.brains.scripted import ScriptedBrain
from orchestrator.script import load_script
from orchestrator.settings import Routes, Settings
from orchestrator.simulator import FakeSautikit, SimulatorOptions
from orchestrator.telephony.xml import StreamSpec, parse_response
from tests.flows import SCRIPTS

SCRIPT = SCRIPTS / "returning_caller_by_phone.yaml"
CUSTOM = Routes(
    voice="/hooks/voice", audio="/hooks/audio", stream_status="/hooks/stream-status", health="/hooks/health"
)


async def _shop_home(request: web.Request) -> web.Response:
    return web.Response(text="Duka Express")


@pytest.mark.looptime
async def test_add_routes_custom_paths_serve_a_whole_call(
    aiohttp_server: AiohttpServer, unused_tcp_port: int
) -> None:
    """A call placed at the user's custom voice path streams on the custom audio path and resolves."""
    app = web.Application()
    app.router.add_get("/", _shop_home)
    orchestrator = add_routes(
        app,
        settings=Settings(public_url=f"http://127.0.0.1:{unused_tcp_port}", routes=CUSTOM),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    server = await aiohttp_server(app, port=unused_tcp_port)
    script = load_script(SCRIPT)

    platform = await FakeSautikit(
        str(server.make_url("")), options=SimulatorOptions(voice_path="/hooks/voice")
    ).call(script, call_sid="HD_embed01")

    session = app[ORCHESTRATOR].sessions["HD_embed01"]
    await asyncio.wait_for(session.finished.wait(), timeout=30)
    assert orchestrator is app[ORCHESTRATOR]
    assert session.transcript.outcome == "resolved"
    stream = next(v for v in parse_response(platform.xml_answers[0]) if isinstance(v, StreamSpec))
    assert urlsplit(stream.url).path == "/hooks/audio"
    assert urlsplit(stream.status_callback or "").path == "/hooks/stream-status"
    assert session.transcript.of_kind("status") == [
        "stream status stream-started",
        "stream status stream-stopped",
    ]
    assert "stream connected" in [line.split("] ", 1)[1] for line in platform.log]


async def test_add_routes_leaves_the_users_routes_alone_and_moves_ours(aiohttp_client: AiohttpClient) -> None:
    """The user's own route still answers, ours move to the custom paths, the defaults are not mounted."""
    app = web.Application()
    app.router.add_get("/", _shop_home)
    add_routes(
        app,
        settings=Settings(public_url="https://shop.example.com", routes=CUSTOM),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)

    home = await client.get("/")
    health = await client.get("/hooks/health")
    default_voice = await client.post("/voice", data=b"CallSid=HD_x&From=%2B254712345678")
    default_health = await client.get("/healthz")

    assert (home.status, await home.text()) == (200, "Duka Express")
    assert health.status == 200
    assert (await health.json())["status"] == "ok"
    assert (default_voice.status, default_health.status) == (404, 404)


async def test_add_routes_custom_voice_path_answers_stream_on_custom_audio_path(
    aiohttp_client: AiohttpClient,
) -> None:
    """The Stream url and statusCallback the custom voice path answers with point at the custom paths."""
    app = web.Application()
    add_routes(
        app,
        settings=Settings(public_url="https://shop.example.com/agent", routes=CUSTOM),
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )
    client = await aiohttp_client(app)

    response = await client.post(
        "/hooks/voice",
        data=b"CallSid=HD_embed02&From=%2B254712345678",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    stream = next(v for v in parse_response(await response.text()) if isinstance(v, StreamSpec))
    assert stream.url.startswith("wss://shop.example.com/agent/hooks/audio?call_sid=HD_embed02&token=")
    assert stream.status_callback == "https://shop.example.com/agent/hooks/stream-status?call_sid=HD_embed02"
