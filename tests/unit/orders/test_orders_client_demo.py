"""OrdersClient against the embedded demo backend, over a real loopback socket."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from structlog.testing import capture_logs

from orchestrator.errors import OrdersError
from orchestrator.orders import (
    DEMO_BACKEND,
    DemoFault,
    OrdersApiConfig,
    OrdersClient,
    demo_orders_app,
)


async def test_client_finds_order_for_its_customer(aiohttp_server) -> None:
    """The customer who placed the order hears everything about it."""
    server = await aiohttp_server(demo_orders_app())
    async with OrdersClient(OrdersApiConfig(base_url=str(server.make_url("/")))) as orders:
        result = await orders.by_order_number("DX1042", caller="+254712345678")
    assert result.kind == "found"
    assert result.query == "order_number"
    order = result.orders[0]
    assert order.status_text == "out for delivery"
    assert order.eta == "today between 4 and 6 PM"
    assert order.courier == "PikiPiki"
    assert order.items == ["Tecno Spark 20 phone case", "USB-C charger"]
    assert order.delivery_area == "Westlands"


async def test_client_matches_caller_in_local_format(aiohttp_server) -> None:
    """A caller ID in local format (07...) matches the order's international number."""
    server = await aiohttp_server(demo_orders_app())
    async with OrdersClient(OrdersApiConfig(base_url=str(server.make_url("/")))) as orders:
        result = await orders.by_order_number("PK20931", caller="0722 000 111")
    assert result.orders[0].items == ["Office chair"]


async def test_client_reads_spoken_order_number(aiohttp_server) -> None:
    """An order number as transcribed from speech is normalised before it is sent."""
    server = await aiohttp_server(demo_orders_app())
    async with OrdersClient(OrdersApiConfig(base_url=str(server.make_url("/")))) as orders:
        result = await orders.by_order_number("double five five five five", caller="+254733999888")
    assert result.kind == "found"
    assert result.orders[0].status == "failed_delivery"


async def test_client_redacts_order_for_another_caller(aiohttp_server) -> None:
    """Another caller hears only number, status, ETA and courier: never items or the area."""
    server = await aiohttp_server(demo_orders_app())
    async with OrdersClient(OrdersApiConfig(base_url=str(server.make_url("/")))) as orders:
        result = await orders.by_order_number("DX1042", caller="+254700111222")
    order = result.orders[0]
    assert (order.order_number, order.status) == ("DX1042", "out_for_delivery")
    assert order.courier == "PikiPiki"
    assert order.eta == "today between 4 and 6 PM"
    assert order.items == []
    assert order.delivery_area is None
    assert order.customer_phone is None


async def test_client_redacts_order_for_unknown_caller(aiohttp_server) -> None:
    """A withheld caller ID cannot prove ownership, so the order is redacted."""
    server = await aiohttp_server(demo_orders_app())
    async with OrdersClient(OrdersApiConfig(base_url=str(server.make_url("/")))) as orders:
        result = await orders.by_order_number("DX1042")
    assert result.kind == "found"
    assert result.orders[0].items == []


async def test_client_require_phone_match_hides_other_customers_order(aiohttp_server) -> None:
    """With require_phone_match, another customer's order is reported as not found."""
    server = await aiohttp_server(demo_orders_app())
    async with OrdersClient(OrdersApiConfig(base_url=str(server.make_url("/")))) as orders:
        hidden = await orders.by_order_number(
            "DX1042", caller="+254700111222", require_phone_match=True
        )
        own = await orders.by_order_number(
            "DX1042", caller="+254712345678", require_phone_match=True
        )
    assert hidden.kind == "not_found"
    assert hidden.orders == ()
    assert own.kind == "found"


async def test_client_unknown_order_is_not_found(aiohttp_server) -> None:
    """A 404 from the shop is an ordinary not_found result, not an error."""
    server = await aiohttp_server(demo_orders_app())
    async with OrdersClient(OrdersApiConfig(base_url=str(server.make_url("/")))) as orders:
        result = await orders.by_order_number("ZZ404", caller="+254712345678")
    assert result.kind == "not_found"


