"""OrdersClient against shops unlike the demo: a tiny fake shop API per test, over loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import httpx
import pytest
from aiohttp import web

from orchestrator.errors import OrdersError
from orchestrator.orders import OrdersApiConfig, OrdersClient

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

DX1042 = {"order_number": "DX1042", "status": "out_for_delivery", "customer_phone": "+254712345678"}


async def serve(aiohttp_server, handler: Handler, path: str = "/api/orders") -> str:
    """Run a one-route fake shop on 127.0.0.1 and return its base URL."""
    app = web.Application()
    app.router.add_get(path, handler)
    server = await aiohttp_server(app)
    return str(server.make_url("/"))


async def test_client_maps_shop_field_and_query_names(aiohttp_server) -> None:
    """A shop with its own path, query name and field names is read through the field_map."""
    seen: list[dict[str, str]] = []

    async def shop(request: web.Request) -> web.Response:
        seen.append(dict(request.query))
        return web.json_response(
            {"ref": "DX1042", "state": "in_transit", "rider": "Sendy", "expected": "by 5 PM"}
        )

    config = OrdersApiConfig(
        base_url=await serve(aiohttp_server, shop, "/v2/tracking"),
        path="/v2/tracking",
        order_param="ref",
        field_map={"ref": "order_number", "state": "status", "rider": "courier", "expected": "eta"},
    )
    async with OrdersClient(config) as orders:
        result = await orders.by_order_number("dx 1042", caller="+254712345678")
    assert seen == [{"ref": "DX1042"}]
    order = result.orders[0]
    assert (order.status, order.status_text, order.courier, order.eta) == (
        "in_transit", "in transit", "Sendy", "by 5 PM"
    )


async def test_client_by_phone_accepts_bare_list(aiohttp_server) -> None:
    """By phone, a bare JSON list of orders is accepted."""

    async def shop(request: web.Request) -> web.Response:
        assert request.query["phone"] == "+254712345678"
        older = {**DX1042, "order_number": "DX1043", "status": "delivered"}
        return web.json_response([DX1042, older])

    async with OrdersClient(OrdersApiConfig(base_url=await serve(aiohttp_server, shop))) as orders:
        result = await orders.by_phone("+254712345678")
    assert [o.order_number for o in result.orders] == ["DX1042", "DX1043"]


async def test_client_by_phone_accepts_single_object(aiohttp_server) -> None:
    """By phone, a single order object is accepted as a list of one."""

    async def shop(request: web.Request) -> web.Response:
        return web.json_response(DX1042)

    async with OrdersClient(OrdersApiConfig(base_url=await serve(aiohttp_server, shop))) as orders:
        result = await orders.by_phone("+254712345678")
    assert result.kind == "found"
    assert [o.order_number for o in result.orders] == ["DX1042"]


async def test_client_by_phone_redacts_orders_of_another_number(aiohttp_server) -> None:
    """An order the shop returns for the wrong phone number is redacted rather than read out."""

    async def shop(request: web.Request) -> web.Response:
        return web.json_response({"orders": [{**DX1042, "items": ["USB-C charger"]}]})

    async with OrdersClient(OrdersApiConfig(base_url=await serve(aiohttp_server, shop))) as orders:
        result = await orders.by_phone("+254733999888")
    assert result.orders[0].items == []


async def test_client_fills_order_number_the_shop_left_out(aiohttp_server) -> None:
    """Asked by number, a reply without order_number takes the number that was asked for."""

    async def shop(request: web.Request) -> web.Response:
        return web.json_response({"status": "packed"})

    async with OrdersClient(OrdersApiConfig(base_url=await serve(aiohttp_server, shop))) as orders:
        result = await orders.by_order_number("pk-20931")
    assert result.orders[0].order_number == "PK20931"


async def test_client_sends_bearer_token(aiohttp_server) -> None:
    """A configured token goes in the Authorization header."""

    async def shop(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer s3cret":
            return web.json_response({"error": "unauthorized"}, status=401)
        return web.json_response(DX1042)

    config = OrdersApiConfig(base_url=await serve(aiohttp_server, shop), token="s3cret")  # noqa: S106 - test credential
    async with OrdersClient(config) as orders:
        result = await orders.by_order_number("DX1042", caller="+254712345678")
    assert result.kind == "found"


async def test_client_401_fails_without_retry(aiohttp_server) -> None:
    """A 4xx other than 404 fails at once: asking again would get the same answer."""
    hits: list[int] = []

    async def shop(request: web.Request) -> web.Response:
        hits.append(1)
        return web.json_response({"error": "unauthorized"}, status=401)

    async with OrdersClient(OrdersApiConfig(base_url=await serve(aiohttp_server, shop))) as orders:
        with pytest.raises(OrdersError) as failure:
            await orders.by_order_number("DX1042")
    assert (failure.value.reason, failure.value.status) == ("HTTP 401", 401)
    assert len(hits) == 1


async def test_client_500_then_200_succeeds_on_retry(aiohttp_server) -> None:
    """One 5xx is retried, and the retry's answer is used."""
    hits: list[int] = []

    async def shop(request: web.Request) -> web.Response:
        hits.append(1)
        if len(hits) == 1:
            return web.json_response({"error": "boom"}, status=500)
        return web.json_response(DX1042)

    async with OrdersClient(OrdersApiConfig(base_url=await serve(aiohttp_server, shop))) as orders:
        result = await orders.by_order_number("DX1042", caller="+254712345678")
    assert result.kind == "found"
    assert len(hits) == 2


