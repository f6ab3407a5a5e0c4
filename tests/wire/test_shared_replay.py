"""Two workers behind one number share what they have seen on a real Redis.

Signatures, call ids and event ids. The tests talk to the Redis at ORCHESTRATOR_TEST_REDIS_URL
(default redis://127.0.0.1:6379/0; `.ci/run` starts a throwaway one when none answers there), each
under a key prefix of its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import pytest
import redis.asyncio as redis
from structlog.testing import capture_logs

from orchestrator.app import ORCHESTRATOR, create_app
from orchestrator.brains.scripted import ScriptedBrain
from orchestrator.errors import ConfigError
from orchestrator.script import load_script
from orchestrator.settings import Settings
from orchestrator.telephony.replay_redis import RedisReplayCache, open_redis_replay
from orchestrator.telephony.signing import sign_webhook
from tests.flows import SCRIPTS

REDIS_URL = os.environ.get("ORCHESTRATOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SECRET = "whsec_shared_replay_test"  # noqa: S105 - a test fixture, not a credential
SCRIPT = load_script(SCRIPTS / "returning_caller_by_phone.yaml")
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
async def client() -> AsyncIterator[redis.Redis]:
    connection = redis.Redis.from_url(REDIS_URL)
    yield connection
    await connection.aclose()


def _prefix() -> str:
    return f"orchestrator-test:{uuid.uuid4().hex}:"


async def test_redis_replay_cache_says_new_once_then_seen(client):
    """The first sighting of a key is new; the second, from any client, is not."""
    prefix = _prefix()
    first, second = RedisReplayCache(client, prefix=prefix), RedisReplayCache(client, prefix=prefix)
    until = time.time() + 60
    assert await first.first_sighting("sig:ab12", until=until) is True
    assert await second.first_sighting("sig:ab12", until=until) is False
    assert await second.first_sighting("sig:cd34", until=until) is True


async def test_redis_replay_cache_forgets_a_key_at_its_expiry(client):
    """A key remembered until a moment is new again once that moment has passed."""
    cache = RedisReplayCache(client, prefix=_prefix())
    assert await cache.first_sighting("call:HD_x", until=time.time() + 0.3) is True
    assert await cache.first_sighting("call:HD_x", until=time.time() + 0.3) is False
    await asyncio.sleep(0.5)
    assert await cache.first_sighting("call:HD_x", until=time.time() + 0.3) is True


async def test_redis_replay_cache_fails_open_and_says_so_when_redis_is_away():
    """Nothing listening: the key counts as new at once, and an error names the cache."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    connection = redis.Redis.from_url(f"redis://127.0.0.1:{port}/0")
    try:
        with capture_logs() as logs:
            assert await RedisReplayCache(connection).first_sighting(
                "sig:x", until=time.time() + 60
            )
    finally:
        await connection.aclose()
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["replay_cache_unavailable"]


async def test_open_redis_replay_refuses_a_silent_redis_and_hides_the_password():
    """A wrong URL stops start-up with a ConfigError; the password stays out of the message."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConfigError, match="does not answer") as error:
        async with open_redis_replay(f"redis://user:hunter2@127.0.0.1:{port}/0", timeout_s=2):
            pass
    assert "hunter2" not in str(error.value)


def _worker(settings: Settings):
    return create_app(settings, brain_factory=lambda start: ScriptedBrain(SCRIPT))


@pytest.fixture
async def two_workers(aiohttp_client):
    """Worker A and worker B: two apps, one Redis (keys of this test's own), one webhook secret."""
    settings = Settings(redis_url=REDIS_URL, redis_prefix=_prefix(), webhook_secret=SECRET)
    a, b = _worker(settings), _worker(settings)
    return await aiohttp_client(a), await aiohttp_client(b)


def _signed(body: bytes) -> dict[str, str]:
    return {
        "Content-Type": FORM,
        "X-Sautikit-Signature": sign_webhook(SECRET.encode(), body, now=time.time()),
    }


async def test_a_webhook_replayed_to_another_worker_is_refused(two_workers):
    """A signed webhook accepted by worker A and sent again to worker B is a replay: 403."""
    a, b = two_workers
    body = urlencode({"CallSid": "HD_shared01", "From": "+254712345678"}).encode()
    headers = _signed(body)
    assert (await a.post("/voice", data=body, headers=headers)).status == 200
    again = await b.post("/voice", data=body, headers=headers)
    assert again.status == 403
    assert b.app[ORCHESTRATOR].sessions == {}


async def test_a_call_answered_by_one_worker_is_never_started_again_by_another(two_workers):
    """Sautikit's retry of the first webhook (freshly signed) on worker B gets no second Stream."""
    a, b = two_workers
    body = urlencode({"CallSid": "HD_shared02", "From": "+254712345678"}).encode()
    first = await a.post("/voice", data=body, headers=_signed(body))
    assert "<Stream" in await first.text()
    await asyncio.sleep(1.1)  # a new second: a new signature for the same body
    retry = await b.post("/voice", data=body, headers=_signed(body))
    assert retry.status == 200
    assert (await retry.text()).endswith("<Response/>")
    assert b.app[ORCHESTRATOR].sessions == {}


async def test_an_event_delivered_to_both_workers_is_handled_once(two_workers):
    """The same event id through worker A and then worker B: B knows it is a duplicate."""
    a, b = two_workers
    event = {
        "kind": "call.completed",
        "event_id": f"evt_{uuid.uuid4().hex}",
        "data": {"call_sid": "HD_x"},
    }
    with capture_logs() as logs:
        body_a = _json(event)
        assert (await a.post("/events", data=body_a, headers=_signed_json(body_a))).status == 204
        await asyncio.sleep(1.1)  # Sautikit's redelivery is signed again
        body_b = _json(event)
        assert (await b.post("/events", data=body_b, headers=_signed_json(body_b))).status == 204
    assert [e["event"] for e in logs if e["event"] in ("event", "event_duplicate")] == [
        "event",
        "event_duplicate",
    ]


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


def _signed_json(body: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Sautikit-Signature": sign_webhook(SECRET.encode(), body, now=time.time()),
    }