async def test_client_empty_order_number_is_not_found_without_asking(aiohttp_server) -> None:
    """Nothing left after normalisation means not_found, and the shop is not asked at all."""
    app = demo_orders_app()
    server = await aiohttp_server(app)
    app[DEMO_BACKEND].fault = DemoFault.ERROR_5XX
    async with OrdersClient(OrdersApiConfig(base_url=str(server.make_url("/")))) as orders:
        result = await orders.by_order_number("hash dash")
    assert result.kind == "not_found"


async def test_client_by_phone_lists_recent_orders(aiohttp_server) -> None:
    """A caller's orders come back most recent first."""
    server = await aiohttp_server(demo_orders_app())
    async with OrdersClient(OrdersApiConfig(base_url=str(server.make_url("/")))) as orders:
        result = await orders.by_phone("+254712345678")
    assert result.kind == "found"
    assert result.query == "phone"
    assert [o.order_number for o in result.orders] == ["DX1042", "DX1043"]
    assert result.orders[1].eta_text == ""


async def test_client_by_phone_without_orders_is_not_found(aiohttp_server) -> None:
    """An empty order list is not_found."""
    server = await aiohttp_server(demo_orders_app())
    async with OrdersClient(OrdersApiConfig(base_url=str(server.make_url("/")))) as orders:
        result = await orders.by_phone("+254700111222")
    assert result.kind == "not_found"
    assert result.orders == ()


async def test_client_reaches_demo_mounted_as_subapp(aiohttp_server) -> None:
    """Mounted under a prefix in a bigger app, the demo is reached with the prefix in base_url."""
    main = web.Application()
    main.add_subapp("/demo", demo_orders_app())
    server = await aiohttp_server(main)
    async with OrdersClient(OrdersApiConfig(base_url=str(server.make_url("/demo")))) as orders:
        result = await orders.by_order_number("PK20931", caller="+254722000111")
    assert result.orders[0].courier == "Sendy"


async def test_client_5xx_is_retried_once_then_fails(aiohttp_server) -> None:
    """A backend answering 503 is asked twice, then the lookup fails with the HTTP status."""
    app = demo_orders_app()
    server = await aiohttp_server(app)
    app[DEMO_BACKEND].fault = DemoFault.ERROR_5XX
    async with OrdersClient(OrdersApiConfig(base_url=str(server.make_url("/")))) as orders:
        with capture_logs() as logs, pytest.raises(OrdersError) as failure:
            await orders.by_order_number("DX1042")
    assert failure.value.reason == "HTTP 503"
    assert failure.value.status == 503
    assert [e["event"] for e in logs] == ["orders_retry", "orders_lookup_failed"]


async def test_client_bad_json_fails(aiohttp_server) -> None:
    """A 200 whose body is not JSON is a failed lookup."""
    app = demo_orders_app()
    server = await aiohttp_server(app)
    app[DEMO_BACKEND].fault = DemoFault.BAD_JSON
    async with OrdersClient(OrdersApiConfig(base_url=str(server.make_url("/")))) as orders:
        with pytest.raises(OrdersError, match="invalid JSON"):
            await orders.by_phone("+254712345678")


@pytest.mark.looptime
async def test_client_slow_backend_times_out_without_retry(aiohttp_server) -> None:
    """A backend slower than timeout_s fails after exactly one attempt's deadline, not two."""
    app = demo_orders_app()
    server = await aiohttp_server(app)
    app[DEMO_BACKEND].fault = DemoFault.SLOW
    loop = asyncio.get_running_loop()
    async with OrdersClient(OrdersApiConfig(base_url=str(server.make_url("/")))) as orders:
        started = loop.time()
        with pytest.raises(OrdersError) as failure:
            await orders.by_order_number("DX1042")
        elapsed = loop.time() - started
    assert failure.value.reason == "timeout after 2.0s"
    assert failure.value.status is None
    assert elapsed == pytest.approx(2.0)


async def test_client_logs_never_hold_a_full_phone_number(aiohttp_server) -> None:
    """Lookup logs mask phone numbers down to their last three digits."""
    server = await aiohttp_server(demo_orders_app())
    async with OrdersClient(OrdersApiConfig(base_url=str(server.make_url("/")))) as orders:
        with capture_logs() as logs:
            await orders.by_phone("+254712345678")
            await orders.by_order_number("DX1042", caller="+254712345678")
    assert logs
    for event in logs:
        for value in event.values():
            assert "712345678" not in str(value)
    assert logs[0]["phone"].endswith("678")
