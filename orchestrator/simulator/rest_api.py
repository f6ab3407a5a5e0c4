"""A faithful local fake of Sautikit's REST API: a real aiohttp app over a `FakeSautikitState`.

It serves both documented forms where Sautikit's pages disagree (claim by `POST /v1/numbers` or
`POST /v1/numbers/{inventory_id}/claim`; routing by `PATCH /v1/numbers/{id}` or
`PUT /v1/numbers/{id}/routing`), answers errors in the `{"error": {code, message, request_id}}`
envelope (or the flat `{code, reason}` form some endpoints use, with `error_form="flat"`), paginates
calls with opaque cursors, replays idempotent POSTs, and charges a wallet: an empty one answers 402.
Bearer keys not in `state.api_keys` get 403. Tests read what the service did from `state.hangups`,
`state.supervisions` and `state.requests`, and make the platform flaky with `state.fail_next(...)`.

    state = FakeSautikitState(wallet_minor=0)              # every charge now answers 402
    server = await aiohttp_server(sautikit_rest_app(state))
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from aiohttp import web

__all__ = [
    "SAUTIKIT_STATE",
    "FakeCall",
    "FakeInventoryNumber",
    "FakeNumber",
    "FakeSautikitState",
    "InjectedFailure",
    "RecordedRequest",
    "Supervision",
    "sautikit_rest_app",
]

DEFAULT_API_KEY = "sk_test_sautikit"
_ENDED = frozenset({"completed", "failed", "no_answer", "busy", "canceled"})
_MAX_PAGE = 100
_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True, kw_only=True)
class FakeInventoryNumber:
    """A number the fake offers for claiming."""

    id: str
    e164: str
    country: str = "KE"
    monthly_price_minor: int = 50_000  # KES 500.00
    currency: str = "KES"

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "e164": self.e164,
            "country": self.country,
            "monthly_price_minor": self.monthly_price_minor,
            "currency": self.currency,
        }


@dataclass(slots=True, kw_only=True)
class FakeNumber:
    """A number the workspace owns in the fake; routing changes as the service sets it."""

    id: str
    e164: str
    inventory_id: str
    country: str = "KE"
    status: str = "active"
    routing_url: str | None = None
    events_url: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "e164": self.e164,
            "country": self.country,
            "status": self.status,
            "routing_url": self.routing_url,
            "events_url": self.events_url,
        }


@dataclass(slots=True, kw_only=True)
class FakeCall:
    """A call record in the fake. `recording` is a URL, "pending", or None for no recording."""

    id: str
    session_id: str
    direction: Literal["inbound", "outbound"] = "inbound"
    local_e164: str = "+254700000100"
    remote_e164: str = "+254712345678"
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    status: str = "answered"
    failure_code: str | None = None
    cost_minor: int = 0
    cost_currency: str = "KES"
    events: list[dict[str, object]] = field(default_factory=list)
    recording: str | None = None

    @property
    def duration_seconds(self) -> int | None:
        if self.answered_at is None or self.ended_at is None:
            return None
        return int((self.ended_at - self.answered_at).total_seconds())

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "session_id": self.session_id,
            "direction": self.direction,
            "local_e164": self.local_e164,
            "remote_e164": self.remote_e164,
            "started_at": _iso(self.started_at),
            "answered_at": _iso(self.answered_at),
            "ended_at": _iso(self.ended_at),
            "duration_seconds": self.duration_seconds,
            "status": self.status,
            "failure_code": self.failure_code,
            "cost_minor": self.cost_minor,
            "cost_currency": self.cost_currency,
            "events": list(self.events),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Supervision:
    """A supervision request the service made."""

    call_id: str
    mode: str
    supervisor_number: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedRequest:
    """One request the fake received, before any check ran."""

    method: str
    path: str
    idempotency_key: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class InjectedFailure:
    """An answer the fake gives instead of serving the next request."""

    status: int
    code: str
    retry_after_s: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class _Stored:
    fingerprint: str
    status: int
    body: dict[str, object]


def _default_inventory() -> dict[str, FakeInventoryNumber]:
    numbers = (
        FakeInventoryNumber(id="inv_ke_0100", e164="+254700000100"),
        FakeInventoryNumber(id="inv_ke_0101", e164="+254700000101"),
        FakeInventoryNumber(id="inv_ke_2020", e164="+254202000020", monthly_price_minor=80_000),
    )
    return {number.id: number for number in numbers}


@dataclass(slots=True, kw_only=True)
class FakeSautikitState:
    """Everything the fake platform knows; tests read and change it directly."""

    api_keys: set[str] = field(default_factory=lambda: {DEFAULT_API_KEY})
    inventory: dict[str, FakeInventoryNumber] = field(default_factory=_default_inventory)
    numbers: dict[str, FakeNumber] = field(default_factory=dict)
    calls: dict[str, FakeCall] = field(default_factory=dict)
    wallet_minor: int = 1_000_000  # KES 10,000.00
    outbound_call_price_minor: int = 500
    error_form: Literal["envelope", "flat"] = "envelope"
    idempotency: dict[str, _Stored] = field(default_factory=dict)
    hangups: list[str] = field(default_factory=list)
    supervisions: list[Supervision] = field(default_factory=list)
    requests: list[RecordedRequest] = field(default_factory=list)
    failures: deque[InjectedFailure] = field(default_factory=deque)
    # The platform's clock; the simulator sets it to the event loop's so records read the same every run.
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    # What a minute of an inbound call costs, charged when it ends.
    inbound_minute_price_minor: int = 200
    # Called with each outbound call placed (not an idempotent replay) and its voice_callback_url: the
    # simulator's `FakeDialler` rings the number there (answered, voicemail, no answer, busy).
    on_call_created: Callable[[FakeCall, str], None] | None = None
    _serial: itertools.count[int] = field(init=False, default_factory=lambda: itertools.count(1))

    def fail_next(
        self, count: int = 1, *, status: int = 503, retry_after_s: float | None = None
    ) -> None:
        """Answer the next `count` requests with `status` (503, 429, 500...) instead of serving."""
        code = "rate_limited" if status == 429 else "service.unavailable"
        for _ in range(count):
            self.failures.append(
                InjectedFailure(status=status, code=code, retry_after_s=retry_after_s)
            )

    def add_call(
        self,
        *,
        id: str | None = None,  # the wire's name, kept so seeding reads like a record
        session_id: str | None = None,
        direction: Literal["inbound", "outbound"] = "inbound",
        local_e164: str = "+254700000100",
        remote_e164: str = "+254712345678",
        status: str = "completed",
        started_at: datetime | None = None,
        answered_at: datetime | None = None,
        ended_at: datetime | None = None,
        failure_code: str | None = None,
        cost_minor: int = 0,
        events: list[dict[str, object]] | None = None,
        recording: str | None = None,
    ) -> FakeCall:
        """Record a call as if Sautikit had carried it; ids are made up when not given."""
        serial = next(self._serial)
        call = FakeCall(
            id=id or str(uuid.UUID(int=serial)),
            session_id=session_id or f"HD_{serial:08x}",
            direction=direction,
            local_e164=local_e164,
            remote_e164=remote_e164,
            status=status,
            started_at=started_at or self.now(),
            answered_at=answered_at,
            ended_at=ended_at,
            failure_code=failure_code,
            cost_minor=cost_minor,
            events=events if events is not None else [],
            recording=recording,
        )
        self.calls[call.id] = call
        return call

    def find_call(self, call_id: str) -> FakeCall | None:
        """A call by its UUID or its `HD_` session id, as the API accepts either."""
        if call_id in self.calls:
            return self.calls[call_id]
        return next((c for c in self.calls.values() if c.session_id == call_id), None)

    def next_request_id(self) -> str:
        """A fresh request id, as Sautikit puts in every error."""
        return f"req_{next(self._serial):06d}"


SAUTIKIT_STATE = web.AppKey("sautikit_state", FakeSautikitState)


def sautikit_rest_app(state: FakeSautikitState | None = None) -> web.Application:
    """The fake's aiohttp app, serving `state` (a fresh default state when None)."""
    app = web.Application(middlewares=[_recorder, _injected_failures, _bearer_auth])
    app[SAUTIKIT_STATE] = state if state is not None else FakeSautikitState()
    app.router.add_get("/v1/numbers/available", _available)
    app.router.add_post("/v1/numbers", _claim_seed)
    app.router.add_post("/v1/numbers/{inventory_id}/claim", _claim_inventory)
    app.router.add_get("/v1/numbers", _list_numbers)
    app.router.add_patch("/v1/numbers/{number_id}", _patch_number)
    app.router.add_put("/v1/numbers/{number_id}/routing", _put_routing)
    app.router.add_delete("/v1/numbers/{number_id}", _release)
    app.router.add_get("/v1/calls", _list_calls)
    app.router.add_post("/v1/calls", _create_call)
    app.router.add_get("/v1/calls/{call_id}", _get_call)
    app.router.add_post("/v1/calls/{call_id}/hangup", _hangup)
    app.router.add_post("/v1/calls/{call_id}/supervision", _supervise)
    app.router.add_get("/v1/calls/{call_id}/recording", _recording)
    return app


