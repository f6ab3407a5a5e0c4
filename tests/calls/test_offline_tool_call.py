"""The offline brain and a flite caller use a flow's own HTTP tool: the shop's SMS endpoint gets the POST."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from ruamel.yaml import YAML

from orchestrator.brains.cascade import make_offline_brain_factory
from orchestrator.flow import Flow, load_flow_text
from orchestrator.harness import CallRecord
from orchestrator.script import CallScript
from orchestrator.simulator import SimulatorOptions
from orchestrator.speech.voices import caller_voice
from orchestrator.testing import run_scripted_call
from tests.flows import ORDER_STATUS

REFERENCE = Path(__file__).parents[2] / "docs" / "flow-reference.md"
CALLER = "+254722000111"  # owns PK20931 in fixtures/orders.json
# What the agent says on each route out of `sending_sms`, as the transcript quotes it.
ROUTE_SAYS = {
    "done": '"Done, the link is on its way. Is there anything else?"',
    "failed": '"Sorry, I could not send it. Is there anything else?"',
}


def flow_with_sms_tool(name: str, add_question: Callable[[Any], None], backend_url: str) -> Flow:
    """The pinned order-status flow with an SMS tool and its `sending_sms` state, as a product team
    would add them from docs/flow-reference.md; `add_question` edits the flow so that some state offers
    the tool, and `shop.backend_url` is where the shop's SMS endpoint listens."""
    yaml = YAML()
    data = yaml.load(ORDER_STATUS.read_text(encoding="utf-8"))
    data["shop"]["backend_url"] = backend_url
    data["tools"]["send_tracking_sms"] = {
        "description": "Text the caller a tracking link for the order being discussed.",
        "parameters": {"type": "object", "properties": {}},
        "http": {
            "method": "POST",
            "url": "{{ shop.backend_url }}/sms",
            "headers": {"Authorization": "Bearer {{ env.SHOP_API_TOKEN }}"},
            "json": {"to": "{{ caller.number }}", "order_number": "{{ order.order_number }}"},
            "timeout": 3,
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
    add_question(data)
    text = io.StringIO()
    yaml.dump(data, text)
    return load_flow_text(text.getvalue(), path=name, handlers=())


def _sms_intent_in_narrating(data: Any) -> None:
    """A flow-wide intent ("text me the link") that narrating allows."""
    data["policy"]["intents"]["sms"] = {
        "phrases": ["text me the link", "send me a text", "send me the link"],
        "tool": "send_tracking_sms",
    }
    narrating = data["states"]["narrating"]
    narrating["tools"].append("send_tracking_sms")
    narrating["on"]["tool:send_tracking_sms"] = "sending_sms"


def _offer_sms_state(data: Any) -> None:
    """A yes/no question state after the lookup, written as docs/flow-reference.md shows."""
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


def _pinned_flow_with(add_question: Callable[[Any], None]) -> Callable[[str], Flow]:
    return lambda backend_url: flow_with_sms_tool("offer_sms_order_status.yaml", add_question, backend_url)


def reference_example(backend_url: str) -> Flow:
    """The complete example flow of docs/flow-reference.md, its courier's API at `backend_url`."""
    example = REFERENCE.read_text(encoding="utf-8").split("## A complete example", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", example, re.DOTALL)
    assert block is not None
    text = block.group(1).replace("https://api.haraka.example", backend_url)
    return load_flow_text(text, path="flow-reference.md", handlers=())


async def call_with_shop(
    aiohttp_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    script: CallScript,
    make_flow: Callable[[str], Flow],
    *,
    status: int = 200,
) -> tuple[CallRecord, list[object]]:
    """Serve the shop's SMS endpoint on loopback (answering `status`), place the call offline with a
    flite caller through `make_flow(the endpoint's base URL)`, and return the call and the requests the
    shop received (each its Authorization header and JSON body)."""
    received: list[object] = []

    async def send(request: web.Request) -> web.Response:
        received.append((request.headers.get("Authorization"), await request.json()))
        return web.json_response({"message_id": "SM9"}, status=status)

    app = web.Application()
    app.router.add_post("/sms", send)
    server = await aiohttp_server(app)
    monkeypatch.setenv("SHOP_API_TOKEN", "shop-token")
    flow = make_flow(str(server.make_url("")).rstrip("/"))
    record = await run_scripted_call(
        script,
        flow=flow,
        brain_factory=make_offline_brain_factory(flow),
        simulator=SimulatorOptions(voice=caller_voice("slt")),  # type: ignore[arg-type]
    )
    return record, received


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
    record, received = await call_with_shop(
        aiohttp_server, monkeypatch, SCRIPT, _pinned_flow_with(_sms_intent_in_narrating)
    )
    transcript = record.render()
    assert received == [("Bearer shop-token", {"to": CALLER, "order_number": "PK20931"})]
    assert "sending_sms -> narrating (done:send_tracking_sms)" in transcript
    agent = record.transcript.of_kind("agent")
    done = agent.index('"Done, the link is on its way. Is there anything else?"')
    assert not agent[done + 1].startswith('"Order PK20931 is')  # the narration is not repeated
    assert record.transcript.outcome == "resolved"


OFFER_SCRIPT = CallScript.model_validate(
    {
        "title": "A caller hears an order's status and says yes to the tracking link by SMS",
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
    """Confirm, status, the new question, "yes please" POSTs the templated body with the bearer token;
    done:/failed: route it, and the route's `say` is the only answer to it (issue 9's "Done means")."""
    record, received = await call_with_shop(
        aiohttp_server, monkeypatch, OFFER_SCRIPT, _pinned_flow_with(_offer_sms_state), status=shop_status
    )
    transcript = record.render()
    assert received == [("Bearer shop-token", {"to": CALLER, "order_number": "PK20931"})]
    assert "looking_up -> offer_sms (order_found)" in transcript
    assert "offer_sms -> sending_sms (tool:send_tracking_sms)" in transcript
    assert f"sending_sms -> narrating ({route}:send_tracking_sms)" in transcript
    agent = record.transcript.of_kind("agent")
    answer = ROUTE_SAYS[route]
    # Regression: a failed action was answered twice, the route's line and "Sorry, I cannot do that".
    assert agent[agent.index(answer) + 1] == '"Thank you for calling Duka Express. Goodbye."'
    assert record.transcript.outcome == "resolved"


EXAMPLE_SCRIPT = CallScript.model_validate(
    {
        "title": "A known caller has their parcel checked and says yes to the tracking link by SMS",
        "caller": CALLER,
        "turns": [
            {"caller": "Yes please."},  # "I can see a parcel sent to this number. Shall I check it?"
            {"caller": "Yes please."},  # "... Would you like the tracking link by SMS?"
            {"caller": "No thanks."},  # "Done, the link is on its way. Anything else?"
        ],
    }
)


@pytest.mark.looptime
async def test_the_reference_example_flow_works_with_the_offline_brain(aiohttp_server, monkeypatch) -> None:
    """docs/flow-reference.md's complete example as it stands: a spoken yes to its SMS question POSTs
    the templated body with the token from the environment, and done: routes to its next question."""
    monkeypatch.setenv("HARAKA_API_TOKEN", "shop-token")
    record, received = await call_with_shop(
        aiohttp_server, monkeypatch, EXAMPLE_SCRIPT, reference_example
    )
    transcript = record.render()
    assert received == [("Bearer shop-token", {"to": CALLER, "order_number": "PK20931"})]
    assert "looking_up -> narrating (order_found)" in transcript
    assert "narrating -> sending_sms (tool:send_tracking_sms)" in transcript
    assert "sending_sms -> anything_else (done:send_tracking_sms)" in transcript
    assert "anything_else -> ended (tool:end_call)" in transcript
    assert record.transcript.outcome == "resolved"
