"""`add_routes` refuses set-ups that would fail real callers: demo orders by accident, tools that do nothing."""

from __future__ import annotations

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

from orchestrator.app import add_routes
from orchestrator.brains.scripted import ScriptedBrain
from orchestrator.call.tools import ToolCallContext
from orchestrator.errors import ConfigError
from orchestrator.flow import load_flow, load_flow_text
from orchestrator.script import load_script
from orchestrator.settings import Settings
from tests.flows import SCRIPTS, TESTS

SCRIPT = load_script(SCRIPTS / "returning_caller_by_phone.yaml")
SMS_FLOW = TESTS / "flows" / "sms_tool.yaml"


def brain(start) -> ScriptedBrain:
    return ScriptedBrain(SCRIPT)


async def handler(call: ToolCallContext) -> dict[str, object]:
    return {}


def test_no_orders_url_refuses_to_start_and_says_how(monkeypatch) -> None:
    """Without an orders URL or the demo choice, add_routes raises naming both ways out."""
    monkeypatch.delenv("ORCHESTRATOR_ORDERS", raising=False)
    with pytest.raises(ConfigError) as refused:
        add_routes(web.Application(), settings=Settings(), brain_factory=brain)
    assert "ORCHESTRATOR_ORDERS_BASE_URL" in str(refused.value)
    assert "--orders demo (ORCHESTRATOR_ORDERS=demo)" in str(refused.value)


def test_demo_orders_must_be_chosen(monkeypatch) -> None:
    """`ORCHESTRATOR_ORDERS=demo` (or Settings(orders="demo")) starts with the embedded demo backend."""
    monkeypatch.delenv("ORCHESTRATOR_ORDERS", raising=False)
    add_routes(web.Application(), settings=Settings(orders="demo"), brain_factory=brain)
    monkeypatch.setenv("ORCHESTRATOR_ORDERS", "demo")
    add_routes(web.Application(), settings=Settings(), brain_factory=brain)


def test_flow_orders_base_url_is_enough(monkeypatch) -> None:
    """An orders URL in the flow's `orders:` section counts as configured."""
    monkeypatch.delenv("ORCHESTRATOR_ORDERS", raising=False)
    text = (
        SMS_FLOW.read_text(encoding="utf-8") + "\norders: {base_url: 'https://shop.example.com'}\n"
    )
    add_routes(
        web.Application(), settings=Settings(), brain_factory=brain, flow=load_flow_text(text)
    )


async def test_demo_orders_answer_the_health_check(
    aiohttp_client: AiohttpClient, monkeypatch
) -> None:
    """With the demo chosen, the app starts its embedded orders backend and serves."""
    monkeypatch.delenv("ORCHESTRATOR_ORDERS", raising=False)
    app = web.Application()
    orchestrator = add_routes(app, settings=Settings(orders="demo"), brain_factory=brain)
    client = await aiohttp_client(app)
    assert (await client.get("/healthz")).status == 200
    assert orchestrator.demo_orders is not None


def code_tool_flow() -> str:
    text = SMS_FLOW.read_text(encoding="utf-8")
    return text[: text.index("    http:\n")] + text[text.index("  end_call:\n") :]


def test_tool_without_action_or_handler_is_refused() -> None:
    """A declared tool that is not built-in, has no `http:` and no handler stops add_routes."""
    with pytest.raises(ConfigError, match="send_tracking_sms do nothing"):
        add_routes(
            web.Application(),
            settings=Settings(),
            brain_factory=brain,
            flow=load_flow_text(code_tool_flow()),
        )


def test_handler_for_an_undeclared_tool_is_refused() -> None:
    """A handler whose tool the flow does not declare is a typo to report, not to ignore."""
    with pytest.raises(ConfigError, match="the flow does not declare: send_sms"):
        add_routes(
            web.Application(),
            settings=Settings(),
            brain_factory=brain,
            flow=load_flow(SMS_FLOW),
            tools={"send_sms": handler},
        )


def test_handler_and_http_action_together_are_refused() -> None:
    """A tool cannot both POST its `http:` action and run a handler: which one acts would be a guess."""
    with pytest.raises(
        ConfigError, match="both an http: action and a code handler: send_tracking_sms"
    ):
        add_routes(
            web.Application(),
            settings=Settings(),
            brain_factory=brain,
            flow=load_flow(SMS_FLOW),
            tools={"send_tracking_sms": handler},
        )


def test_code_handler_makes_the_tool_acceptable() -> None:
    """With its handler registered, the same flow is accepted."""
    add_routes(
        web.Application(),
        settings=Settings(),
        brain_factory=brain,
        flow=load_flow_text(code_tool_flow()),
        tools={"send_tracking_sms": handler},
    )


async def test_orders_settings_from_the_environment_win_over_the_flow(
    aiohttp_server, aiohttp_client: AiohttpClient, monkeypatch
) -> None:
    """ORCHESTRATOR_ORDERS_* (JSON for maps) describe the deployment's API and override the flow's orders:."""

    async def shop(request: web.Request) -> web.Response:
        if request.headers.get("X-Api-Key") != "k3y":
            return web.json_response({"error": "unauthorized"}, status=401)
        ref = request.query["ref"]
        return web.json_response({"result": {"items": [{"id": ref, "phase": "With_Rider"}]}})

    shop_app = web.Application()
    shop_app.router.add_get("/v3/parcels", shop)
    server = await aiohttp_server(shop_app)
    for name, value in {
        "ORCHESTRATOR_ORDERS_BASE_URL": str(server.make_url("")).rstrip("/"),
        "ORCHESTRATOR_ORDERS_TOKEN": "k3y",
        "ORCHESTRATOR_ORDERS_AUTH_HEADER": "X-Api-Key",
        "ORCHESTRATOR_ORDERS_AUTH_SCHEME": "",
        "ORCHESTRATOR_ORDERS_PATH": "/v3/parcels",
        "ORCHESTRATOR_ORDERS_ORDER_PARAM": "ref",
        "ORCHESTRATOR_ORDERS_ENVELOPE": "result.items",
        "ORCHESTRATOR_ORDERS_FIELDS": '{"order_number": "id", "status": "phase"}',
        "ORCHESTRATOR_ORDERS_STATUSES": '{"with_rider": "out_for_delivery"}',
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ORCHESTRATOR_ORDERS", raising=False)
    flow_text = SMS_FLOW.read_text(encoding="utf-8") + "\norders: {path: /flow/path, envelope: data}\n"
    app = web.Application()
    orchestrator = add_routes(
        app, settings=Settings(), brain_factory=brain, flow=load_flow_text(flow_text)
    )
    await aiohttp_client(app)  # starts the app: the orders client is made at start-up
    assert orchestrator.orders is not None
    result = await orchestrator.orders.by_order_number("PK20931")
    assert [(o.order_number, o.status) for o in result.orders] == [("PK20931", "out_for_delivery")]
