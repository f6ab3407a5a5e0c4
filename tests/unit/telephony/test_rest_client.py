"""SautikitClient against the local fake of Sautikit's REST API, over 127.0.0.1.

Every endpoint, both forms where Sautikit's pages disagree, the error envelopes, pagination,
idempotency replay, and which requests are retried. Odd answers the fake never gives go through
`httpx.MockTransport`.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from aiohttp import web

from orchestrator.errors import ConfigError
from orchestrator.simulator.rest_api import FakeSautikitState, sautikit_rest_app
from orchestrator.telephony.rest import (
    AuthError,
    Conflict,
    NotFound,
    PaymentRequired,
    RateLimited,
    RecordingStatus,
    SautikitClient,
    SautikitConfig,
    SautikitError,
    SautikitUnavailable,
    ServerError,
    error_for_status,
)

KEY = "sk_test_sautikit"
VOICE = "https://agent.example.com/voice"
CALLER = "+254712345678"
RECORDING = "https://media.sautikit.test/rec/1.wav"


async def serve_fake(aiohttp_server, state: FakeSautikitState, **config) -> SautikitConfig:
    """Start the fake on loopback and return a client config pointing at it."""
    server = await aiohttp_server(sautikit_rest_app(state))
    base = str(server.make_url("")).rstrip("/")
    return SautikitConfig(api_key=config.pop("api_key", KEY), base_url=base, **config)


def paths(state: FakeSautikitState) -> list[str]:
    return [f"{r.method} {r.path}" for r in state.requests]


async def claimed(client: SautikitClient) -> str:
    """Claim the first available number and return its id."""
    offer = (await client.available_numbers())[0]
    return (await client.claim_number(offer.id)).id


# --- configuration ------------------------------------------------------------------------------


def test_config_from_env_reads_key_url_and_styles():
    """The key, base URL and the two disagreement settings come from SAUTIKIT_* variables."""
    config = SautikitConfig.from_env(
        {
            "SAUTIKIT_API_KEY": "sk_live_1",
            "SAUTIKIT_BASE_URL": "https://sandbox.sautikit.com/",
            "SAUTIKIT_CLAIM_STYLE": "inventory",
            "SAUTIKIT_ROUTING_STYLE": "put",
        }
    )
    assert (config.api_key, config.base_url) == ("sk_live_1", "https://sandbox.sautikit.com")
    assert (config.claim_style, config.routing_style) == ("inventory", "put")


def test_config_from_env_defaults_to_the_seed_forms():
    """Without settings, the claim and routing calls use the seed page's forms."""
    config = SautikitConfig.from_env({"SAUTIKIT_API_KEY": "k"})
    assert (config.base_url, config.claim_style, config.routing_style) == (
        "https://api.sautikit.com", "seed", "patch"
    )


def test_config_from_env_without_key_names_the_variable():
    """A missing key is a ConfigError that tells the operator which variable to set."""
    with pytest.raises(ConfigError, match="SAUTIKIT_API_KEY"):
        SautikitConfig.from_env({})


def test_config_rejects_unknown_style():
    """A misspelt style is caught at start-up, not on the first claim."""
    with pytest.raises(ConfigError, match="SAUTIKIT_ROUTING_STYLE"):
        SautikitConfig.from_env({"SAUTIKIT_API_KEY": "k", "SAUTIKIT_ROUTING_STYLE": "post"})


# --- numbers ------------------------------------------------------------------------------------


async def test_available_numbers_lists_the_countrys_inventory(aiohttp_server):
    """Kenyan inventory is listed with prices; another country has none."""
    state = FakeSautikitState()
    async with SautikitClient(await serve_fake(aiohttp_server, state)) as sautikit:
        kenya = await sautikit.available_numbers()
        elsewhere = await sautikit.available_numbers("US")
    assert [n.e164 for n in kenya] == ["+254700000100", "+254700000101", "+254202000020"]
    assert (kenya[0].monthly_price_minor, kenya[0].currency) == (50_000, "KES")
    assert elsewhere == []


