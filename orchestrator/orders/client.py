"""The shop's orders API over HTTP, with a deadline: `OrdersClient` -> `LookupResult`.

Follows the orders API contract (reference/orders-api.md) by default; base URL, path, query names,
bearer token and field names are configurable because every shop's backend differs. httpx errors
are translated here and nowhere else. Retry policy, and why:

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


@dataclass(frozen=True, slots=True, kw_only=True)
class OrdersApiConfig:
    """Where and how to reach the shop's orders API.

    `field_map` renames the shop's fields to ours, e.g. `{"state": "status"}`.
    """

    base_url: str
    path: str = "/api/orders"
    order_param: str = "order_number"
    phone_param: str = "phone"
    token: str | None = None
    timeout_s: float = 2.0
    retries: int = 1
    field_map: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if self.retries < 0:
            raise ValueError("retries must not be negative")


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
        headers = {"Accept": "application/json"}
        if config.token:
            headers["Authorization"] = f"Bearer {config.token}"
        self._http = httpx.AsyncClient(
            base_url=config.base_url,
            headers=headers,
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

        When the shop gives the order's `customer_phone` and it is not the caller's (an unknown
        caller never matches), only number, status, ETA and courier are returned. With
        `require_phone_match` nothing is: the result is `not_found`, as it is when the shop gives
        no phone to check against.
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
            return _parse_orders(payload, self._config.field_map, default_number=default_number)
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
    """The order as this caller may hear it, or None when they may hear nothing."""
    if order.customer_phone and caller and phone_key(order.customer_phone) == phone_key(caller):
        return order
    if require_match:
        return None
    if order.customer_phone:
        return order.redacted()
    return order


def _parse_orders(
    payload: object, field_map: Mapping[str, str], *, default_number: str | None
) -> tuple[Order, ...]:
    """Accept `{"orders": [...]}`, a bare list, or one order object."""
    if isinstance(payload, dict) and isinstance(payload.get("orders"), list):
        raw: list[object] = payload["orders"]
    elif isinstance(payload, list):
        raw = payload
    elif isinstance(payload, dict):
        raw = [payload]
    else:
        raise OrdersError("unexpected JSON shape")
    return tuple(_parse_order(item, field_map, default_number) for item in raw)


def _parse_order(item: object, field_map: Mapping[str, str], default_number: str | None) -> Order:
    if not isinstance(item, dict):
        raise OrdersError("order is not an object")
    data = {field_map.get(key, key): value for key, value in item.items()}
    if data.get("status") in (None, ""):
        raise OrdersError("order without status")
    if default_number is not None and data.get("order_number") in (None, ""):
        # Asked by number, a shop may not repeat it back.
        data["order_number"] = default_number
    try:
        return Order.model_validate(data)
    except pydantic.ValidationError as exc:
        fields = sorted({".".join(str(p) for p in err["loc"]) for err in exc.errors()})
        raise OrdersError(f"invalid order: {', '.join(fields)}") from None