@pytest.mark.parametrize(("retries", "expected_hits"), [(0, 1), (1, 2), (2, 3)])
async def test_client_5xx_retries_are_bounded(
    aiohttp_server, retries: int, expected_hits: int
) -> None:
    """A shop that keeps failing is asked 1 + retries times, then the lookup fails."""
    hits: list[int] = []

    async def shop(request: web.Request) -> web.Response:
        hits.append(1)
        return web.json_response({"error": "boom"}, status=500)

    config = OrdersApiConfig(base_url=await serve(aiohttp_server, shop), retries=retries)
    async with OrdersClient(config) as orders:
        with pytest.raises(OrdersError, match="HTTP 500"):
            await orders.by_phone("+254712345678")
    assert len(hits) == expected_hits


async def test_client_invalid_json_fails(aiohttp_server) -> None:
    """A 200 that is not JSON is a failed lookup, carrying the status it came with."""

    async def shop(request: web.Request) -> web.Response:
        return web.Response(text="<html>Maintenance</html>", content_type="text/html")

    async with OrdersClient(OrdersApiConfig(base_url=await serve(aiohttp_server, shop))) as orders:
        with pytest.raises(OrdersError) as failure:
            await orders.by_order_number("DX1042")
    assert (failure.value.reason, failure.value.status) == ("invalid JSON", 200)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"order_number": "DX1042", "eta": "today"}, "order without status"),
        ({"order_number": "DX1042", "status": None}, "order without status"),
        ({"order_number": "DX1042", "status": "packed", "items": 7}, "invalid order: items"),
        ({"orders": ["DX1042"]}, "order is not an object"),
        ("DX1042", "unexpected JSON shape"),
    ],
)
async def test_client_malformed_order_fails(aiohttp_server, payload: object, reason: str) -> None:
    """An answer that is JSON but not an order is a failed lookup with a short reason."""

    async def shop(request: web.Request) -> web.Response:
        return web.json_response(payload)

    async with OrdersClient(OrdersApiConfig(base_url=await serve(aiohttp_server, shop))) as orders:
        with pytest.raises(OrdersError) as failure:
            await orders.by_order_number("DX1042")
    assert failure.value.reason.startswith(reason)


@pytest.mark.looptime
async def test_client_slow_shop_times_out_at_deadline(aiohttp_server) -> None:
    """A shop slower than timeout_s fails at the deadline, on a fast-forwarded clock."""

    async def shop(request: web.Request) -> web.Response:
        await asyncio.sleep(60)
        return web.json_response(DX1042)

    config = OrdersApiConfig(base_url=await serve(aiohttp_server, shop), timeout_s=1.5)
    loop = asyncio.get_running_loop()
    async with OrdersClient(config) as orders:
        started = loop.time()
        with pytest.raises(OrdersError, match=r"^timeout after 1\.5s$"):
            await orders.by_phone("+254712345678")
        assert loop.time() - started == pytest.approx(1.5)


@pytest.mark.looptime
async def test_client_trickling_shop_cannot_stretch_the_deadline(aiohttp_server) -> None:
    """A shop that sends its body a byte at a time still fails at timeout_s overall."""

    async def shop(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for byte in b'{"order_number": "DX1042", "status": "packed"}':
            await asyncio.sleep(0.5)
            await response.write(bytes([byte]))
        return response

    config = OrdersApiConfig(base_url=await serve(aiohttp_server, shop), timeout_s=2.0)
    loop = asyncio.get_running_loop()
    async with OrdersClient(config) as orders:
        started = loop.time()
        with pytest.raises(OrdersError, match="timeout"):
            await orders.by_order_number("DX1042")
        assert loop.time() - started == pytest.approx(2.0)


async def test_client_connect_error_is_retried_then_fails() -> None:
    """Nothing listening on the port: the connect error is retried, then reported."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with OrdersClient(OrdersApiConfig(base_url=f"http://127.0.0.1:{port}")) as orders:
        with pytest.raises(OrdersError, match="connect error"):
            await orders.by_order_number("DX1042")


async def test_client_translates_other_transport_errors() -> None:
    """Any other httpx failure becomes an OrdersError naming it, never a raw httpx exception."""

    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("server hung up", request=request)

    config = OrdersApiConfig(base_url="http://shop.invalid")
    async with OrdersClient(config, transport=httpx.MockTransport(broken)) as orders:
        with pytest.raises(OrdersError, match="transport error: RemoteProtocolError"):
            await orders.by_phone("+254712345678")


@pytest.mark.parametrize(
    "error",
    [httpx.ConnectError, httpx.ConnectTimeout, httpx.ReadTimeout, httpx.ReadError,
     httpx.WriteError, httpx.RemoteProtocolError, httpx.LocalProtocolError, httpx.ProxyError,
     httpx.UnsupportedProtocol, httpx.PoolTimeout, httpx.DecodingError, httpx.TooManyRedirects],
)
async def test_client_every_httpx_error_becomes_orders_error(error: type[httpx.HTTPError]) -> None:
    """Each httpx error class the transport can raise is translated to OrdersError."""

    def broken(request: httpx.Request) -> httpx.Response:
        raise error("injected", request=request)

    config = OrdersApiConfig(base_url="http://shop.invalid")
    async with OrdersClient(config, transport=httpx.MockTransport(broken)) as orders:
        with pytest.raises(OrdersError):
            await orders.by_order_number("DX1042")


def test_orders_api_config_rejects_nonsense() -> None:
    """A non-positive timeout or negative retry count is refused when the config is built."""
    with pytest.raises(ValueError, match="timeout_s"):
        OrdersApiConfig(base_url="http://shop", timeout_s=0)
    with pytest.raises(ValueError, match="retries"):
        OrdersApiConfig(base_url="http://shop", retries=-1)
