"""Sautikit's REST API over httpx: numbers, calls, supervision and recordings, with typed errors.

Where Sautikit's own pages disagree, both forms are supported and a setting picks one (the seed
use-case page's form is the default):

    claim_style    "seed"       POST /v1/numbers {"inventory_id"}
                   "inventory"  POST /v1/numbers/{inventory_id}/claim
    routing_style  "patch"      PATCH /v1/numbers/{id} {"routing_url"}
                   "put"        PUT /v1/numbers/{id}/routing {"voice_callback_url", "events_url"}

Retries, and why: only requests that are safe to repeat are retried — GETs, the hang-up (documented
idempotent) and POSTs carrying an `Idempotency-Key` — on 429, 5xx, timeouts and connection failures,
with exponential backoff that yields to the platform's `Retry-After`. Anything else fails on the
first error: repeating a claim or a routing change the platform may already have applied is the
operator's call.

Errors: every failure leaves this module as a `SautikitError`; httpx errors are translated here and
nowhere else. Both error bodies Sautikit sends, `{"error": {"code", "message", "request_id"}}` and
`{"code", "reason"}`, fill the same fields (request_id falls back to the X-Request-Id header).

    SautikitError              status, code, message, request_id
     ├── AuthError             401 / 403 (a missing key, or api_key.scope_denied)
     ├── PaymentRequired       402 wallet.insufficient_funds
     ├── NotFound              404 calls.not_found, numbers.not_found, ...
     ├── Conflict              409 idempotency.conflict, ...
     ├── RateLimited           429 (retry_after_s from Retry-After)
     ├── ServerError           5xx
     └── SautikitUnavailable   timeout or connection failure; no answer at all (status None)
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Literal, Self, TypeVar
from urllib.parse import quote

import httpx
import pydantic
import structlog
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from orchestrator.errors import ConfigError, OrchestratorError

__all__ = [
    "AuthError",
    "AvailableNumber",
    "CallEvent",
    "CallRecord",
    "ClaimStyle",
    "Conflict",
    "CreatedCall",
    "NotFound",
    "Number",
    "Page",
    "PaymentRequired",
    "RateLimited",
    "RecordingStatus",
    "RoutingStyle",
    "SautikitClient",
    "SautikitConfig",
    "SautikitError",
    "SautikitUnavailable",
    "ServerError",
    "SupervisionMode",
    "error_for_status",
]

log = structlog.get_logger(__name__)

ClaimStyle = Literal["seed", "inventory"]
RoutingStyle = Literal["patch", "put"]
SupervisionMode = Literal["listen", "whisper", "barge"]

_MAX_BACKOFF_S = 30.0
_MAX_RETRY_AFTER_S = 60.0


# --- errors -------------------------------------------------------------------------------------


class SautikitError(OrchestratorError):
    """Sautikit refused or failed a request; `code` and `request_id` are what its support asks for.

    `retry_after_s` is the platform's Retry-After hint (429 and 503 send one), when it gave one.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "unknown",
        request_id: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.retry_after_s = retry_after_s
        super().__init__(message)

    def __str__(self) -> str:
        status = f"HTTP {self.status} " if self.status is not None else ""
        request = f" (request_id {self.request_id})" if self.request_id else ""
        return f"{status}{self.code}: {self.message}{request}"


class AuthError(SautikitError):
    """The API key is missing, unknown, or not allowed to do this (401/403)."""


class PaymentRequired(SautikitError):
    """The workspace wallet cannot pay for this (402 wallet.insufficient_funds)."""


class NotFound(SautikitError):
    """No such number, call or inventory item (404)."""


class Conflict(SautikitError):
    """The request clashes with the platform's state, e.g. a reused Idempotency-Key (409)."""


class RateLimited(SautikitError):
    """Too many requests (429); `retry_after_s` says when to come back, if the platform said."""


class ServerError(SautikitError):
    """Sautikit failed (5xx)."""


class SautikitUnavailable(SautikitError):
    """No answer: a timeout or a connection failure. Whether a POST took effect is unknown."""


