"""The media WebSocket over real loopback sockets: the handshake gate, the token, and a live call's audio.

Every test places a call through the voice webhook first, takes the `<Stream>` url the service answered with,
and opens (or fails to open) the socket the way mod_audio_fork does: subprotocol `audio.drachtio.org`, a JSON
metadata text frame, then binary S16LE PCM of whatever size the fork flushed.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from orchestrator.app import ORCHESTRATOR, create_app
from orchestrator.audio.synth import synthesize_speech
from orchestrator.brains.scripted import ScriptedBrain
from orchestrator.script import load_script
from orchestrator.settings import Settings
from orchestrator.telephony.signing import make_stream_token
from orchestrator.telephony.stream import SUBPROTOCOL
from tests.flows import SCRIPTS

SCRIPT = SCRIPTS / "returning_caller_by_phone.yaml"
PUBLIC_URL = "https://agent.example.com"
SECRET = "wire-test-stream-secret"  # noqa: S105 - test credential
CALLER = "+254712345678"
FRAME_BYTES = 640  # 20 ms of 16-bit mono at 16 kHz

Client = TestClient[web.Request, web.Application]


def _app(**settings: float) -> web.Application:
    """The service with the scripted brain, as every test here starts it."""
    return create_app(
        Settings(public_url=PUBLIC_URL, stream_secret=SECRET, **settings),  # type: ignore[arg-type]
        brain_factory=lambda start: ScriptedBrain(load_script(SCRIPT)),
    )


async def _place_call(client: Client, call_sid: str) -> tuple[str, str]:
    """POST the voice webhook; return the stream path (with query) and its token."""
    response = await client.post(
        "/voice",
        data=urlencode({"CallSid": call_sid, "From": CALLER, "To": "+254711000000"}),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status == 200
    stream = ET.fromstring(await response.text()).find("Stream")  # noqa: S314
    assert stream is not None
    url = urlsplit(stream.get("url") or "")
    return f"{url.path}?{url.query}", parse_qs(url.query)["token"][0]


async def _handshake_status(client: Client, path: str, **kwargs: object) -> int:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await client.ws_connect(path, **kwargs)  # type: ignore[arg-type]
    return refused.value.status


async def test_media_socket_without_subprotocol_is_400_and_not_upgraded(
    aiohttp_client: AiohttpClient,
) -> None:
    """A handshake offering no subprotocol is refused with HTTP 400 before any upgrade."""
    app = _app()
    client = await aiohttp_client(app)
    path, _ = await _place_call(client, "HD_noproto01")

    assert await _handshake_status(client, path) == 400
    assert not app[ORCHESTRATOR].sessions["HD_noproto01"].stream_attached


async def test_media_socket_with_another_subprotocol_is_400(aiohttp_client: AiohttpClient) -> None:
    """A handshake offering only some other subprotocol is refused with HTTP 400."""
    app = _app()
    client = await aiohttp_client(app)
    path, _ = await _place_call(client, "HD_otherproto01")

    assert await _handshake_status(client, path, protocols=("audio.example.org",)) == 400
    assert not app[ORCHESTRATOR].sessions["HD_otherproto01"].stream_attached


async def test_media_socket_plain_get_is_400(aiohttp_client: AiohttpClient) -> None:
    """A plain GET on the audio route, not a WebSocket handshake at all, is a 400."""
    app = _app()
    client = await aiohttp_client(app)
    path, _ = await _place_call(client, "HD_plainget01")

    response = await client.get(path)

    assert response.status == 400


async def test_media_socket_without_token_is_403(aiohttp_client: AiohttpClient) -> None:
    """A stream url stripped of its token is refused with 403."""
    app = _app()
    client = await aiohttp_client(app)
    await _place_call(client, "HD_notoken01")

    status = await _handshake_status(client, "/audio?call_sid=HD_notoken01", protocols=(SUBPROTOCOL,))

    assert status == 403


@pytest.mark.parametrize(
    "tamper",
    [
        lambda token: token[:-1] + ("0" if token[-1] != "0" else "1"),  # one hex digit of the MAC
        lambda token: str(int(token.split(".")[0]) + 3600) + "." + token.split(".")[1],  # a later expiry
        lambda token: "garbage",
        lambda token: "",
    ],
    ids=["mac", "expiry", "garbage", "empty"],
)
async def test_media_socket_with_tampered_token_is_403(
    aiohttp_client: AiohttpClient, tamper: Callable[[str], str]
) -> None:
    """A token changed in any way is refused with 403, and the call stays open for the real socket."""
    app = _app()
    client = await aiohttp_client(app)
    _, token = await _place_call(client, "HD_tamper01")
    bad = tamper(token)

    status = await _handshake_status(
        client, "/audio?" + urlencode({"call_sid": "HD_tamper01", "token": bad}), protocols=(SUBPROTOCOL,)
    )

    assert status == 403
    assert not app[ORCHESTRATOR].sessions["HD_tamper01"].stream_attached


async def test_media_socket_with_expired_token_is_403(aiohttp_client: AiohttpClient) -> None:
    """A correctly signed token past its expiry is refused with 403."""
    app = _app()
    client = await aiohttp_client(app)
    await _place_call(client, "HD_expired01")
    token = make_stream_token(SECRET.encode(), "HD_expired01", now=time.time() - 3600, ttl=300)

    status = await _handshake_status(
        client, "/audio?" + urlencode({"call_sid": "HD_expired01", "token": token}), protocols=(SUBPROTOCOL,)
    )

    assert status == 403


async def test_media_socket_with_token_for_another_call_is_403(aiohttp_client: AiohttpClient) -> None:
    """One call's token does not open another call's stream."""
    app = _app()
    client = await aiohttp_client(app)
    await _place_call(client, "HD_victim01")
    _, other_token = await _place_call(client, "HD_attacker01")

    status = await _handshake_status(
        client,
        "/audio?" + urlencode({"call_sid": "HD_victim01", "token": other_token}),
        protocols=(SUBPROTOCOL,),
    )

    assert status == 403
    assert not app[ORCHESTRATOR].sessions["HD_victim01"].stream_attached


async def test_media_socket_for_unknown_call_is_404(aiohttp_client: AiohttpClient) -> None:
    """A validly signed token for a call the service never saw is a 404."""
    app = _app()
    client = await aiohttp_client(app)
    token = make_stream_token(SECRET.encode(), "HD_ghost01", now=time.time())

    status = await _handshake_status(
        client, "/audio?" + urlencode({"call_sid": "HD_ghost01", "token": token}), protocols=(SUBPROTOCOL,)
    )

    assert status == 404


@pytest.mark.looptime
async def test_media_socket_second_socket_for_the_same_call_is_409(aiohttp_client: AiohttpClient) -> None:
    """While a call has its stream, another socket for it is refused with 409 and the first carries on."""
    app = _app()
    client = await aiohttp_client(app)
    path, _ = await _place_call(client, "HD_twice01")

    async with client.ws_connect(path, protocols=(SUBPROTOCOL,)) as first:
        await first.send_str(json.dumps({"callSid": "HD_twice01"}))
        greeting = await first.receive(timeout=5)  # the session is running once the agent speaks
        assert greeting.type is aiohttp.WSMsgType.BINARY

        status = await _handshake_status(client, path, protocols=(SUBPROTOCOL,))

        assert status == 409
        await first.send_bytes(bytes(FRAME_BYTES))
        assert (await first.receive(timeout=5)).type is aiohttp.WSMsgType.BINARY


@pytest.mark.looptime
async def test_media_socket_two_simultaneous_sockets_for_one_call_let_only_one_in(
    aiohttp_client: AiohttpClient,
) -> None:
    """Two handshakes for the same call racing each other: exactly one is accepted, the other gets 409."""
    app = _app()
    client = await aiohttp_client(app)
    path, _ = await _place_call(client, "HD_race01")

    results = await asyncio.gather(
        client.ws_connect(path, protocols=(SUBPROTOCOL,)),
        client.ws_connect(path, protocols=(SUBPROTOCOL,)),
        return_exceptions=True,
    )

    sockets = [r for r in results if isinstance(r, aiohttp.ClientWebSocketResponse)]
    refused = [r.status for r in results if isinstance(r, aiohttp.WSServerHandshakeError)]
    for ws in sockets:
        await ws.close()
    assert (len(sockets), refused) == (1, [409])


@pytest.mark.looptime
async def test_media_socket_selects_the_drachtio_subprotocol_and_streams_640_byte_frames(
    aiohttp_client: AiohttpClient,
) -> None:
    """The socket selects audio.drachtio.org and sends agent audio as binary messages of whole 640-byte
    (20 ms) frames: one or two at a time in steady playback, up to four at an utterance's start."""
    app = _app()
    client = await aiohttp_client(app)
    path, _ = await _place_call(client, "HD_frames01")
    loop = asyncio.get_running_loop()
    arrivals: list[tuple[float, int]] = []

    async with client.ws_connect(path, protocols=(SUBPROTOCOL,)) as ws:
        assert ws.protocol == SUBPROTOCOL
        await ws.send_str(json.dumps({"callSid": "HD_frames01", "sampleRate": 16000, "mixType": "mono"}))
        while sum(size for _, size in arrivals) < 60 * FRAME_BYTES:
            msg = await ws.receive(timeout=5)
            assert msg.type is aiohttp.WSMsgType.BINARY
            arrivals.append((loop.time(), len(msg.data)))

    assert all(size % FRAME_BYTES == 0 and size <= 4 * FRAME_BYTES for _, size in arrivals)
    # Paced to real time: after a small lead, 20 ms of audio per 20 ms, never a burst of the utterance.
    frames = sum(size for _, size in arrivals) // FRAME_BYTES
    elapsed = arrivals[-1][0] - arrivals[0][0]
    assert elapsed == pytest.approx((frames - 4) * 0.020, abs=0.045)