# --- errors and middlewares ---------------------------------------------------------------------


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        super().__init__(message)


def _error_response(
    state: FakeSautikitState,
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    request_id = state.next_request_id()
    body: dict[str, object]
    if state.error_form == "flat":
        body = {"code": code, "reason": message}
    else:
        body = {"error": {"code": code, "message": message, "request_id": request_id}}
    return web.json_response(
        body, status=status, headers={"X-Request-Id": request_id, **(headers or {})}
    )


@web.middleware
async def _recorder(request: web.Request, handler: _Handler) -> web.StreamResponse:
    state = request.app[SAUTIKIT_STATE]
    state.requests.append(
        RecordedRequest(
            method=request.method,
            path=request.path,
            idempotency_key=request.headers.get("Idempotency-Key"),
        )
    )
    try:
        return await handler(request)
    except _ApiError as exc:
        return _error_response(state, exc.status, exc.code, exc.message)


@web.middleware
async def _injected_failures(request: web.Request, handler: _Handler) -> web.StreamResponse:
    state = request.app[SAUTIKIT_STATE]
    if state.failures:
        failure = state.failures.popleft()
        headers = (
            {"Retry-After": f"{failure.retry_after_s:g}"}
            if failure.retry_after_s is not None
            else {}
        )
        return _error_response(state, failure.status, failure.code, "injected failure", headers)
    return await handler(request)


@web.middleware
async def _bearer_auth(request: web.Request, handler: _Handler) -> web.StreamResponse:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key:
        raise _ApiError(401, "api_key.missing", "send Authorization: Bearer <api key>")
    if key not in request.app[SAUTIKIT_STATE].api_keys:
        raise _ApiError(403, "api_key.scope_denied", "this API key may not use this endpoint")
    return await handler(request)


async def _json_body(request: web.Request) -> dict[str, object]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise _ApiError(400, "request.invalid_json", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise _ApiError(400, "request.invalid_json", "the body must be a JSON object")
    return body


def _required_url(body: Mapping[str, object], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.startswith(("https://", "http://")):
        raise _ApiError(422, "validation.failed", f"{name} must be an http(s) URL")
    return value


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


# --- numbers ------------------------------------------------------------------------------------


async def _available(request: web.Request) -> web.Response:
    state = request.app[SAUTIKIT_STATE]
    country = request.query.get("country", "KE").upper()
    data = [n.to_json() for n in state.inventory.values() if n.country == country]
    return web.json_response({"data": data})


def _claim(state: FakeSautikitState, inventory_id: str) -> web.Response:
    offer = state.inventory.get(inventory_id)
    if offer is None:
        raise _ApiError(404, "numbers.not_found", f"no inventory number {inventory_id}")
    if state.wallet_minor < offer.monthly_price_minor:
        raise _ApiError(402, "wallet.insufficient_funds", "top up the wallet to claim this number")
    state.wallet_minor -= offer.monthly_price_minor
    del state.inventory[inventory_id]
    number = FakeNumber(
        id=f"num_{uuid.uuid4().hex[:12]}",
        e164=offer.e164,
        inventory_id=offer.id,
        country=offer.country,
    )
    state.numbers[number.id] = number
    return web.json_response({"number": number.to_json()}, status=201)


async def _claim_seed(request: web.Request) -> web.Response:
    body = await _json_body(request)
    inventory_id = body.get("inventory_id")
    if not isinstance(inventory_id, str):
        raise _ApiError(422, "validation.failed", "inventory_id is required")
    return _claim(request.app[SAUTIKIT_STATE], inventory_id)


async def _claim_inventory(request: web.Request) -> web.Response:
    return _claim(request.app[SAUTIKIT_STATE], request.match_info["inventory_id"])


async def _list_numbers(request: web.Request) -> web.Response:
    state = request.app[SAUTIKIT_STATE]
    return web.json_response({"data": [n.to_json() for n in state.numbers.values()]})


def _owned(state: FakeSautikitState, number_id: str) -> FakeNumber:
    number = state.numbers.get(number_id)
    if number is None:
        raise _ApiError(404, "numbers.not_found", f"no number {number_id} in this workspace")
    return number


async def _patch_number(request: web.Request) -> web.Response:
    number = _owned(request.app[SAUTIKIT_STATE], request.match_info["number_id"])
    body = await _json_body(request)
    number.routing_url = _required_url(body, "routing_url")
    if "events_url" in body:
        number.events_url = _required_url(body, "events_url")
    return web.json_response({"number": number.to_json()})


async def _put_routing(request: web.Request) -> web.Response:
    number = _owned(request.app[SAUTIKIT_STATE], request.match_info["number_id"])
    body = await _json_body(request)
    number.routing_url = _required_url(body, "voice_callback_url")
    number.events_url = _required_url(body, "events_url") if body.get("events_url") else None
    return web.json_response({"number": number.to_json()})


async def _release(request: web.Request) -> web.Response:
    state = request.app[SAUTIKIT_STATE]
    number = _owned(state, request.match_info["number_id"])
    del state.numbers[number.id]
    state.inventory[number.inventory_id] = FakeInventoryNumber(
        id=number.inventory_id, e164=number.e164, country=number.country
    )
    return web.Response(status=204)


# --- calls --------------------------------------------------------------------------------------


def _cursor_for(call: FakeCall) -> str:
    return base64.urlsafe_b64encode(call.id.encode()).decode().rstrip("=")


def _newest_first(state: FakeSautikitState) -> list[FakeCall]:
    return sorted(state.calls.values(), key=lambda c: (c.started_at, c.id), reverse=True)


async def _list_calls(request: web.Request) -> web.Response:
    state = request.app[SAUTIKIT_STATE]
    try:
        limit = int(request.query.get("limit", "50"))
    except ValueError:
        raise _ApiError(422, "validation.failed", "limit must be an integer") from None
    if not 1 <= limit <= _MAX_PAGE:
        raise _ApiError(422, "validation.failed", f"limit must be 1..{_MAX_PAGE}")
    calls = _newest_first(state)
    start = 0
    if cursor := request.query.get("cursor"):
        positions = {_cursor_for(call): index for index, call in enumerate(calls)}
        if cursor not in positions:
            raise _ApiError(400, "pagination.invalid_cursor", "unknown or expired cursor")
        start = positions[cursor] + 1
    page = calls[start : start + limit]
    more = start + limit < len(calls)
    return web.json_response(
        {
            "data": [call.to_json() for call in page],
            "next_cursor": _cursor_for(page[-1]) if more and page else None,
        }
    )


def _known_call(state: FakeSautikitState, call_id: str) -> FakeCall:
    call = state.find_call(call_id)
    if call is None:
        raise _ApiError(404, "calls.not_found", f"no call {call_id}")
    return call


async def _get_call(request: web.Request) -> web.Response:
    call = _known_call(request.app[SAUTIKIT_STATE], request.match_info["call_id"])
    return web.json_response({"call": call.to_json()})


def _fingerprint(body: Mapping[str, object]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


async def _create_call(request: web.Request) -> web.Response:
    state = request.app[SAUTIKIT_STATE]
    body = await _json_body(request)
    key = request.headers.get("Idempotency-Key")
    if key is not None and key in state.idempotency:
        stored = state.idempotency[key]
        if stored.fingerprint != _fingerprint(body):
            raise _ApiError(409, "idempotency.conflict", "Idempotency-Key reused with another body")
        return web.json_response(stored.body, status=stored.status)
    for name in ("from", "to", "client_request_id"):
        if not isinstance(body.get(name), str) or not body[name]:
            raise _ApiError(422, "validation.failed", f"{name} is required")
    voice_url = _required_url(body, "voice_callback_url")
    if not any(n.e164 == body["from"] for n in state.numbers.values()):
        raise _ApiError(422, "calls.invalid_from", "from must be a number this workspace owns")
    if state.wallet_minor < state.outbound_call_price_minor:
        raise _ApiError(402, "wallet.insufficient_funds", "top up the wallet to place calls")
    state.wallet_minor -= state.outbound_call_price_minor
    call = state.add_call(
        direction="outbound",
        local_e164=str(body["from"]),
        remote_e164=str(body["to"]),
        status="ringing",
        events=[
            {
                "kind": "call.initiated",
                "at": _iso(state.now()),
                "voice_callback_url": voice_url,
            }
        ],
    )
    payload: dict[str, object] = {
        "call_id": call.id,
        "session_id": call.session_id,
        "status": call.status,
    }
    if key is not None:
        state.idempotency[key] = _Stored(fingerprint=_fingerprint(body), status=201, body=payload)
    if state.on_call_created is not None:
        state.on_call_created(call, voice_url)
    return web.json_response(payload, status=201)


async def _hangup(request: web.Request) -> web.Response:
    state = request.app[SAUTIKIT_STATE]
    call = _known_call(state, request.match_info["call_id"])
    state.hangups.append(call.id)
    if call.status not in _ENDED:  # documented idempotent: a second hangup changes nothing
        now = state.now()
        call.status = "completed" if call.answered_at or call.status == "answered" else "canceled"
        call.answered_at = call.answered_at or (now if call.status == "completed" else None)
        call.ended_at = now
        if call.answered_at is not None:
            minutes = (now - call.answered_at).total_seconds() / 60
            call.cost_minor = max(1, round(minutes * state.inbound_minute_price_minor))
        call.events.append({"kind": "call.hangup", "at": _iso(now), "by": "api"})
    return web.json_response({"call_id": call.id, "status": call.status})


async def _supervise(request: web.Request) -> web.Response:
    state = request.app[SAUTIKIT_STATE]
    call = _known_call(state, request.match_info["call_id"])
    body = await _json_body(request)
    mode = body.get("mode")
    if mode not in ("listen", "whisper", "barge"):
        raise _ApiError(422, "validation.failed", "mode must be listen, whisper or barge")
    supervisor = body.get("supervisor")
    number = supervisor.get("number") if isinstance(supervisor, dict) else None
    if not isinstance(supervisor, dict) or supervisor.get("type") != "phone" or not number:
        raise _ApiError(422, "validation.failed", "supervisor must be {type: phone, number}")
    if call.status in _ENDED:
        raise _ApiError(409, "calls.not_active", "the call has ended")
    state.supervisions.append(
        Supervision(call_id=call.id, mode=str(mode), supervisor_number=str(number))
    )
    return web.json_response({"call_id": call.id, "mode": mode}, status=201)


async def _recording(request: web.Request) -> web.Response:
    call = _known_call(request.app[SAUTIKIT_STATE], request.match_info["call_id"])
    if call.recording is None:
        raise _ApiError(404, "recordings.not_found", "this call has no recording")
    if call.recording == "pending":
        return web.json_response({"status": "processing"}, status=202)
    return web.Response(status=302, headers={"Location": call.recording})
