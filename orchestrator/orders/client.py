"""The shop's orders API over HTTP, with a deadline: `OrdersClient` -> `LookupResult`.

Follows the orders API contract (docs/orders-api.md) by default; base URL, path, query names, the
auth header, the envelope the orders sit in, field names and status values are configurable because
every shop's backend differs. httpx errors are translated here and nowhere else. Retry policy, and why:

- retried (at most `retries` times): connect errors, because the request never reached the shop,
  and 5xx answers, because the shop said it failed and a GET is safe to repeat;
- not retried: 4xx (asking again gets the same answer) and timeouts. A timeout has already spent
  the attempt's whole budget of caller silence; a second would double it, and the flow has its own
  retry and apology route (`lookup_failed`) that keeps the caller informed meanwhile.

Every attempt runs under `asyncio.timeout(timeout_s)` on top of httpx's own timeouts, so a slow
trickle of bytes cannot stretch a lookup past its deadline.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, TracebackType
from typing import Literal, Self

import httpx
import pydantic
import structlog

from orchestrator.errors import OrdersError
from orchestrator.logging import mask_phone
from orchestrator.orders.models import LookupResult, Order, normalise_order_number, phone_key

__all__ = ["OrdersApiConfig", "OrdersClient"]

log = structlog.get_logger(__name__)

_Query = Literal["order_number", "phone"]


def _empty() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class OrdersApiConfig:
    """Where and how to reach the shop's orders API, and how to read its answers.

    - `envelope`: the dotted path to the order(s) in the answer (`data`, `result.items`); None accepts
      `{"orders": [...]}`, a bare list or one order object.
    - `fields`: our field -> the shop's (dotted) field, e.g. `{"status": "state", "eta": "deliveryWindow"}`.
    - `field_map`: the older, reversed spelling (the shop's top-level field -> ours), e.g. `{"state": "status"}`.
    - `statuses`: the shop's status value -> ours, e.g. `{"in_transit": "dispatched"}`.
    - `token` goes in `auth_header` as `"<auth_scheme> <token>"` (just the token when the scheme is empty).
    """

    base_url: str
    path: str = "/api/orders"
    order_param: str = "order_number"
    phone_param: str = "phone"
    token: str | None = None
    auth_header: str = "Authorization"
    auth_scheme: str = "Bearer"
    headers: Mapping[str, str] = field(default_factory=_empty)
    timeout_s: float = 2.0
    retries: int = 1
    envelope: str | None = None
    fields: Mapping[str, str] = field(default_factory=_empty)
    field_map: Mapping[str, str] = field(default_factory=_empty)
    statuses: Mapping[str, str] = field(default_factory=_empty)

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if self.retries < 0:
            raise ValueError("retries must not be negative")
        unknown = sorted(set(self.fields) - set(Order.model_fields))
        if unknown:
            known = ", ".join(Order.model_fields)
            raise ValueError(f"unknown order field(s) {', '.join(unknown)} in fields; known: {known}")

    def auth_headers(self) -> dict[str, str]:
        """The headers every request carries: Accept, the configured extras, and the token."""
        headers = {"Accept": "application/json", **self.headers}
        if self.token:
            headers[self.auth_header] = (
                f"{self.auth_scheme} {self.token}" if self.auth_scheme else self.token
            )
        return headers


class OrdersClient:
    """Look orders up by number or by the caller's phone, with a deadline and privacy rules applied.

        async with OrdersClient(OrdersApiConfig(base_url="https://shop.example.com")) as orders:
            result = await orders.by_order_number("dx one oh four two", caller="+254712345678")
            if result.kind == "found":
                print(result.orders[0].status_text)
    """

    def __init__(
        self, config: OrdersApiConfig, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._config = config
        self._http = httpx.AsyncClient(
            base_url=config.base_url,
            headers=config.auth_headers(),
            timeout=httpx.Timeout(config.timeout_s),
            transport=transport,
            follow_redirects=False,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def by_order_number(
        self, order_number: str, *, caller: str | None = None, require_phone_match: bool = False
    ) -> LookupResult:
        """Find one order by its number, spoken or typed; normalised before it is sent.

        Privacy fails closed: unless the shop gives the order's `customer_phone` and it is the
        caller's, only number, status, ETA and courier are returned (no items, no delivery area). A
        withheld caller or an order without `customer_phone` never matches. With
        `require_phone_match` nothing is returned to a non-matching caller: the result is `not_found`.
        """
        number = normalise_order_number(order_number)
        if not number:
            return LookupResult(kind="not_found", orders=(), query="order_number")
        orders = await self._lookup("order_number", number, default_number=number)
        visible = tuple(
            order
            for order in (_visible_to(o, caller, require_phone_match) for o in orders[:1])
            if order is not None
        )
        if orders and not visible:
            log.info("order_phone_mismatch", order_number=number)
        return self._logged(_result(visible, "order_number"), order_number=number)

    async def by_phone(self, phone: str) -> LookupResult:
        """The recent orders of a phone number (E.164), most recent first as the shop sends them."""
        orders = await self._lookup("phone", phone.strip(), default_number=None)
        # The shop answered for this phone; an order carrying another customer's phone is the shop's
        # bug, not a reason to read that customer's items aloud.
        visible = tuple(o for o in (_visible_to(o, phone, False) for o in orders) if o is not None)
        return self._logged(_result(visible, "phone"), phone=mask_phone(phone))

    async def _lookup(
        self, query: _Query, value: str, *, default_number: str | None
    ) -> tuple[Order, ...]:
        """GET the orders for one query value; () for 404, OrdersError for any failure."""
        param = self._config.order_param if query == "order_number" else self._config.phone_param
        response = await self._get(query, {param: value})
        if response.status_code == 404:
            return ()
        try:
            payload = json.loads(response.content)
        except ValueError:
            raise _failed(query, "invalid JSON", status=response.status_code) from None
        try:
            return _parse_orders(payload, self._config, default_number=default_number)
        except OrdersError as exc:
            raise _failed(query, exc.reason, status=response.status_code) from None

    async def _get(self, query: _Query, params: dict[str, str]) -> httpx.Response:
        """One GET with retries: a 2xx or 404 response, else OrdersError."""
        timeout_s = self._config.timeout_s
        attempts = 1 + self._config.retries
        attempt = 0
        while True:
            attempt += 1
            last = attempt >= attempts
            try:
                async with asyncio.timeout(timeout_s):
                    response = await self._http.get(self._config.path, params=params)
            except (TimeoutError, httpx.TimeoutException):
                raise _failed(query, f"timeout after {timeout_s}s") from None
            except httpx.ConnectError as exc:
                if last:
                    raise _failed(query, "connect error") from exc
                log.info("orders_retry", query=query, attempt=attempt, reason="connect error")
                continue
            except httpx.HTTPError as exc:
                raise _failed(query, f"transport error: {type(exc).__name__}") from exc
            status = response.status_code
            if status >= 500 and not last:
                log.info("orders_retry", query=query, attempt=attempt, reason=f"HTTP {status}")
                continue
            if status == 404 or 200 <= status < 300:
                return response
            raise _failed(query, f"HTTP {status}", status=status)

    def _logged(self, result: LookupResult, **fields: str) -> LookupResult:
        log.info(
            "orders_lookup",
            query=result.query,
            kind=result.kind,
            count=len(result.orders),
            **fields,
        )
        return result


def _failed(query: _Query, reason: str, *, status: int | None = None) -> OrdersError:
    log.warning("orders_lookup_failed", query=query, reason=reason, status=status)
    return OrdersError(reason, status=status)


def _result(orders: tuple[Order, ...], query: _Query) -> LookupResult:
    return LookupResult(kind="found" if orders else "not_found", orders=orders, query=query)


def _visible_to(order: Order, caller: str | None, require_match: bool) -> Order | None:
    """The order as this caller may hear it, or None when they may hear nothing (fails closed)."""
    if _same_phone(order.customer_phone, caller):
        return order
    return None if require_match else order.redacted()


# Fewer digits than this cannot tell two subscribers apart.
_MIN_PHONE_DIGITS = 7


def _same_phone(a: str | None, b: str | None) -> bool:
    if not a or not b:
        return False
    key = phone_key(a)
    return len(key) >= _MIN_PHONE_DIGITS and key == phone_key(b)


def _parse_orders(
    payload: object, config: OrdersApiConfig, *, default_number: str | None
) -> tuple[Order, ...]:
    """The orders in an answer: at `config.envelope`, else `{"orders": [...]}`, a bare list or one object."""
    if config.envelope:
        found = _at_path(payload, config.envelope)
        if found is _MISSING:
            raise OrdersError(f"no {config.envelope!r} in the answer (orders.envelope)")
        payload = [] if found is None else found
        raw: list[object] = payload if isinstance(payload, list) else [payload]
    elif isinstance(payload, dict) and isinstance(payload.get("orders"), list):
        raw = payload["orders"]
    elif isinstance(payload, list):
        raw = payload
    elif isinstance(payload, dict):
        raw = [payload]
    else:
        raise OrdersError("unexpected JSON shape")
    return tuple(_parse_order(item, config, default_number) for item in raw)


_MISSING = object()


def _at_path(value: object, path: str) -> object:
    """The value at dotted `path` in nested objects, or _MISSING."""
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _parse_order(item: object, config: OrdersApiConfig, default_number: str | None) -> Order:
    if not isinstance(item, dict):
        raise OrdersError("order is not an object")
    data = {config.field_map.get(key, key): value for key, value in item.items()}
    for ours, theirs in config.fields.items():
        value = _at_path(item, theirs)
        data[ours] = None if value is _MISSING else value
    status = data.get("status")
    if status in (None, ""):
        raise OrdersError(_no_status_reason(item, config))
    if isinstance(status, str):
        data["status"] = config.statuses.get(status, config.statuses.get(status.lower(), status))
    if default_number is not None and data.get("order_number") in (None, ""):
        # Asked by number, a shop may not repeat it back.
        data["order_number"] = default_number
    try:
        return Order.model_validate(data)
    except pydantic.ValidationError as exc:
        fields = sorted({".".join(str(p) for p in err["loc"]) for err in exc.errors()})
        raise OrdersError(f"invalid order: {', '.join(fields)}") from None


def _no_status_reason(item: dict[str, object], config: OrdersApiConfig) -> str:
    """"order without status", with the likely fix when the answer looks wrapped or renamed."""
    reason = "order without status"
    wrappers = [k for k, v in item.items() if isinstance(v, list | dict)]
    if not config.envelope and len(item) == 1 and wrappers:
        return f"{reason} (the answer is wrapped in {wrappers[0]!r}: set orders.envelope)"
    if "status" not in config.fields and item:
        return f"{reason} (fields: {', '.join(sorted(item))}; map one with orders.fields.status)"
    return reason
