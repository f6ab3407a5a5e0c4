"""OrdersClient reading shops that wrap, rename and word things their own way: envelope, fields, statuses,
auth header. Each test runs a tiny fake shop on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web

from orchestrator.errors import OrdersError
from orchestrator.orders import OrdersApiConfig, OrdersClient

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OWNER = "+254712345678"


async def serve(aiohttp_server, handler: Handler, path: str = "/api/orders") -> str:
    """Run a one-route fake shop on 127.0.0.1 and return its base URL."""
    app = web.Application()
    app.router.add_get(path, handler)
    server = await aiohttp_server(app)
    return str(server.make_url("/"))


def bearer_shop(token: str, answer: object) -> Handler:
    """A shop answering `answer` only to requests carrying `Authorization: Bearer <token>`."""

    async def shop(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {token}":
            return web.json_response({"error": "unauthorized"}, status=401)
        return web.json_response(answer)

    return shop


async def test_data_envelope_renamed_fields_and_bearer_auth(aiohttp_server) -> None:
    """`{"data":[{"state":…,"deliveryWindow":…}]}` behind bearer auth is read through the mapping."""
    answer = {
        "data": [
            {
                "ref": "DX1042",
                "state": "in_transit",
                "deliveryWindow": "today 4-6 PM",
                "customer": {"phone": OWNER},
                "area": "Westlands",
            }
        ]
    }
    config = OrdersApiConfig(
        base_url=await serve(aiohttp_server, bearer_shop("t0ken", answer)),
        token="t0ken",  # noqa: S106 - test credential
        envelope="data",
        fields={
            "order_number": "ref",
            "status": "state",
            "eta": "deliveryWindow",
            "customer_phone": "customer.phone",
            "delivery_area": "area",
        },
        statuses={"in_transit": "dispatched"},
    )
    async with OrdersClient(config) as orders:
        result = await orders.by_order_number("DX1042", caller=OWNER)
    order = result.orders[0]
    assert (
        order.order_number,
        order.status,
        order.status_text,
        order.eta,
        order.delivery_area,
    ) == ("DX1042", "dispatched", "dispatched", "today 4-6 PM", "Westlands")


@pytest.mark.parametrize(
    ("envelope", "answer"),
    [
        ("data", {"data": {"status": "packed"}}),
        ("orders", {"orders": [{"status": "packed"}]}),
        ("result.items", {"result": {"items": [{"status": "packed"}], "page": 1}}),
        (None, {"orders": [{"status": "packed"}]}),
        (None, [{"status": "packed"}]),
        (None, {"status": "packed"}),
    ],
)
async def test_every_accepted_shape_is_read(
    aiohttp_server, envelope: str | None, answer: object
) -> None:
    """Each shape docs/orders-api.md lists gives the same order."""

    async def shop(request: web.Request) -> web.Response:
        return web.json_response(answer)

    config = OrdersApiConfig(base_url=await serve(aiohttp_server, shop), envelope=envelope)
    async with OrdersClient(config) as orders:
        result = await orders.by_order_number("PK20931")
    assert [(o.order_number, o.status) for o in result.orders] == [("PK20931", "packed")]


async def test_empty_or_null_envelope_is_not_found(aiohttp_server) -> None:
    """`{"data": []}` and `{"data": null}` mean no such order, not a failure."""
    answers = iter([{"data": []}, {"data": None}])

    async def shop(request: web.Request) -> web.Response:
        return web.json_response(next(answers))

    config = OrdersApiConfig(base_url=await serve(aiohttp_server, shop), envelope="data")
    async with OrdersClient(config) as orders:
        assert (await orders.by_order_number("DX1042")).kind == "not_found"
        assert (await orders.by_phone(OWNER)).kind == "not_found"


async def test_missing_envelope_is_a_failed_lookup_naming_it(aiohttp_server) -> None:
    """An answer without the configured envelope fails with the setting to check."""

    async def shop(request: web.Request) -> web.Response:
        return web.json_response({"items": []})

    config = OrdersApiConfig(base_url=await serve(aiohttp_server, shop), envelope="data")
    async with OrdersClient(config) as orders:
        with pytest.raises(OrdersError, match=r"no 'data' in the answer \(orders.envelope\)"):
            await orders.by_order_number("DX1042")


async def test_wrapped_answer_without_envelope_suggests_the_setting(aiohttp_server) -> None:
    """The failure for an unconfigured wrapper says which envelope to set."""

    async def shop(request: web.Request) -> web.Response:
        return web.json_response({"data": [{"state": "packed"}]})

    async with OrdersClient(OrdersApiConfig(base_url=await serve(aiohttp_server, shop))) as orders:
        with pytest.raises(OrdersError, match=r"wrapped in 'data': set orders\.envelope"):
            await orders.by_order_number("DX1042")


async def test_renamed_status_without_a_field_map_lists_the_fields(aiohttp_server) -> None:
    """An order whose status has another name fails naming the fields the shop did send."""

    async def shop(request: web.Request) -> web.Response:
        return web.json_response({"ref": "DX1042", "state": "packed"})

    async with OrdersClient(OrdersApiConfig(base_url=await serve(aiohttp_server, shop))) as orders:
        with pytest.raises(
            OrdersError, match=r"fields: ref, state; map one with orders.fields.status"
        ):
            await orders.by_order_number("DX1042")


async def test_status_map_is_case_insensitive_and_keeps_unknown_values(aiohttp_server) -> None:
    """A mapped status matches in any case; an unmapped one reaches the model as the shop wrote it."""
    answers = iter([{"status": "IN_TRANSIT"}, {"status": "awaiting_pickup"}])

    async def shop(request: web.Request) -> web.Response:
        return web.json_response(next(answers))

    config = OrdersApiConfig(
        base_url=await serve(aiohttp_server, shop), statuses={"in_transit": "dispatched"}
    )
    async with OrdersClient(config) as orders:
        assert (await orders.by_order_number("DX1042")).orders[0].status == "dispatched"
        second = (await orders.by_order_number("DX1042")).orders[0]
    assert (second.status, second.status_text) == ("awaiting_pickup", "awaiting pickup")


async def test_custom_auth_header_without_scheme(aiohttp_server) -> None:
    """A shop keyed by `X-Api-Key: <token>` gets exactly that header, and any extra headers."""
    seen: list[tuple[str | None, str | None, str | None]] = []

    async def shop(request: web.Request) -> web.Response:
        headers = request.headers
        seen.append((headers.get("X-Api-Key"), headers.get("Authorization"), headers.get("X-Shop")))
        return web.json_response({"status": "packed"})

    config = OrdersApiConfig(
        base_url=await serve(aiohttp_server, shop),
        token="k3y",  # noqa: S106 - test credential
        auth_header="X-Api-Key",
        auth_scheme="",
        headers={"X-Shop": "duka"},
    )
    async with OrdersClient(config) as orders:
        await orders.by_order_number("DX1042")
    assert seen == [("k3y", None, "duka")]


def test_unknown_field_in_map_is_refused() -> None:
    """A field map naming a field the order model lacks is refused when the config is built."""
    with pytest.raises(ValueError, match="unknown order field"):
        OrdersApiConfig(base_url="http://shop", fields={"colour": "hue"})


# --- privacy fails closed (docs/orders-api.md) --------------------------------------------------


FULL = {
    "order_number": "DX1042",
    "status": "out_for_delivery",
    "eta": "today",
    "courier": "PikiPiki",
    "items": ["USB-C charger"],
    "delivery_area": "Westlands",
}


@pytest.mark.parametrize(
    ("order", "caller"),
    [
        (FULL, OWNER),  # the shop sends no customer_phone: nobody can be matched
        ({**FULL, "customer_phone": OWNER}, None),  # a withheld caller
        ({**FULL, "customer_phone": OWNER}, "+254700111222"),  # somebody else
        ({**FULL, "customer_phone": "678"}, "+254000000678"),  # too few digits to compare
    ],
)
async def test_unmatched_caller_hears_no_items_or_area(
    aiohttp_server, order: dict, caller: str | None
) -> None:
    """Without a proven phone match, items and delivery area are dropped; status and ETA stay."""

    async def shop(request: web.Request) -> web.Response:
        return web.json_response(order)

    async with OrdersClient(OrdersApiConfig(base_url=await serve(aiohttp_server, shop))) as orders:
        result = await orders.by_order_number("DX1042", caller=caller)
    seen = result.orders[0]
    assert (seen.items, seen.delivery_area, seen.customer_phone) == ([], None, None)
    assert (seen.status, seen.eta, seen.courier) == ("out_for_delivery", "today", "PikiPiki")
    assert seen.as_context()["delivery_area"] == ""


async def test_no_customer_phone_with_require_match_is_not_found(aiohttp_server) -> None:
    """With require_phone_match, an order the shop cannot tie to a phone is not revealed at all."""

    async def shop(request: web.Request) -> web.Response:
        return web.json_response(FULL)

    async with OrdersClient(OrdersApiConfig(base_url=await serve(aiohttp_server, shop))) as orders:
        result = await orders.by_order_number("DX1042", caller=OWNER, require_phone_match=True)
    assert result.kind == "not_found"


async def test_by_phone_order_without_customer_phone_is_redacted(aiohttp_server) -> None:
    """By phone, an order with no customer_phone is redacted too: the shop's answer alone proves nothing."""

    async def shop(request: web.Request) -> web.Response:
        return web.json_response({"orders": [FULL]})

    async with OrdersClient(OrdersApiConfig(base_url=await serve(aiohttp_server, shop))) as orders:
        result = await orders.by_phone(OWNER)
    assert (result.orders[0].items, result.orders[0].delivery_area) == ([], None)


async def test_matching_caller_hears_everything(aiohttp_server) -> None:
    """The order's owner, in any spelling of their number, gets the delivery area and items."""

    async def shop(request: web.Request) -> web.Response:
        return web.json_response({**FULL, "customer_phone": "0712 345 678"})

    async with OrdersClient(OrdersApiConfig(base_url=await serve(aiohttp_server, shop))) as orders:
        result = await orders.by_order_number("DX1042", caller=OWNER)
    assert (result.orders[0].items, result.orders[0].delivery_area) == (
        ["USB-C charger"],
        "Westlands",
    )
