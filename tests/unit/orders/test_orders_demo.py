"""The embedded demo orders backend serves the orders API contract, and misbehaves on request."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from orchestrator.orders import (
    DEFAULT_SEED,
    DEMO_BACKEND,
    DemoFault,
    DemoOrdersBackend,
    demo_orders_app,
)


def test_demo_fixture_holds_the_scripted_call_orders() -> None:
    """The seed has the orders scripted calls rely on, and every status of the contract."""
    orders = {o["order_number"]: o for o in json.loads(DEFAULT_SEED.read_text())["orders"]}
    assert orders["DX1042"]["customer_phone"] == "+254712345678"
    assert orders["DX1042"]["status"] == "out_for_delivery"
    assert orders["DX1043"]["status"] == "delivered"
    assert orders["PK20931"]["courier"] == "Sendy"
    assert orders["55555"]["eta"] == "we will try again on Monday"
    assert not [o for o in orders.values() if o["customer_phone"] == "+254700111222"]
    assert {o["status"] for o in orders.values()} >= {
        "pending", "confirmed", "packed", "dispatched", "out_for_delivery",
        "delivered", "failed_delivery", "cancelled", "returned",
    }


async def test_demo_order_by_number_is_normalised(aiohttp_client) -> None:
    """A lowercase, dashed order number finds the stored order."""
    client = await aiohttp_client(demo_orders_app())
    response = await client.get("/api/orders", params={"order_number": "dx-1042"})
    assert response.status == 200
    body = await response.json()
    assert body["order_number"] == "DX1042"
    assert body["items"] == ["Tecno Spark 20 phone case", "USB-C charger"]


async def test_demo_unknown_order_is_404(aiohttp_client) -> None:
    """An unknown order number answers 404 with the contract's error body."""
    client = await aiohttp_client(demo_orders_app())
    response = await client.get("/api/orders", params={"order_number": "ZZ999"})
    assert response.status == 404
    assert await response.json() == {"error": "not_found"}


async def test_demo_orders_by_phone_most_recent_first(aiohttp_client) -> None:
    """A phone lookup, in any spelling of the number, lists that customer's orders newest first."""
    client = await aiohttp_client(demo_orders_app())
    response = await client.get("/api/orders", params={"phone": "0712 345 678"})
    body = await response.json()
    assert [o["order_number"] for o in body["orders"]] == ["DX1042", "DX1043"]


async def test_demo_phone_without_orders_is_empty_list(aiohttp_client) -> None:
    """A phone with no orders answers 200 with an empty list."""
    client = await aiohttp_client(demo_orders_app())
    response = await client.get("/api/orders", params={"phone": "+254700111222"})
    assert response.status == 200
    assert await response.json() == {"orders": []}


async def test_demo_without_query_is_400(aiohttp_client) -> None:
    """Neither order_number nor phone is a bad request."""
    client = await aiohttp_client(demo_orders_app())
    response = await client.get("/api/orders")
    assert response.status == 400


async def test_demo_backend_fault_applies_to_every_request(aiohttp_client) -> None:
    """Setting the backend's fault through its AppKey makes every request fail until it is reset."""
    app = demo_orders_app()
    client = await aiohttp_client(app)
    app[DEMO_BACKEND].fault = DemoFault.ERROR_5XX
    for _ in range(2):
        response = await client.get("/api/orders", params={"order_number": "DX1042"})
        assert response.status == 503
        assert await response.json() == {"error": "service_unavailable"}
    app[DEMO_BACKEND].fault = DemoFault.HEALTHY
    assert (await client.get("/api/orders", params={"order_number": "DX1042"})).status == 200


async def test_demo_fault_header_applies_to_one_request(aiohttp_client) -> None:
    """X-Demo-Fault breaks only the request that carries it."""
    client = await aiohttp_client(demo_orders_app())
    broken = await client.get(
        "/api/orders", params={"order_number": "DX1042"}, headers={"X-Demo-Fault": "bad_json"}
    )
    assert broken.status == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(await broken.text())
    healthy = await client.get("/api/orders", params={"order_number": "DX1042"})
    assert (await healthy.json())["status"] == "out_for_delivery"


async def test_demo_fault_query_parameter_is_accepted(aiohttp_client) -> None:
    """`?fault=5xx` works like the header, for clients that cannot set headers."""
    client = await aiohttp_client(demo_orders_app())
    response = await client.get("/api/orders", params={"order_number": "DX1042", "fault": "5xx"})
    assert response.status == 503


async def test_demo_unknown_fault_is_400(aiohttp_client) -> None:
    """A misspelt fault name is refused rather than silently ignored."""
    client = await aiohttp_client(demo_orders_app())
    response = await client.get(
        "/api/orders", params={"order_number": "DX1042"}, headers={"X-Demo-Fault": "explode"}
    )
    assert response.status == 400


@pytest.mark.looptime
async def test_demo_slow_fault_sleeps_on_the_loop_clock(aiohttp_client) -> None:
    """The slow fault answers after `slow_s` of loop time, which a fast-forwarded clock skips."""
    client = await aiohttp_client(demo_orders_app())
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await client.get(
        "/api/orders", params={"order_number": "DX1042"}, headers={"X-Demo-Fault": "timeout"}
    )
    assert response.status == 200
    assert loop.time() - started == pytest.approx(30.0)


async def test_demo_database_file_serves_orders_added_by_hand(
    aiohttp_client, tmp_path: Path
) -> None:
    """Orders an operator adds to the database file are served without a restart."""
    db_path = tmp_path / "orders.sqlite3"
    client = await aiohttp_client(demo_orders_app(db_path))
    order = {"order_number": "NEW1", "status": "packed", "customer_phone": "+254700111222"}

    def add_order() -> None:
        with sqlite3.connect(db_path) as db:
            db.execute(
                "INSERT INTO orders VALUES (?, ?, ?, ?)",
                ("NEW1", "700111222", 0.0, json.dumps(order)),
            )
        db.close()

    await asyncio.to_thread(add_order)
    response = await client.get("/api/orders", params={"phone": "+254700111222"})
    assert [o["order_number"] for o in (await response.json())["orders"]] == ["NEW1"]


async def test_demo_backend_reseeding_keeps_one_row_per_order(tmp_path: Path) -> None:
    """Seeding an existing database file again updates orders instead of duplicating them."""
    db_path = tmp_path / "orders.sqlite3"
    for _ in range(2):
        backend = await asyncio.to_thread(
            DemoOrdersBackend.from_fixture, DEFAULT_SEED, db_path=db_path
        )
        orders = await backend.by_phone("+254712345678")
        backend.close()
    assert [o["order_number"] for o in orders] == ["DX1042", "DX1043"]