async def test_claim_number_seed_style_posts_to_numbers(aiohttp_server):
    """By default a claim is POST /v1/numbers with the inventory id, and the wallet pays for it."""
    state = FakeSautikitState(wallet_minor=60_000)
    async with SautikitClient(await serve_fake(aiohttp_server, state)) as sautikit:
        number = await sautikit.claim_number("inv_ke_0101")
    assert number.e164 == "+254700000101"
    assert paths(state)[-1] == "POST /v1/numbers"
    assert state.wallet_minor == 10_000
    assert "inv_ke_0101" not in state.inventory


async def test_claim_number_inventory_style_posts_to_claim_path(aiohttp_server):
    """With claim_style="inventory" the guide's POST /v1/numbers/{inventory_id}/claim is used."""
    state = FakeSautikitState()
    config = await serve_fake(aiohttp_server, state, claim_style="inventory")
    async with SautikitClient(config) as sautikit:
        number = await sautikit.claim_number("inv_ke_2020")
    assert number.e164 == "+254202000020"
    assert paths(state) == ["POST /v1/numbers/inv_ke_2020/claim"]


async def test_claim_number_with_empty_wallet_is_payment_required(aiohttp_server):
    """An empty wallet answers 402 wallet.insufficient_funds, raised with its request id."""
    state = FakeSautikitState(wallet_minor=0)
    async with SautikitClient(await serve_fake(aiohttp_server, state)) as sautikit:
        with pytest.raises(PaymentRequired) as failure:
            await sautikit.claim_number("inv_ke_0100")
    assert (failure.value.status, failure.value.code) == (402, "wallet.insufficient_funds")
    assert failure.value.request_id is not None
    assert failure.value.request_id.startswith("req_")


async def test_claim_number_unknown_inventory_is_not_found(aiohttp_server):
    """Claiming a number that is not on offer raises NotFound."""
    state = FakeSautikitState()
    async with SautikitClient(await serve_fake(aiohttp_server, state)) as sautikit:
        with pytest.raises(NotFound, match=r"numbers\.not_found"):
            await sautikit.claim_number("inv_gone")


async def test_claim_number_is_not_retried_without_idempotency_key(aiohttp_server):
    """A failed claim may have happened, so without an Idempotency-Key it is tried once only."""
    state = FakeSautikitState()
    state.fail_next(1, status=503)
    config = await serve_fake(aiohttp_server, state, backoff_s=0)
    async with SautikitClient(config) as sautikit:
        with pytest.raises(ServerError):
            await sautikit.claim_number("inv_ke_0100")
    assert paths(state) == ["POST /v1/numbers"]


async def test_claim_number_with_idempotency_key_is_retried(aiohttp_server):
    """A claim carrying an Idempotency-Key is retried after a 503, with the same key."""
    state = FakeSautikitState()
    state.fail_next(1, status=503)
    config = await serve_fake(aiohttp_server, state, backoff_s=0)
    async with SautikitClient(config) as sautikit:
        number = await sautikit.claim_number("inv_ke_0100", idempotency_key="claim-1")
    assert number.e164 == "+254700000100"
    assert [r.idempotency_key for r in state.requests] == ["claim-1", "claim-1"]


async def test_list_numbers_shows_what_the_workspace_owns(aiohttp_server):
    """Claimed numbers, and only those, are listed."""
    state = FakeSautikitState()
    async with SautikitClient(await serve_fake(aiohttp_server, state)) as sautikit:
        assert await sautikit.list_numbers() == []
        number_id = await claimed(sautikit)
        numbers = await sautikit.list_numbers()
    assert [(n.id, n.e164, n.status) for n in numbers] == [(number_id, "+254700000100", "active")]