def error_for_status(
    status: int,
    *,
    code: str,
    message: str,
    request_id: str | None,
    retry_after_s: float | None = None,
) -> SautikitError:
    """The typed error for an HTTP status (any status >= 400 maps to some SautikitError)."""
    kind: type[SautikitError]
    if status in (401, 403):
        kind = AuthError
    elif status == 402:
        kind = PaymentRequired
    elif status == 404:
        kind = NotFound
    elif status == 409:
        kind = Conflict
    elif status == 429:
        kind = RateLimited
    elif status >= 500:
        kind = ServerError
    else:
        kind = SautikitError
    return kind(
        message, status=status, code=code, request_id=request_id, retry_after_s=retry_after_s
    )


# --- configuration ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SautikitConfig:
    """How to reach Sautikit's REST API, and which of its documented forms to speak.

    `retries` counts attempts after the first; the n-th retry waits `backoff_s * 2**n` (capped at
    30 s), or the platform's Retry-After when it sends one (capped at 60 s).
    """

    api_key: str
    base_url: str = "https://api.sautikit.com"
    timeout_s: float = 10.0
    retries: int = 3
    backoff_s: float = 0.5
    claim_style: ClaimStyle = "seed"
    routing_style: RoutingStyle = "patch"

    def __post_init__(self) -> None:
        if not self.api_key:
            raise ConfigError("SAUTIKIT_API_KEY is empty")
        if self.timeout_s <= 0:
            raise ConfigError("Sautikit timeout_s must be positive")
        if self.retries < 0 or self.backoff_s < 0:
            raise ConfigError("Sautikit retries and backoff_s must not be negative")
        if self.claim_style not in ("seed", "inventory"):
            raise ConfigError(
                f"SAUTIKIT_CLAIM_STYLE must be seed or inventory, not {self.claim_style!r}"
            )
        if self.routing_style not in ("patch", "put"):
            raise ConfigError(
                f"SAUTIKIT_ROUTING_STYLE must be patch or put, not {self.routing_style!r}"
            )

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] = os.environ,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout_s: float | None = None,
        retries: int | None = None,
        backoff_s: float | None = None,
        claim_style: str | None = None,
        routing_style: str | None = None,
    ) -> SautikitConfig:
        """Read SAUTIKIT_API_KEY, _BASE_URL, _CLAIM_STYLE and _ROUTING_STYLE from `environ`.

        Keyword arguments that are not None win over the environment.
        """
        key = api_key or environ.get("SAUTIKIT_API_KEY", "")
        if not key:
            raise ConfigError("SAUTIKIT_API_KEY is not set: export your Sautikit API key")
        url = base_url or environ.get("SAUTIKIT_BASE_URL") or "https://api.sautikit.com"
        claim = claim_style or environ.get("SAUTIKIT_CLAIM_STYLE") or "seed"
        routing = routing_style or environ.get("SAUTIKIT_ROUTING_STYLE") or "patch"
        return cls(
            api_key=key,
            base_url=url.rstrip("/"),
            timeout_s=10.0 if timeout_s is None else timeout_s,
            retries=3 if retries is None else retries,
            backoff_s=0.5 if backoff_s is None else backoff_s,
            claim_style=claim,  # type: ignore[arg-type]  # checked in __post_init__
            routing_style=routing,  # type: ignore[arg-type]  # checked in __post_init__
        )


# --- models at the edge -------------------------------------------------------------------------


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class AvailableNumber(_Wire):
    """A number in Sautikit's inventory that the workspace may claim."""

    id: str = Field(validation_alias=AliasChoices("id", "inventory_id"))
    e164: str = Field(validation_alias=AliasChoices("e164", "phone_number", "number"))
    country: str | None = None
    monthly_price_minor: int | None = None
    currency: str | None = None


class Number(_Wire):
    """A number the workspace owns, and where its calls are routed."""

    id: str = Field(validation_alias=AliasChoices("id", "number_id"))
    e164: str = Field(validation_alias=AliasChoices("e164", "phone_number", "number"))
    country: str | None = None
    status: str | None = None
    routing_url: str | None = Field(
        default=None, validation_alias=AliasChoices("routing_url", "voice_callback_url")
    )
    events_url: str | None = None


