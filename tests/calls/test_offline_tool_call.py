"""The offline brain and a flite caller use a flow's own HTTP tool: the shop's SMS endpoint gets the POST."""

from __future__ import annotations

import io

import pytest
from aiohttp import web
from ruamel.yaml import YAML

from orchestrator.brains.cascade import make_offline_brain_factory
from orchestrator.flow import Flow, load_flow_text
from orchestrator.script import CallScript
from orchestrator.simulator import SimulatorOptions
from orchestrator.speech.voices import caller_voice
from orchestrator.testing import run_scripted_call
from tests.flows import ORDER_STATUS

CALLER = "+254722000111"  # owns PK20931 in fixtures/orders.json


def sms_flow() -> Flow:
    """The pinned order-status flow with an SMS tool added, as a product team would add it."""
    yaml = YAML()
    data = yaml.load(ORDER_STATUS.read_text(encoding="utf-8"))
    data["tools"]["send_tracking_sms"] = {
        "description": "Text the caller a tracking link for the order being discussed.",
        "http": {
            "url": "{{ env.SHOP_URL }}/sms",
            "json": {"to": "{{ caller.number }}", "order_number": "{{ order.order_number }}"},
            "timeout": 3,
        },
    }
    data["policy"]["intents"]["sms"] = {
        "phrases": ["text me the link", "send me a text", "send me the link"],
        "tool": "send_tracking_sms",
    }
    narrating = data["states"]["narrating"]
    narrating["tools"].append("send_tracking_sms")
    narrating["on"]["tool:send_tracking_sms"] = "sending_sms"
    data["states"]["sending_sms"] = {
        "on": {
            "done:send_tracking_sms": {
                "target": "narrating",
                "say": "Done, the link is on its way. Is there anything else?",
            },
            "failed:send_tracking_sms": {
                "target": "narrating",
                "say": "Sorry, I could not send it. Is there anything else?",
            },
        }
    }
    text = io.StringIO()
    yaml.dump(data, text)
    return load_flow_text(text.getvalue(), path="sms_order_status.yaml", handlers=())


SCRIPT = CallScript.model_validate(
    {
        "title": "A caller confirms an order and asks for the tracking link by SMS",
        "caller": CALLER,
        "turns": [
            {"caller": "My order number is P K two zero nine three one."},
            {"caller": "Yes."},
            {"caller": "Please text me the link."},
            {"caller": "No thanks, goodbye."},
        ],
    }
)


@pytest.mark.looptime
async def test_offline_brain_calls_the_flows_http_tool(aiohttp_server, monkeypatch) -> None:
    """Recognised, confirmed, narrated; "text me the link" POSTs to the shop; done: says its line once."""
    received: list[object] = []

    async def send(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.json_response({"message_id": "SM9"})

    app = web.Application()
    app.router.add_post("/sms", send)
    server = await aiohttp_server(app)
    monkeypatch.setenv("SHOP_URL", str(server.make_url("")).rstrip("/"))
    flow = sms_flow()
    record = await run_scripted_call(
        SCRIPT,
        flow=flow,
        brain_factory=make_offline_brain_factory(flow),
        simulator=SimulatorOptions(voice=caller_voice("slt")),  # type: ignore[arg-type]
    )
    transcript = record.render()
    assert received == [{"to": CALLER, "order_number": "PK20931"}]
    assert "sending_sms -> narrating (done:send_tracking_sms)" in transcript
    agent = record.transcript.of_kind("agent")
    done = agent.index('"Done, the link is on its way. Is there anything else?"')
    assert not agent[done + 1].startswith('"Order PK20931 is')  # the narration is not repeated
    assert record.transcript.outcome == "resolved"


def offer_sms_flow() -> Flow:
    """The pinned flow with a yes/no question state after the status, written as docs/flow-reference.md shows."""
    yaml = YAML()
    data = yaml.load(ORDER_STATUS.read_text(encoding="utf-8"))
    data["tools"]["send_tracking_sms"] = {
        "description": "Text the caller a tracking link for the order being discussed.",
        "http": {
            "method": "POST",
            "url": "{{ env.SHOP_URL }}/sms",
            "json": {"to": "{{ caller.number }}", "order_number": "{{ order.order_number }}"},
            "timeout": 3,
        },
    }
    data["states"]["looking_up"]["on"]["order_found"] = "offer_sms"
    data["states"]["offer_sms"] = {
        "say": "Order {{ order.order_number_spoken }} is {{ order.status_text }}. "
        "Would you like the tracking link by SMS?",
        "tools": ["send_tracking_sms", "end_call", "transfer_to_human"],
        "listen": {
            "yes": {"say": "Sending it now.", "tool": "send_tracking_sms"},
            "no": {"say": "Alright. Thank you for calling. Goodbye.", "tool": "end_call"},
        },
        "on": {
            "tool:send_tracking_sms": "sending_sms",
            "tool:end_call": "ended",
            "tool:transfer_to_human": "escalating",
        },
    }
    data["states"]["sending_sms"] = {
        "on": {
            "done:send_tracking_sms": {
                "target": "narrating",
                "say": "Done, the link is on its way. Is there anything else?",
            },
            "failed:send_tracking_sms": {
                "target": "narrating",
                "say": "Sorry, I could not send it. Is there anything else?",
            },
        }
    }
    text = io.StringIO()
    yaml.dump(data, text)
    return load_flow_text(text.getvalue(), path="offer_sms_order_status.yaml", handlers=())


OFFER_SCRIPT = CallScript.model_validate(
    {
        "title": "A caller confirms an order, hears its status and says yes to the tracking link by SMS",
        "caller": CALLER,
        "turns": [
            {"caller": "My order number is P K two zero nine three one."},
            {"caller": "Yes."},
            {"caller": "Yes please."},
            {"caller": "No thanks, goodbye."},
        ],
    }
)


@pytest.mark.looptime
@pytest.mark.parametrize(("shop_status", "route"), [(200, "done"), (500, "failed")])
async def test_a_yes_to_the_flows_own_question_posts_and_routes_on_the_result(
    aiohttp_server, monkeypatch, shop_status: int, route: str
) -> None:
    """Issue 9's done-means call: confirm, status, the new question, "yes please" POSTs; done:/failed: route it."""
    received: list[object] = []

    async def send(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.json_response({"message_id": "SM9"}, status=shop_status)

    app = web.Application()
    app.router.add_post("/sms", send)
    server = await aiohttp_server(app)
    monkeypatch.setenv("SHOP_URL", str(server.make_url("")).rstrip("/"))
    flow = offer_sms_flow()
    record = await run_scripted_call(
        OFFER_SCRIPT,
        flow=flow,
        brain_factory=make_offline_brain_factory(flow),
        simulator=SimulatorOptions(voice=caller_voice("slt")),  # type: ignore[arg-type]
    )
    transcript = record.render()
    assert received == [{"to": CALLER, "order_number": "PK20931"}]
    assert "looking_up -> offer_sms (order_found)" in transcript
    assert "offer_sms -> sending_sms (tool:send_tracking_sms)" in transcript
    assert f"sending_sms -> narrating ({route}:send_tracking_sms)" in transcript
    assert record.transcript.outcome == "resolved"