async def test_set_routing_patch_style_sets_routing_url(aiohttp_server):
    """By default routing is PATCH /v1/numbers/{id} with routing_url, the seed's form."""
    state = FakeSautikitState()
    async with SautikitClient(await serve_fake(aiohttp_server, state)) as sautikit:
        number_id = await claimed(sautikit)
        number = await sautikit.set_routing(number_id, VOICE)
    assert number.routing_url == VOICE
    assert state.numbers[number_id].routing_url == VOICE
    assert paths(state)[-1] == f"PATCH /v1/numbers/{number_id}"


async def test_set_routing_put_style_sends_callback_and_events_urls(aiohttp_server):
    """With routing_style="put" the integrator's PUT .../routing carries both webhook URLs."""
    state = FakeSautikitState()
    config = await serve_fake(aiohttp_server, state, routing_style="put")
    async with SautikitClient(config) as sautikit:
        number_id = await claimed(sautikit)
        number = await sautikit.set_routing(number_id, VOICE, "https://agent.example.com/events")
    assert (number.routing_url, number.events_url) == (VOICE, "https://agent.example.com/events")
    assert paths(state)[-1] == f"PUT /v1/numbers/{number_id}/routing"


async def test_set_routing_unknown_number_is_not_found(aiohttp_server):
    """Routing a number the workspace does not own raises NotFound."""
    state = FakeSautikitState()
    async with SautikitClient(await serve_fake(aiohttp_server, state)) as sautikit:
        with pytest.raises(NotFound):
            await sautikit.set_routing("num_nope", VOICE)


async def test_set_routing_is_not_retried(aiohttp_server):
    """Routing changes are not retried on 503: only GETs, hangups and keyed POSTs are."""
    state = FakeSautikitState()
    config = await serve_fake(aiohttp_server, state, backoff_s=0)
    async with SautikitClient(config) as sautikit:
        number_id = await claimed(sautikit)
        state.fail_next(1)
        with pytest.raises(ServerError):
            await sautikit.set_routing(number_id, VOICE)
    assert paths(state)[-1] == f"PATCH /v1/numbers/{number_id}"
    assert len(state.requests) == 3


