"""Two workers on one real Redis carry each other's calls: a socket, a re-POST or an event may land on either.

Worker A answers the webhook; its Stream URL points at worker B (A's public URL is B's address), so the fake
Sautikit opens the media socket on B, while its re-POSTs and the test's events go to A. A killed worker is a
real `orchestrator serve` process sent SIGKILL. Every test has a Redis key prefix of its own
(ORCHESTRATOR_TEST_REDIS_URL, default redis://127.0.0.1:6379/0; `.ci/run` starts one when none answers).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

import aiohttp
import pytest
import redis.asyncio as redis
from structlog.testing import capture_logs

from bench.durability import LONG_CALL, fake_rest, place_calls, rows, serve, wait_live
from orchestrator.app import ORCHESTRATOR, create_app, serve_on_loopback
from orchestrator.brains.scripted import ScriptedBrain
from orchestrator.call.session import CallSession
from orchestrator.cluster import CallMessage, SharedCall
from orchestrator.cluster.redis_calls import RedisLiveCalls
from orchestrator.script import load_script
from orchestrator.settings import Settings
from orchestrator.simulator import FakeSautikit, SimulatorOptions
from orchestrator.telephony.call_id import CallId
from orchestrator.telephony.signing import sign_webhook
from orchestrator.telephony.webhook import parse_webhook_fields
from orchestrator.telephony.xml import DialVerb, HangupVerb, SayVerb, parse_response
from tests.flows import CARE_DESK, SCRIPTS
from tests.postgres import postgres_schema

REDIS_URL = os.environ.get("ORCHESTRATOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SECRET = "whsec_shared_calls_test"  # noqa: S105 - a test fixture, not a credential
FORM = "application/x-www-form-urlencoded"


def _prefix() -> str:
    return f"orchestrator-test:{uuid.uuid4().hex}:"


def _settings(prefix: str, db: Path, **more: object) -> Settings:
    return Settings(
        redis_url=REDIS_URL,
        redis_prefix=prefix,
        webhook_secret=SECRET,
        calls_db=str(db),
        worker_heartbeat_s=0.2,
        worker_ttl_s=1.0,
        fallback_voice="synthetic",
        **more,
    )


@pytest.fixture
async def pair(tmp_path):
    """Start worker B, then worker A whose Stream URLs point at B; both share Redis and the calls database.

    Served as `orchestrator serve` serves (no test-only handler cancellation: a closed socket does not
    cancel the call, so a Dial can still be waited for)."""
    async with contextlib.AsyncExitStack() as stack:

        async def start(script: str):
            prefix, db = _prefix(), tmp_path / "calls.sqlite3"
            loaded = load_script(SCRIPTS / script)
            b = create_app(_settings(prefix, db), brain_factory=lambda start: ScriptedBrain(loaded))
            url_b = await stack.enter_async_context(serve_on_loopback(b))
            a = create_app(
                _settings(prefix, db, public_url=url_b),
                brain_factory=lambda start: ScriptedBrain(loaded),
            )
            url_a = await stack.enter_async_context(serve_on_loopback(a))
            return a[ORCHESTRATOR], b[ORCHESTRATOR], url_a, loaded

        yield start


def _platform(url_a: str) -> FakeSautikit:
    return FakeSautikit(url_a, options=SimulatorOptions(webhook_secret=SECRET))


async def _session_on(worker, call_sid: str) -> CallSession:
    """The call's session once its socket is attached on `worker`."""
    for _ in range(200):
        session = worker.sessions.get(call_sid)
        if session is not None and session.stream_attached:
            return session
        await asyncio.sleep(0.05)
    pytest.fail(f"{call_sid} never streamed on this worker")


def _signed_post(fields: dict[str, str]) -> tuple[bytes, dict[str, str]]:
    body = urlencode(fields).encode()
    return body, {
        "Content-Type": FORM,
        "X-Sautikit-Signature": sign_webhook(SECRET.encode(), body, now=time.time()),
    }


async def test_a_call_answered_by_one_worker_is_carried_by_the_worker_holding_its_socket(pair):
    """Webhook on A, socket on B: B builds the call from what A shared and carries it to the end, one record."""
    a, b, url_a, script = await pair("returning_caller_by_phone.yaml")

    with capture_logs() as logs:
        call = await _platform(url_a).call(script, call_sid="HD_shared_a2b")

    assert call.ended_by == "agent"
    session = b.sessions["HD_shared_a2b"]
    assert "HD_shared_a2b" not in a.sessions  # A let its unconnected session go
    assert f"taken over from worker {a.live.worker_id}" in session.transcript.of_kind("call")
    assert session.transcript.outcome == "resolved"
    # The caller's orders were looked up once, by A's webhook, and B used that answer.
    assert any(line.startswith("phone -> ") for line in session.transcript.of_kind("lookup"))
    assert [e["event"] for e in logs].count("orders_lookup") == 1
    assert b.records is not None
    assert a.records is not None
    await b.records.flush(5)
    await a.records.flush(5)
    kept = [c for c in await b.records.store.recent(limit=10) if c.call_sid == "HD_shared_a2b"]
    assert [c.outcome for c in kept] == ["resolved"]