class CallEvent(_Wire):
    """One entry of a call record's event log; the schema is undocumented, so extras are kept."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)

    kind: str = Field(validation_alias=AliasChoices("kind", "type", "event", "name"))
    at: datetime | None = Field(
        default=None, validation_alias=AliasChoices("at", "occurred_at", "timestamp")
    )


class CallRecord(_Wire):
    """A call's detail record (`GET /v1/calls/{id}`); `status` keeps values not seen before."""

    id: str
    session_id: str | None = None
    direction: str | None = None
    local_e164: str | None = None
    remote_e164: str | None = None
    started_at: datetime | None = None
    answered_at: datetime | None = None
    ended_at: datetime | None = None
    duration_seconds: float | None = None
    status: str
    failure_code: str | None = None
    cost_minor: int | None = None
    cost_currency: str | None = None
    events: tuple[CallEvent, ...] = ()

    @property
    def ended(self) -> bool:
        """The call is over (completed, failed, no_answer, busy or canceled)."""
        return self.status in ("completed", "failed", "no_answer", "busy", "canceled")


T = TypeVar("T")


class Page(_Wire, Generic[T]):
    """One page of a cursor-paginated list; `next_cursor` is None on the last page."""

    data: tuple[T, ...]
    next_cursor: str | None = None


class CreatedCall(_Wire):
    """Sautikit's answer to an outbound call request (201)."""

    call_id: str = Field(validation_alias=AliasChoices("call_id", "id"))
    session_id: str | None = None
    status: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordingStatus:
    """Whether a call's recording can be fetched: `ready` with its URL, `pending`, or `none`."""

    state: Literal["ready", "pending", "none"]
    url: str | None = None


# --- the client ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Reply:
    status: int
    body: object
    headers: httpx.Headers