async def test_set_routing_empty_answer_reads_the_number_back():
    """A routing change answered by a bare 204 is read back from the number list."""

    def platform(request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH":
            return httpx.Response(204)
        return httpx.Response(
            200, json={"data": [{"id": "num_1", "e164": "+254700000100", "routing_url": VOICE}]}
        )

    config = SautikitConfig(api_key=KEY, base_url="https://api.sautikit.test")
    async with SautikitClient(config, transport=httpx.MockTransport(platform)) as sautikit:
        number = await sautikit.set_routing("num_1", VOICE)
    assert number.routing_url == VOICE


async def test_release_number_puts_it_back_in_the_inventory(aiohttp_server):
    """A released number leaves the workspace and is on offer again."""
    state = FakeSautikitState()
    async with SautikitClient(await serve_fake(aiohttp_server, state)) as sautikit:
        number_id = await claimed(sautikit)
        await sautikit.release_number(number_id)
        owned = await sautikit.list_numbers()
        offered = [n.e164 for n in await sautikit.available_numbers()]
        with pytest.raises(NotFound):
            await sautikit.release_number(number_id)
    assert owned == []
    assert "+254700000100" in offered


# --- calls --------------------------------------------------------------------------------------


async def test_get_call_reads_the_record_by_uuid_or_session_id(aiohttp_server):
    """A call's record is found by UUID and by HD_ session id, with times, cost and events."""
    state = FakeSautikitState()
    start = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
    call = state.add_call(
        session_id="HD_8f2a91c0",
        started_at=start,
        answered_at=start + timedelta(seconds=4),
        ended_at=start + timedelta(seconds=94),
        cost_minor=350,
        events=[{"kind": "call.answered", "at": "2026-03-02T09:30:04Z"}],
    )
    async with SautikitClient(await serve_fake(aiohttp_server, state)) as sautikit:
        by_uuid = await sautikit.get_call(call.id)
        by_session = await sautikit.get_call("HD_8f2a91c0")
    assert by_uuid == by_session
    assert (by_uuid.status, by_uuid.duration_seconds, by_uuid.cost_minor) == ("completed", 90, 350)
    assert by_uuid.remote_e164 == CALLER
    assert by_uuid.ended
    answered = start + timedelta(seconds=4)
    assert [(e.kind, e.at) for e in by_uuid.events] == [("call.answered", answered)]


async def test_get_call_keeps_an_unknown_status(aiohttp_server):
    """A status this code has never seen is kept as the platform's string."""
    state = FakeSautikitState()
    call = state.add_call(status="transferring")
    async with SautikitClient(await serve_fake(aiohttp_server, state)) as sautikit:
        record = await sautikit.get_call(call.id)
    assert (record.status, record.ended) == ("transferring", False)


async def test_get_call_unknown_id_raises_not_found_with_code_and_request_id(aiohttp_server):
    """404 calls.not_found becomes NotFound carrying the envelope's code and request_id."""
    state = FakeSautikitState()
    async with SautikitClient(await serve_fake(aiohttp_server, state)) as sautikit:
        with pytest.raises(NotFound) as failure:
            await sautikit.get_call("HD_missing")
    error = failure.value
    assert (error.status, error.code) == (404, "calls.not_found")
    expected = f"HTTP 404 calls.not_found: no call HD_missing (request_id {error.request_id})"
    assert str(error) == expected


async def test_list_calls_pages_newest_first_with_a_cursor(aiohttp_server):
    """Five calls in pages of two: three pages, newest first, the last without next_cursor."""
    state = FakeSautikitState()
    start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    ids = [state.add_call(started_at=start + timedelta(minutes=i)).id for i in range(5)]
    async with SautikitClient(await serve_fake(aiohttp_server, state)) as sautikit:
        first = await sautikit.list_calls(limit=2)
        second = await sautikit.list_calls(limit=2, cursor=first.next_cursor)
        third = await sautikit.list_calls(limit=2, cursor=second.next_cursor)
    assert [c.id for c in (*first.data, *second.data, *third.data)] == ids[::-1]
    assert first.next_cursor
    assert second.next_cursor
    assert third.next_cursor is None


async def test_iter_calls_follows_every_page(aiohttp_server):
    """iter_calls yields every record across pages, each once."""
    state = FakeSautikitState()
    ids = {state.add_call().id for _ in range(7)}
    async with SautikitClient(await serve_fake(aiohttp_server, state)) as sautikit:
        seen = [call.id async for call in sautikit.iter_calls(limit=3)]
    assert sorted(seen) == sorted(ids)
    assert paths(state).count("GET /v1/calls") == 3


async def test_list_calls_with_a_bad_cursor_raises_the_platforms_code(aiohttp_server):
    """An unknown cursor is a 400 raised as a plain SautikitError with the platform's code."""
    state = FakeSautikitState()
    async with SautikitClient(await serve_fake(aiohttp_server, state)) as sautikit:
        with pytest.raises(SautikitError) as failure:
            await sautikit.list_calls(cursor="bm9wZQ")
    assert (failure.value.status, failure.value.code) == (400, "pagination.invalid_cursor")


async def test_hangup_ends_the_call_and_is_recorded(aiohttp_server):
    """A hangup completes a live call; a second hangup is harmless; the fake lists both."""
    state = FakeSautikitState()
    call = state.add_call(status="answered", answered_at=datetime.now(UTC))
    async with SautikitClient(await serve_fake(aiohttp_server, state)) as sautikit:
        await sautikit.hangup(call.session_id)
        await sautikit.hangup(call.session_id)
        record = await sautikit.get_call(call.id)
    assert record.status == "completed"
    assert state.hangups == [call.id, call.id]


async def test_hangup_is_retried_on_server_errors(aiohttp_server):
    """Hangup is documented idempotent, so two 503s are retried through to success."""
    state = FakeSautikitState()
    call = state.add_call(status="answered")
    state.fail_next(2, status=503)
    config = await serve_fake(aiohttp_server, state, backoff_s=0)
    async with SautikitClient(config) as sautikit:
        await sautikit.hangup(call.id)
    assert len(state.requests) == 3
    assert state.hangups == [call.id]


async def test_hangup_of_unknown_call_raises_not_found(aiohttp_server):
    """An unknown call id is not mistaken for a call that already ended."""
    state = FakeSautikitState()
    async with SautikitClient(await serve_fake(aiohttp_server, state)) as sautikit:
        with pytest.raises(NotFound):
            await sautikit.hangup("HD_missing")


async def test_hangup_treats_already_ended_conflict_as_done():
    """A platform answering 409 for a call that already ended has done what hangup asks."""

    def platform(request: httpx.Request) -> httpx.Response:
        envelope = {"error": {"code": "calls.already_ended", "message": "ended"}}
        return httpx.Response(409, json=envelope)

    config = SautikitConfig(api_key=KEY, base_url="https://api.sautikit.test")
    async with SautikitClient(config, transport=httpx.MockTransport(platform)) as sautikit:
        await sautikit.hangup("HD_1")


async def test_create_call_sends_a_fresh_idempotency_key(aiohttp_server):
    """An outbound call gets a uuid4 Idempotency-Key and returns the 201's call and session ids."""
    state = FakeSautikitState()
    async with SautikitClient(await serve_fake(aiohttp_server, state)) as sautikit:
        await claimed(sautikit)
        created = await sautikit.create_call("+254700000100", CALLER, VOICE, "callback-1")
    key = state.requests[-1].idempotency_key
    assert key is not None
    assert uuid.UUID(key).version == 4
    assert created.status == "ringing"
    assert state.calls[created.call_id].session_id == created.session_id


async def test_create_call_same_key_same_body_replays_the_first_answer(aiohttp_server):
    """Repeating a request with its key returns the same call and places no second one."""
    state = FakeSautikitState()
    async with SautikitClient(await serve_fake(aiohttp_server, state)) as sautikit:
        await claimed(sautikit)
        first = await sautikit.create_call("+254700000100", CALLER, VOICE, "cb-1", "key-1")
        again = await sautikit.create_call("+254700000100", CALLER, VOICE, "cb-1", "key-1")
    assert first == again
    assert len(state.calls) == 1


async def test_create_call_same_key_other_body_is_a_conflict(aiohttp_server):
    """Reusing a key with another body raises Conflict idempotency.conflict, not retried."""
    state = FakeSautikitState()
    async with SautikitClient(await serve_fake(aiohttp_server, state)) as sautikit:
        await claimed(sautikit)
        await sautikit.create_call("+254700000100", CALLER, VOICE, "cb-1", "key-1")
        with pytest.raises(Conflict) as failure:
            await sautikit.create_call("+254700000100", "+254799000000", VOICE, "cb-2", "key-1")
    assert failure.value.code == "idempotency.conflict"
    assert len(state.calls) == 1
    assert paths(state).count("POST /v1/calls") == 2


async def test_create_call_is_retried_with_the_same_key(aiohttp_server):
    """A 429 on an outbound call is retried with the same key, and one call is placed."""
    state = FakeSautikitState()
    config = await serve_fake(aiohttp_server, state, backoff_s=0)
    async with SautikitClient(config) as sautikit:
        await claimed(sautikit)
        state.fail_next(1, status=429, retry_after_s=0)
        await sautikit.create_call("+254700000100", CALLER, VOICE, "cb-1")
    keys = [r.idempotency_key for r in state.requests if r.path == "/v1/calls"]
    assert len(keys) == 2
    assert keys[0] == keys[1]
    assert len(state.calls) == 1


async def test_create_call_with_empty_wallet_is_payment_required(aiohttp_server):
    """No credit, no call: 402 wallet.insufficient_funds."""
    state = FakeSautikitState()
    async with SautikitClient(await serve_fake(aiohttp_server, state)) as sautikit:
        await claimed(sautikit)
        state.wallet_minor = 0
        with pytest.raises(PaymentRequired, match=r"wallet\.insufficient_funds"):
            await sautikit.create_call("+254700000100", CALLER, VOICE, "cb-1")
    assert state.calls == {}


async def test_supervise_brings_a_supervisor_onto_the_call(aiohttp_server):
    """A barge request names the phone supervisor, and the fake records it."""
    state = FakeSautikitState()
    call = state.add_call(status="answered")
    async with SautikitClient(await serve_fake(aiohttp_server, state)) as sautikit:
        await sautikit.supervise(call.session_id, "barge", "+254722000111")
    assert [(s.call_id, s.mode, s.supervisor_number) for s in state.supervisions] == [
        (call.id, "barge", "+254722000111")
    ]


async def test_supervise_an_ended_call_is_a_conflict(aiohttp_server):
    """Supervising a call that has ended raises Conflict calls.not_active."""
    state = FakeSautikitState()
    call = state.add_call(status="completed")
    async with SautikitClient(await serve_fake(aiohttp_server, state)) as sautikit:
        with pytest.raises(Conflict, match=r"calls\.not_active"):
            await sautikit.supervise(call.id, "listen", "+254722000111")
    assert state.supervisions == []


@pytest.mark.parametrize(
    ("recording", "expected"),
    [
        (RECORDING, RecordingStatus(state="ready", url=RECORDING)),
        ("pending", RecordingStatus(state="pending")),
        (None, RecordingStatus(state="none")),
    ],
)
async def test_recording_reports_ready_pending_or_none(aiohttp_server, recording, expected):
    """302 is ready with the URL, 202 is pending, 404 is no recording."""
    state = FakeSautikitState()
    call = state.add_call(recording=recording)
    async with SautikitClient(await serve_fake(aiohttp_server, state)) as sautikit:
        assert await sautikit.recording(call.id) == expected


async def test_recording_of_unknown_call_raises_not_found(aiohttp_server):
    """A missing call is an error, not a call without a recording."""
    state = FakeSautikitState()
    async with SautikitClient(await serve_fake(aiohttp_server, state)) as sautikit:
        with pytest.raises(NotFound, match=r"calls\.not_found"):
            await sautikit.recording("HD_missing")


# --- auth, error forms, retries, timeouts -------------------------------------------------------


async def test_bad_key_is_forbidden_and_not_retried(aiohttp_server):
    """An unknown key answers 403 api_key.scope_denied, raised as AuthError on the first try."""
    state = FakeSautikitState()
    config = await serve_fake(aiohttp_server, state, api_key="sk_wrong")
    async with SautikitClient(config) as sautikit:
        with pytest.raises(AuthError) as failure:
            await sautikit.list_numbers()
    assert (failure.value.status, failure.value.code) == (403, "api_key.scope_denied")
    assert len(state.requests) == 1


async def test_flat_error_form_fills_code_and_message(aiohttp_server):
    """The `{code, reason}` error form gives the same typed error as the envelope."""
    state = FakeSautikitState(error_form="flat")
    async with SautikitClient(await serve_fake(aiohttp_server, state)) as sautikit:
        with pytest.raises(NotFound) as failure:
            await sautikit.get_call("HD_missing")
    assert (failure.value.code, failure.value.message) == ("calls.not_found", "no call HD_missing")
    assert failure.value.request_id is not None  # from the X-Request-Id header


async def test_retries_give_up_after_the_configured_number(aiohttp_server):
    """Four 503s with retries=3 fail with ServerError after four attempts."""
    state = FakeSautikitState()
    state.fail_next(5, status=503)
    config = await serve_fake(aiohttp_server, state, backoff_s=0, retries=3)
    async with SautikitClient(config) as sautikit:
        with pytest.raises(ServerError, match=r"service\.unavailable"):
            await sautikit.list_numbers()
    assert len(state.requests) == 4


@pytest.mark.looptime
async def test_retry_waits_as_long_as_retry_after_says(aiohttp_server):
    """A 429 with Retry-After: 7 is retried after 7 s, not after the backoff."""
    state = FakeSautikitState()
    state.fail_next(1, status=429, retry_after_s=7)
    config = await serve_fake(aiohttp_server, state, backoff_s=0.5)
    loop = asyncio.get_running_loop()
    async with SautikitClient(config) as sautikit:
        started = loop.time()
        await sautikit.list_numbers()
        assert loop.time() - started == pytest.approx(7, abs=0.05)


@pytest.mark.looptime
async def test_retry_after_as_an_http_date_is_honoured():
    """A 503 whose Retry-After is an HTTP date about 5 s ahead waits about 5 s."""
    answers = iter([
        httpx.Response(503, headers={"Retry-After": format_datetime(
            datetime.now(UTC) + timedelta(seconds=5), usegmt=True
        )}),
        httpx.Response(200, json={"data": []}),
    ])

    def platform(request: httpx.Request) -> httpx.Response:
        return next(answers)

    config = SautikitConfig(api_key=KEY, base_url="https://api.sautikit.test", backoff_s=0.5)
    loop = asyncio.get_running_loop()
    async with SautikitClient(config, transport=httpx.MockTransport(platform)) as sautikit:
        started = loop.time()
        assert await sautikit.list_numbers() == []
        assert loop.time() - started == pytest.approx(5, abs=1)


@pytest.mark.looptime
async def test_backoff_doubles_between_attempts(aiohttp_server):
    """Three 503s without Retry-After wait 0.5, 1 and 2 s before the fourth attempt succeeds."""
    state = FakeSautikitState()
    state.fail_next(3, status=503)
    config = await serve_fake(aiohttp_server, state, backoff_s=0.5)
    loop = asyncio.get_running_loop()
    async with SautikitClient(config) as sautikit:
        started = loop.time()
        await sautikit.list_numbers()
        assert loop.time() - started == pytest.approx(3.5, abs=0.05)


@pytest.mark.looptime
async def test_slow_platform_times_out_as_unavailable(aiohttp_server):
    """A platform slower than timeout_s raises SautikitUnavailable after each try's deadline."""

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(60)
        return web.json_response({"data": []})

    app = web.Application()
    app.router.add_get("/v1/numbers", slow)
    server = await aiohttp_server(app)
    base = str(server.make_url("")).rstrip("/")
    config = SautikitConfig(api_key=KEY, base_url=base, timeout_s=2, retries=1, backoff_s=1)
    loop = asyncio.get_running_loop()
    async with SautikitClient(config) as sautikit:
        started = loop.time()
        with pytest.raises(SautikitUnavailable) as failure:
            await sautikit.list_numbers()
        assert loop.time() - started == pytest.approx(5, abs=0.05)
    assert (failure.value.status, failure.value.code) == (None, "timeout")


async def test_nothing_listening_is_unavailable():
    """A refused connection becomes SautikitUnavailable, never a raw httpx error."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = SautikitConfig(api_key=KEY, base_url=f"http://127.0.0.1:{port}", retries=0)
    async with SautikitClient(config) as sautikit:
        with pytest.raises(SautikitUnavailable, match="ConnectError"):
            await sautikit.list_numbers()


HTTPX_ERRORS = [
    httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout, httpx.WriteTimeout,
    httpx.PoolTimeout, httpx.ReadError, httpx.WriteError, httpx.CloseError,
    httpx.RemoteProtocolError, httpx.LocalProtocolError, httpx.ProxyError,
    httpx.UnsupportedProtocol, httpx.DecodingError, httpx.TooManyRedirects,
]


@pytest.mark.parametrize("error", HTTPX_ERRORS)
async def test_every_httpx_error_becomes_unavailable(error):
    """Each httpx failure is translated at this one boundary."""

    def broken(request: httpx.Request) -> httpx.Response:
        raise error("boom", request=request)

    config = SautikitConfig(api_key=KEY, base_url="https://api.sautikit.test", retries=0)
    async with SautikitClient(config, transport=httpx.MockTransport(broken)) as sautikit:
        with pytest.raises(SautikitUnavailable, match=error.__name__):
            await sautikit.get_call("HD_1")


def test_every_httpx_request_error_is_mapped():
    """The translation test above covers every concrete httpx.RequestError that httpx defines."""

    def leaves(cls: type) -> set[type]:
        subclasses = cls.__subclasses__()
        return {cls} if not subclasses else set().union(*(leaves(s) for s in subclasses))

    defined = {cls for cls in leaves(httpx.RequestError) if cls.__module__.startswith("httpx")}
    assert defined <= set(HTTPX_ERRORS)


@pytest.mark.parametrize(
    ("status", "kind"),
    [(400, SautikitError), (401, AuthError), (402, PaymentRequired), (403, AuthError),
     (404, NotFound), (409, Conflict), (422, SautikitError), (429, RateLimited),
     (500, ServerError), (502, ServerError), (503, ServerError)],
)
def test_error_for_status_picks_the_typed_error(status, kind):
    """Each HTTP status maps to exactly the documented error class."""
    error = error_for_status(status, code="x.y", message="m", request_id="req_1")
    assert type(error) is kind
    assert (error.status, error.code, error.request_id) == (status, "x.y", "req_1")


async def test_non_json_error_body_still_raises_typed_error():
    """A proxy's HTML 502 becomes ServerError with the status as its code."""

    def proxy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>Bad Gateway</html>")

    config = SautikitConfig(api_key=KEY, base_url="https://api.sautikit.test", retries=0)
    async with SautikitClient(config, transport=httpx.MockTransport(proxy)) as sautikit:
        with pytest.raises(ServerError) as failure:
            await sautikit.list_numbers()
    assert (failure.value.code, failure.value.message) == ("http.502", "<html>Bad Gateway</html>")


async def test_malformed_success_body_is_response_invalid():
    """A 200 whose body is not a call record raises SautikitError response.invalid."""

    def platform(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"call": {"id": "HD_1"}})

    config = SautikitConfig(api_key=KEY, base_url="https://api.sautikit.test")
    async with SautikitClient(config, transport=httpx.MockTransport(platform)) as sautikit:
        with pytest.raises(SautikitError) as failure:
            await sautikit.get_call("HD_1")
    assert failure.value.code == "response.invalid"


async def test_ids_cannot_escape_their_path_segment():
    """An id with a slash or query stays one encoded segment of the path."""
    seen: list[str] = []

    def platform(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.raw_path.decode())
        return httpx.Response(200, json={"call": {"id": "x", "status": "completed"}})

    config = SautikitConfig(api_key=KEY, base_url="https://api.sautikit.test")
    async with SautikitClient(config, transport=httpx.MockTransport(platform)) as sautikit:
        await sautikit.get_call("../numbers?x=1")
    assert seen == ["/v1/calls/..%2Fnumbers%3Fx%3D1"]


@pytest.mark.parametrize("call_id", ["..", ".", "", "..."])
async def test_call_paths_refuse_ids_that_would_climb_out_of_calls(aiohttp_server, call_id):
    """Regression: `get_call("..")` requested `/v1` (the dot segment climbed a level); now it is refused unsent."""
    state = FakeSautikitState()
    async with SautikitClient(await serve_fake(aiohttp_server, state)) as sautikit:
        with pytest.raises(ValueError, match="not an id"):
            await sautikit.get_call(call_id)
        with pytest.raises(ValueError, match="not an id"):
            await sautikit.hangup(call_id)
    assert paths(state) == []