async def test_a_dial_offered_by_the_worker_holding_the_call_is_answered_by_the_other(pair):
    """The caller asks for a person on B; Sautikit's next request lands on A, which answers B's <Dial>."""
    _a, b, url_a, script = await pair("asks_for_human.yaml")

    call = await _platform(url_a).call(script, call_sid="HD_shared_dial")

    assert call.dialed == CARE_DESK
    assert any("<Dial" in xml for xml in call.xml_answers)
    session = b.sessions["HD_shared_dial"]
    await asyncio.wait_for(session.finished.wait(), timeout=10)
    assert session.escalation_result == "dialled"
    assert session.transcript.outcome == "escalated"
    assert any("answered to Sautikit" in line for line in session.transcript.of_kind("escalate"))


async def test_a_completed_repost_and_events_on_the_other_worker_reach_the_call_at_once(pair):
    """A signed Completed re-POST to A ends B's streaming call; an event and a status sent to A reach B's call."""
    _a, b, url_a, script = await pair("returning_caller_by_phone.yaml")
    placed = asyncio.get_running_loop().create_task(
        _platform(url_a).call(script, call_sid="HD_shared_done")
    )
    session = await _session_on(b, "HD_shared_done")

    async with aiohttp.ClientSession() as http:
        event = json.dumps(
            {
                "kind": "call.recording.ready",
                "event_id": f"evt_{uuid.uuid4().hex}",
                "data": {"call_sid": "HD_shared_done"},
            }
        ).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Sautikit-Signature": sign_webhook(SECRET.encode(), event, now=time.time()),
        }
        async with http.post(f"{url_a}/events", data=event, headers=headers) as answer:
            assert answer.status == 204
        body, headers = _signed_post(
            {"CallSid": "HD_shared_done", "From": script.caller, "callSessionState": "Completed"}
        )
        async with http.post(f"{url_a}/voice", data=body, headers=headers) as answer:
            assert (await answer.text()).endswith("<Response/>")

    call = await asyncio.wait_for(placed, timeout=30)
    await asyncio.wait_for(session.finished.wait(), timeout=10)
    assert call.ended_by in ("agent", "platform")  # the service closed the stream
    assert session.transcript.outcome == "abandoned"
    assert "call.recording.ready" in session.transcript.of_kind("event")
    assert (
        "caller hung up (the platform reported the call completed)"
        in session.transcript.of_kind("hangup")
    )


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
async def test_a_killed_worker_s_calls_are_marked_interrupted_by_the_survivor(
    aiohttp_client, tmp_path, store
):
    """Worker A (a real process) is SIGKILLed mid-call: B marks the call interrupted and apologises on re-POST.

    The two share a SQLite file (one host) or a PostgreSQL store (several hosts)."""
    async with contextlib.AsyncExitStack() as stack:
        calls_db = (
            await stack.enter_async_context(postgres_schema()) if store == "postgres" else None
        )
        await _killed_worker_marked_by_the_survivor(aiohttp_client, tmp_path, calls_db)


async def _killed_worker_marked_by_the_survivor(aiohttp_client, tmp_path, calls_db: str | None) -> None:
    prefix = _prefix()
    env = {
        "ORCHESTRATOR_REDIS_URL": REDIS_URL,
        "ORCHESTRATOR_REDIS_PREFIX": prefix,
        "ORCHESTRATOR_WORKER_HEARTBEAT_S": "0.2",
        "ORCHESTRATOR_WORKER_TTL_S": "1.0",
        "ORCHESTRATOR_WORKERS": "1",  # one worker process, no supervisor: the SIGKILL ends the calls' holder
    }
    async with (
        fake_rest() as (state, rest_url),
        serve(tmp_path, rest_url, script=LONG_CALL, extra_env=env, calls_db=calls_db) as a,
    ):
        survivor = create_app(
            Settings(
                redis_url=REDIS_URL,
                redis_prefix=prefix,
                calls_db=str(a.db),
                worker_heartbeat_s=0.2,
                worker_ttl_s=1.0,
            ),
            brain_factory=lambda start: ScriptedBrain(load_script(LONG_CALL)),
        )
        b = await aiohttp_client(survivor)
        calls = place_calls(a, state, LONG_CALL, 1, "killed")
        await wait_live(a, 1)
        a.process.send_signal(signal.SIGKILL)
        await a.process.wait()
        for _ in range(100):
            if [outcome for _, outcome, _ in await rows(a.db)] == ["interrupted"]:
                break
            await asyncio.sleep(0.1)
        assert [(sid, outcome) for sid, outcome, _ in await rows(a.db)] == [
            ("HD_killed0000", "interrupted")
        ]

        again = await b.post(
            "/voice", data={"CallSid": "HD_killed0000", "callSessionState": "Active"}
        )
        verbs = parse_response(await again.text())
        assert isinstance(verbs[0], SayVerb)
        assert "call back" in verbs[0].text
        assert isinstance(verbs[-1], HangupVerb)
        await asyncio.gather(*calls, return_exceptions=True)