class SautikitClient:
    """Sautikit's REST API, as an async context manager; pass `transport` to fake the network.

        async with SautikitClient(SautikitConfig.from_env()) as sautikit:
            number = await sautikit.claim_number((await sautikit.available_numbers())[0].id)
            await sautikit.set_routing(number.id, "https://agent.example.com/voice")
            record = await sautikit.get_call("HD_8f2a91c0")
    """

    def __init__(
        self, config: SautikitConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.config = config
        self._http = httpx.AsyncClient(
            base_url=config.base_url,
            headers={
                "Authorization": f"Bearer {config.api_key}",
                "Accept": "application/json",
                "User-Agent": "sautikit-orchestrator",
            },
            timeout=httpx.Timeout(config.timeout_s),
            transport=transport,
            follow_redirects=False,  # a recording's 302 is the answer, not a hop
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # numbers

    async def available_numbers(self, country: str = "KE") -> list[AvailableNumber]:
        """Numbers in the inventory for `country` that the workspace can claim."""
        reply = await self._request("GET", "/v1/numbers/available", params={"country": country})
        return _parse_list(AvailableNumber, reply.body, "data", "numbers", "available")

    async def claim_number(
        self, inventory_id: str, *, idempotency_key: str | None = None
    ) -> Number:
        """Claim an inventory number for the workspace (charged to the wallet: 402 when empty).

        Not retried unless `idempotency_key` is given: a claim that timed out may have happened.
        """
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        if self.config.claim_style == "seed":
            reply = await self._request(
                "POST", "/v1/numbers", json_body={"inventory_id": inventory_id}, headers=headers
            )
        else:
            reply = await self._request(
                "POST", f"/v1/numbers/{_seg(inventory_id)}/claim", json_body={}, headers=headers
            )
        return _parse_one(Number, reply.body, "number")

    async def list_numbers(self) -> list[Number]:
        """Every number the workspace owns."""
        reply = await self._request("GET", "/v1/numbers")
        return _parse_list(Number, reply.body, "data", "numbers")

    async def set_routing(
        self, number_id: str, voice_url: str, events_url: str | None = None
    ) -> Number:
        """Point a number's voice webhook (and optionally its event webhook) at these URLs."""
        if self.config.routing_style == "patch":
            body: dict[str, str] = {"routing_url": voice_url}
            if events_url:
                body["events_url"] = events_url
            reply = await self._request("PATCH", f"/v1/numbers/{_seg(number_id)}", json_body=body)
        else:
            body = {"voice_callback_url": voice_url}
            if events_url:
                body["events_url"] = events_url
            reply = await self._request(
                "PUT", f"/v1/numbers/{_seg(number_id)}/routing", json_body=body
            )
        if reply.body is None:  # a bare 204: read the number back
            for number in await self.list_numbers():
                if number.id == number_id:
                    return number
            raise NotFound(f"number {number_id} vanished after routing", status=404)
        return _parse_one(Number, reply.body, "number")

    async def release_number(self, number_id: str) -> None:
        """Give a number back; calls to it stop reaching this service."""
        await self._request("DELETE", f"/v1/numbers/{_seg(number_id)}")

    # calls

    async def get_call(self, call_id: str) -> CallRecord:
        """A call's detail record, by UUID or `HD_` id."""
        reply = await self._request("GET", f"/v1/calls/{_seg(call_id)}")
        return _parse_one(CallRecord, reply.body, "call")

    async def list_calls(self, limit: int = 50, cursor: str | None = None) -> Page[CallRecord]:
        """One page of call records, newest first; pass `next_cursor` back for the next."""
        params: dict[str, str | int] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        reply = await self._request("GET", "/v1/calls", params=params)
        return _validate(Page[CallRecord], reply.body)

    async def iter_calls(self, limit: int = 50) -> AsyncIterator[CallRecord]:
        """Every call record, following `next_cursor` page after page."""
        cursor: str | None = None
        while True:
            page = await self.list_calls(limit=limit, cursor=cursor)
            for record in page.data:
                yield record
            if not page.next_cursor or page.next_cursor == cursor:
                return
            cursor = page.next_cursor

    async def hangup(self, call_id: str) -> None:
        """End a call. Idempotent: a 409 saying the call already ended counts as done.

        A 404 is still raised: an unknown id is a bug to see, not a call that ended.
        """
        try:
            await self._request("POST", f"/v1/calls/{_seg(call_id)}/hangup", retryable=True)
        except Conflict as exc:
            log.info("sautikit_hangup_already_ended", call_id=call_id, code=exc.code)

    async def create_call(
        self,
        from_: str,
        to: str,
        voice_callback_url: str,
        client_request_id: str,
        idempotency_key: str | None = None,
    ) -> CreatedCall:
        """Place an outbound call; its Idempotency-Key (uuid4 unless given) makes retries safe."""
        body = {
            "from": from_,
            "to": to,
            "voice_callback_url": voice_callback_url,
            "client_request_id": client_request_id,
        }
        reply = await self._request(
            "POST",
            "/v1/calls",
            json_body=body,
            headers={"Idempotency-Key": idempotency_key or str(uuid.uuid4())},
        )
        return _validate(CreatedCall, reply.body)

    async def supervise(
        self, call_id: str, mode: SupervisionMode, supervisor_number: str
    ) -> None:
        """Bring a person onto a live call by phone, to `listen`, `whisper` or `barge`."""
        body = {"mode": mode, "supervisor": {"type": "phone", "number": supervisor_number}}
        await self._request("POST", f"/v1/calls/{_seg(call_id)}/supervision", json_body=body)

    async def recording(self, call_id: str) -> RecordingStatus:
        """Where a call's recording is: 302 -> ready with its URL, 202 -> pending, 404 -> none.

        A 404 whose code is `calls.not_found` is raised as NotFound: the call itself is missing.
        """
        try:
            reply = await self._request("GET", f"/v1/calls/{_seg(call_id)}/recording")
        except NotFound as exc:
            if exc.code == "calls.not_found":
                raise
            return RecordingStatus(state="none")
        if reply.status == 202:
            return RecordingStatus(state="pending")
        location = reply.headers.get("Location")
        if location is None and isinstance(reply.body, Mapping):
            url = reply.body.get("url")
            location = url if isinstance(url, str) else None
        if location is None:
            raise SautikitError(
                "recording answer names no URL", status=reply.status, code="response.invalid"
            )
        return RecordingStatus(state="ready", url=location)

    # the one place requests are sent, retried and translated

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json_body: object = None,
        headers: Mapping[str, str] | None = None,
        retryable: bool = False,
    ) -> _Reply:
        safe = retryable or method == "GET" or bool(headers and "Idempotency-Key" in headers)
        attempts = 1 + (self.config.retries if safe else 0)
        for attempt in range(attempts):
            try:
                return await self._send_once(method, path, params, json_body, headers)
            except (RateLimited, ServerError, SautikitUnavailable) as exc:
                if attempt + 1 >= attempts:
                    raise
                delay = self._delay(attempt, exc)
                log.warning(
                    "sautikit_retry",
                    method=method,
                    path=path,
                    status=exc.status,
                    code=exc.code,
                    attempt=attempt + 1,
                    delay_s=delay,
                )
                await asyncio.sleep(delay)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _delay(self, attempt: int, exc: SautikitError) -> float:
        if exc.retry_after_s is not None:
            return min(exc.retry_after_s, _MAX_RETRY_AFTER_S)
        # typeshed types int ** int as Any (a negative exponent gives a float).
        factor: int = 2**attempt
        return min(self.config.backoff_s * factor, _MAX_BACKOFF_S)

    async def _send_once(
        self,
        method: str,
        path: str,
        params: Mapping[str, str | int] | None,
        json_body: object,
        headers: Mapping[str, str] | None,
    ) -> _Reply:
        try:
            # asyncio.timeout over httpx's per-phase ones: a trickling body can't stretch it.
            async with asyncio.timeout(self.config.timeout_s):
                response = await self._http.request(
                    method,
                    path,
                    params=params,
                    json=json_body,
                    headers=dict(headers) if headers else None,
                )
                await response.aread()
        except TimeoutError:
            raise SautikitUnavailable(
                f"no answer within {self.config.timeout_s}s", code="timeout"
            ) from None
        except httpx.TimeoutException as exc:
            raise SautikitUnavailable(
                f"timed out: {type(exc).__name__}", code="timeout"
            ) from exc
        except httpx.HTTPError as exc:
            raise SautikitUnavailable(
                f"transport error: {type(exc).__name__}", code="transport_error"
            ) from exc
        body = _json_or_text(response)
        if response.status_code >= 400:
            raise _error_from(response, body)
        return _Reply(status=response.status_code, body=body, headers=response.headers)


# --- helpers ------------------------------------------------------------------------------------


def _seg(value: str) -> str:
    """An id as one path segment: nothing in it can change the path (`..` would climb one up)."""
    if value.strip(".") == "":
        raise ValueError(f"not an id: {value!r}")
    return quote(value, safe="")


def _json_or_text(response: httpx.Response) -> object:
    if not response.content:
        return None
    try:
        return json.loads(response.content)
    except ValueError:
        return response.text


def _error_from(response: httpx.Response, body: object) -> SautikitError:
    status = response.status_code
    code = f"http.{status}"
    message = response.reason_phrase or "error"
    request_id = response.headers.get("X-Request-Id") or response.headers.get("Request-Id")
    if isinstance(body, Mapping):
        envelope = body.get("error")
        fields: Mapping[str, object] = envelope if isinstance(envelope, Mapping) else body
        code = _text(fields.get("code")) or code
        message = _text(fields.get("message")) or _text(fields.get("reason")) or message
        request_id = _text(fields.get("request_id")) or _text(body.get("request_id")) or request_id
    elif isinstance(body, str) and body.strip():
        message = body.strip()[:200]
    retry_after = _retry_after(response.headers.get("Retry-After"))
    return error_for_status(
        status, code=code, message=message, request_id=request_id, retry_after_s=retry_after
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either a number of seconds or an HTTP date."""
    if not value:
        return None
    if value.strip().replace(".", "", 1).isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


M = TypeVar("M", bound=BaseModel)


def _validate(model: type[M], body: object) -> M:
    try:
        return model.model_validate(body)
    except pydantic.ValidationError as exc:
        raise SautikitError(
            f"unexpected answer: {exc.error_count()} problem(s), first: {exc.errors()[0]['msg']}",
            code="response.invalid",
        ) from exc


def _parse_one(model: type[M], body: object, key: str) -> M:
    """An object, possibly wrapped as `{key: {...}}`."""
    if isinstance(body, Mapping) and isinstance(body.get(key), Mapping):
        body = body[key]
    return _validate(model, body)


def _parse_list(model: type[M], body: object, *keys: str) -> list[M]:
    """A list, bare or under the first of `keys` present."""
    if isinstance(body, Mapping):
        for key in keys:
            if isinstance(body.get(key), list):
                body = body[key]
                break
    if not isinstance(body, list):
        raise SautikitError("unexpected answer: expected a list", code="response.invalid")
    return [_validate(model, item) for item in body]