@pytest.mark.looptime
async def test_media_socket_garbage_metadata_and_odd_frame_sizes_do_not_break_the_call(
    aiohttp_client: AiohttpClient,
) -> None:
    """Garbage metadata, then caller speech in 641- and 1-byte frames: the agent still hears and answers."""
    app = _app()
    client = await aiohttp_client(app)
    path, _ = await _place_call(client, "HD_odd01")
    session = app[ORCHESTRATOR].sessions["HD_odd01"]
    speech = synthesize_speech("Hi, is my order out for delivery?", rate=16000, pitch_hz=190.0)
    sizes: list[int] = []

    async def collect(ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.BINARY:
                sizes.append(len(msg.data))

    async def send_paced(ws: aiohttp.ClientWebSocketResponse, pcm: bytes, chunk: int) -> None:
        for start in range(0, len(pcm), chunk):
            await ws.send_bytes(pcm[start : start + chunk])
            await asyncio.sleep(chunk / 32000)  # real time for 16-bit mono at 16 kHz

    async with client.ws_connect(path, protocols=(SUBPROTOCOL,)) as ws:
        reader = asyncio.get_running_loop().create_task(collect(ws))
        await ws.send_str("{this is not json")
        await ws.send_bytes(b"\x01")  # a lone odd byte, completed by the next frame
        await send_paced(ws, bytes(3 * 16000 * 2 - 1), 641)  # ~3 s of silence while the greeting plays
        await send_paced(ws, speech, 641)
        await send_paced(ws, bytes(8 * 16000 * 2), 640)  # wait in silence for the agent's answer
        await ws.close()
        await reader

    assert session.transcript.of_kind("caller") == ['"Hi, is my order out for delivery?"']
    assert "identifying -> looking_up (tool:lookup_order)" in session.transcript.of_kind("state")
    assert not any(text.startswith("metadata") for text in session.transcript.of_kind("stream"))
    assert sizes
    assert all(size % FRAME_BYTES == 0 for size in sizes)


@pytest.mark.looptime
async def test_media_socket_valid_metadata_is_recorded_in_the_transcript(
    aiohttp_client: AiohttpClient,
) -> None:
    """A metadata frame nested under `metadata` is read and its safe fields recorded on the call."""
    app = _app()
    client = await aiohttp_client(app)
    path, _ = await _place_call(client, "HD_meta01")
    session = app[ORCHESTRATOR].sessions["HD_meta01"]

    async with client.ws_connect(path, protocols=(SUBPROTOCOL,)) as ws:
        await ws.send_str(
            json.dumps({"metadata": {"sessionId": "HD_meta01", "from": CALLER, "sampleRate": "16000"}})
        )
        await ws.send_bytes(bytes(FRAME_BYTES))
        assert (await ws.receive(timeout=5)).type is aiohttp.WSMsgType.BINARY

    await asyncio.wait_for(session.finished.wait(), timeout=5)
    assert 'metadata {"call_sid": "HD_meta01", "channels": 1, "sample_rate": 16000}' in (
        session.transcript.of_kind("stream")
    )


@pytest.mark.looptime
async def test_media_socket_closed_by_the_platform_ends_the_call_as_abandoned(
    aiohttp_client: AiohttpClient,
) -> None:
    """When the platform closes the socket mid-greeting the call finishes as abandoned, not stuck."""
    app = _app()
    client = await aiohttp_client(app)
    path, _ = await _place_call(client, "HD_gone01")
    session = app[ORCHESTRATOR].sessions["HD_gone01"]

    async with client.ws_connect(path, protocols=(SUBPROTOCOL,)) as ws:
        await ws.send_str(json.dumps({"callSid": "HD_gone01"}))
        assert (await ws.receive(timeout=5)).type is aiohttp.WSMsgType.BINARY

    await asyncio.wait_for(session.finished.wait(), timeout=5)
    assert session.transcript.outcome == "abandoned"
    assert [text.startswith("caller hung up") for text in session.transcript.of_kind("hangup")] == [True]


@pytest.mark.looptime
async def test_media_socket_dropped_connection_leaves_no_unretrieved_handler_error(
    aiohttp_client: AiohttpClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A handler cancelled because the platform's connection dropped ends as a plain cancellation.

    Regression: CallSession.run once re-raised the cancellation from `except*`, wrapped in a
    BaseExceptionGroup, so aiohttp logged "Task exception was never retrieved" for every dropped stream.
    """
    app = _app()
    client = await aiohttp_client(app)
    path, _ = await _place_call(client, "HD_drop01")
    session = app[ORCHESTRATOR].sessions["HD_drop01"]

    async with client.ws_connect(path, protocols=(SUBPROTOCOL,)) as ws:
        await ws.send_str(json.dumps({"callSid": "HD_drop01"}))
        assert (await ws.receive(timeout=5)).type is aiohttp.WSMsgType.BINARY
    await asyncio.wait_for(session.finished.wait(), timeout=5)
    await asyncio.sleep(0.1)
    gc.collect()  # an unretrieved task exception is reported when the task is collected

    assert not [r.getMessage() for r in caplog.records if "never retrieved" in r.getMessage()]


@pytest.mark.looptime
async def test_media_socket_oversized_frame_closes_the_socket_and_ends_the_call(
    aiohttp_client: AiohttpClient,
) -> None:
    """A binary frame over the size limit closes the socket with 1009 and the call still finishes cleanly."""
    app = _app()
    client = await aiohttp_client(app)
    path, _ = await _place_call(client, "HD_huge01")
    session = app[ORCHESTRATOR].sessions["HD_huge01"]

    async with client.ws_connect(path, protocols=(SUBPROTOCOL,)) as ws:
        await ws.send_str(json.dumps({"callSid": "HD_huge01"}))
        await ws.send_bytes(bytes(2 << 20))
        while (msg := await ws.receive(timeout=5)).type is aiohttp.WSMsgType.BINARY:
            pass
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING)
        assert ws.close_code == aiohttp.WSCloseCode.MESSAGE_TOO_BIG

    await asyncio.wait_for(session.finished.wait(), timeout=5)
    assert session.transcript.outcome in ("abandoned", "failed")


@pytest.mark.looptime
async def test_media_socket_after_connect_timeout_is_404(aiohttp_client: AiohttpClient) -> None:
    """A call whose stream never connected within the timeout is forgotten, so a late socket gets 404."""
    app = _app(stream_connect_timeout_s=30)
    client = await aiohttp_client(app)
    path, _ = await _place_call(client, "HD_late01")

    await asyncio.sleep(31)

    assert await _handshake_status(client, path, protocols=(SUBPROTOCOL,)) == 404
    assert "HD_late01" not in app[ORCHESTRATOR].sessions