@pytest.fixture
async def client():
    connection = redis.Redis.from_url(REDIS_URL)
    yield connection
    await connection.aclose()


def _shared(call_sid: str, worker: str) -> SharedCall:
    start = parse_webhook_fields({"CallSid": call_sid, "From": "+254712345678"})
    return SharedCall(
        start=start,
        token="1.ab",  # noqa: S106 - a test value, not a credential
        answered_by=worker,
        record_id="r1",
        started_at=time.time(),
    )


async def test_an_escalating_call_of_a_dead_worker_is_reported_orphaned_and_escalating(client):
    """The worker holding a call being handed to a person stops beating: the others see it orphaned, escalating."""
    prefix = _prefix()
    dying = RedisLiveCalls(client, prefix=prefix, heartbeat_s=0.1, worker_ttl_s=0.3)
    survivor = RedisLiveCalls(client, prefix=prefix, heartbeat_s=0.1, worker_ttl_s=0.3)
    orphaned: list[list[CallId]] = []

    async def on_orphaned(call_sids: list[CallId]) -> None:
        orphaned.append(call_sids)

    await dying.start(lambda message: None, on_orphaned)
    await survivor.start(lambda message: None, on_orphaned)
    sid = CallId("HD_orphan01")
    await dying.answered(_shared(sid, dying.worker_id))
    await dying.escalating(sid)
    message = CallMessage(call_sid=sid, kind="again", state="active")
    assert (await survivor.send(message)).outcome == "delivered"

    await dying.close()  # it still holds the call: its heartbeat just stops
    for _ in range(50):
        if orphaned:
            break
        await asyncio.sleep(0.1)
    await survivor.close()

    assert orphaned == [[sid]]
    delivery = await survivor.send(message)
    assert (delivery.outcome, delivery.escalating) == ("orphaned", True)


async def test_a_call_s_socket_and_dial_are_each_taken_once_across_workers(client):
    """Two workers race for one socket and one pending <Dial>: one wins each, the other is told no."""
    prefix = _prefix()
    first, second = RedisLiveCalls(client, prefix=prefix), RedisLiveCalls(client, prefix=prefix)
    sid = CallId("HD_once0001")
    await first.answered(_shared(sid, first.worker_id))
    await first.offer_dial(sid, DialVerb(number="+254700000100"), ttl_s=10)

    claims = await asyncio.gather(first.claim(sid), second.claim(sid))
    dials = await asyncio.gather(first.take_dial(sid), second.take_dial(sid))

    assert sorted(claims) == [False, True]
    assert sorted(d is not None for d in dials) == [False, True]
    await first.finished(sid)
    assert await second.find(sid) is None


async def test_an_unconnected_call_is_expired_only_if_no_other_worker_took_its_socket(
    client, tmp_path
):
    """The webhook's worker expires a call nobody streamed; one whose socket another worker holds it leaves be."""
    prefix = _prefix()
    app = create_app(
        _settings(prefix, tmp_path / "calls.sqlite3", stream_connect_timeout_s=0.5),
        brain_factory=lambda start: ScriptedBrain(load_script(LONG_CALL)),
    )
    async with serve_on_loopback(app) as url, aiohttp.ClientSession() as http:
        worker = app[ORCHESTRATOR]
        for sid in ("HD_nobody01", "HD_elsewhere"):
            body, headers = _signed_post({"CallSid": sid, "From": "+254712345678"})
            async with http.post(f"{url}/voice", data=body, headers=headers) as answer:
                assert "<Stream" in await answer.text()
        # Another worker took this call's socket, and its word that the call moved never arrived.
        await client.set(f"{prefix}live:socket:HD_elsewhere", "another-worker")
        await _until_gone(worker, "HD_nobody01", "HD_elsewhere")
        assert worker.records is not None
        await worker.records.flush(5)
        kept = {c.call_sid: c.outcome for c in await worker.records.store.recent(limit=10)}

        assert kept == {"HD_nobody01": "unconnected", "HD_elsewhere": "live"}
        assert await worker.live.find(CallId("HD_nobody01")) is None
        assert await worker.live.find(CallId("HD_elsewhere")) is not None


async def _until_gone(worker, *call_sids: str) -> None:
    for _ in range(100):
        if not any(sid in worker.sessions for sid in call_sids):
            return
        await asyncio.sleep(0.05)
    pytest.fail("the unconnected calls were never let go")
