"""A whole call against the shop's own orders API, read through the flow's `orders:` mapping, not Python.

The fake shop on loopback answers `{"data":[{"state":…,"deliveryWindow":…}]}` only with the bearer token.
"""

from __future__ import annotations

import pytest
from aiohttp import web

from orchestrator.flow import load_flow_text
from orchestrator.script import CallScript
from orchestrator.settings import Settings
from orchestrator.testing import run_scripted_call
from tests.flows import TESTS

FLOW = TESTS / "flows" / "sms_tool.yaml"
ORDERS_SECTION = """
orders:
  path: /v2/orders
  order_param: ref
  envelope: data
  fields: {order_number: ref, status: state, eta: deliveryWindow, customer_phone: customer.phone,
           delivery_area: area}
  statuses: {in_transit: dispatched}
"""
CALLER = "+254712345678"

SCRIPT = CallScript.model_validate(
    {
        "title": "The caller's order is read from the shop's own API",
        "caller": CALLER,
        "turns": [
            {"agent": [{"say": "What is your order number?"}]},
            {"caller": "It is D X one oh four two."},
            {
                "agent": [
                    {"tool": "lookup_order", "args": {"order_number": "DX1042"}},
                    {
                        "say": "It is {{ result.order.status_text }}, {{ result.order.eta }},"
                        " to {{ result.order.delivery_area }}."
                    },
                ]
            },
            {"caller": "Thanks, bye."},
            {"agent": [{"say": "Goodbye."}, {"tool": "end_call"}]},
        ],
    }
)


async def shop_api(aiohttp_server, owner: str | None, seen: list[dict[str, str]]) -> str:
    async def orders(request: web.Request) -> web.Response:
        seen.append(dict(request.query))
        if request.headers.get("Authorization") != "Bearer shop-t0ken":
            return web.json_response({"error": "unauthorized"}, status=401)
        order: dict[str, object] = {
            "ref": request.query.get("ref") or "DX1042",
            "state": "in_transit",
            "deliveryWindow": "today 4-6 PM",
            "area": "Westlands",
        }
        if owner is not None:
            order["customer"] = {"phone": owner}
        return web.json_response({"data": [order]})

    app = web.Application()
    app.router.add_get("/v2/orders", orders)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


def agent_lines(record) -> list[str]:
    return [e.text for e in record.transcript.entries if e.kind == "agent"]


@pytest.mark.looptime
@pytest.mark.parametrize(
    ("owner", "heard"),
    [
        (CALLER, '"It is dispatched, today 4-6 PM, to Westlands."'),
        # No customer_phone from the shop: privacy fails closed, the delivery area is not revealed.
        (None, '"It is dispatched, today 4-6 PM, to ."'),
    ],
)
async def test_call_reads_the_shops_own_api(
    aiohttp_server, monkeypatch, owner: str | None, heard: str
) -> None:
    """The lookup goes to the shop's path and query name with the token, and its answer is narrated."""
    monkeypatch.setenv("SHOP_URL", "http://127.0.0.1:9")
    seen: list[dict[str, str]] = []
    settings = Settings(
        fallback_voice="synthetic",
        orders_base_url=await shop_api(aiohttp_server, owner, seen),
        orders_token="shop-t0ken",  # noqa: S106 - test credential
    )
    flow = load_flow_text(FLOW.read_text(encoding="utf-8") + ORDERS_SECTION, path=str(FLOW))
    record = await run_scripted_call(SCRIPT, flow=flow, settings=settings)
    assert {"phone": CALLER} in seen  # the prefetch by the caller's number
    assert {"ref": "DX1042"} in seen  # the lookup by the shop's own query name
    assert heard in agent_lines(record)
    assert "looking_up -> narrating (order_found)" in [e.text for e in record.transcript.entries]
