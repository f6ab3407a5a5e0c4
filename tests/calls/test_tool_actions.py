"""A tool's `http:` action and code handlers in whole calls: the service performs them and routes done:/failed:.

Each test serves the shop's SMS endpoint on loopback, places a scripted call through the real stack and reads
both what the endpoint received and what the call did.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from orchestrator.brains.scripted import ScriptedBrain
from orchestrator.call.tools import ToolCallContext, ToolError
from orchestrator.flow import load_flow
from orchestrator.harness import Line, serve_line
from orchestrator.script import CallScript
from orchestrator.settings import Settings
from orchestrator.testing import run_scripted_call
from tests.flows import TESTS

FLOW = TESTS / "flows" / "sms_tool.yaml"
CALLER = "+254712345678"  # owns DX1042 in fixtures/orders.json

SCRIPT = CallScript.model_validate(
    {
        "title": "The caller takes the tracking SMS",
        "caller": CALLER,
        "turns": [
            {"agent": [{"say": "What is your order number?"}]},
            {"caller": "It is D X one oh four two."},
            {
                "agent": [
                    {"tool": "lookup_order", "args": {"order_number": "DX1042"}},
                    {
                        "say": "It is {{ result.order.status_text }}. Shall I text you the tracking link?"
                    },
                ]
            },
            {"caller": "Yes please."},
            {
                "agent": [
                    {"tool": "send_tracking_sms", "args": {"language": "en"}},
                    {"say": "{{ result.state }}"},
                ]
            },
            {"caller": "Thanks, bye."},
            {"agent": [{"say": "Goodbye."}, {"tool": "end_call"}]},
        ],
    }
)


async def sms_endpoint(aiohttp_server, mode: str, received: list[dict[str, object]]) -> str:
    """The shop's SMS API on 127.0.0.1: answers per `mode`, records each request; returns its base URL."""

    async def send(request: web.Request) -> web.StreamResponse:
        received.append(
            {"auth": request.headers.get("Authorization"), "body": await request.json()}
        )
        if mode == "error_500":
            return web.json_response({"error": "boom"}, status=500)
        if mode == "bad_json":
            return web.Response(text="<html>oops</html>", content_type="text/html")
        if mode == "slow":
            await asyncio.sleep(30)
        return web.json_response({"message_id": "SM1", "queued": True})

    app = web.Application()
    app.router.add_post("/sms", send)
    server = await aiohttp_server(app)
    return str(server.make_url("")).rstrip("/")


def lines(record, kind: str) -> list[str]:
    return [e.text for e in record.transcript.entries if e.kind == kind]


@pytest.mark.looptime
async def test_http_tool_posts_the_templated_body_and_routes_done(
    aiohttp_server, monkeypatch
) -> None:
    """The SMS endpoint gets the templated POST with the env token; done:send_tracking_sms says its reply."""
    received: list[dict[str, object]] = []
    monkeypatch.setenv("SHOP_URL", await sms_endpoint(aiohttp_server, "ok", received))
    monkeypatch.setenv("SHOP_API_TOKEN", "t0ken")
    record = await run_scripted_call(SCRIPT, flow=FLOW)
    assert received == [
        {
            "auth": "Bearer t0ken",
            "body": {"to": CALLER, "order_number": "DX1042", "language": "en", "orders_seen": 1},
        }
    ]
    assert "narrating -> sending_sms (tool:send_tracking_sms)" in lines(record, "state")
    assert "sending_sms -> sent (done:send_tracking_sms)" in lines(record, "state")
    assert '"Done: message SM1 is on its way."' in lines(record, "agent")
    assert "send_tracking_sms done" in lines(record, "result")
    assert '"sent"' in lines(
        record, "agent"
    )  # the model's tool result names the state it landed in
    assert record.transcript.outcome == "resolved"


@pytest.mark.looptime
@pytest.mark.parametrize(
    ("mode", "reason"),
    [("error_500", "HTTP 500"), ("bad_json", "invalid JSON"), ("slow", "timeout after 3s")],
)
async def test_http_tool_failure_routes_failed(
    aiohttp_server, monkeypatch, mode: str, reason: str
) -> None:
    """A 500, an answer that is not JSON, or no answer within the timeout routes failed:send_tracking_sms."""
    received: list[dict[str, object]] = []
    monkeypatch.setenv("SHOP_URL", await sms_endpoint(aiohttp_server, mode, received))
    monkeypatch.setenv("SHOP_API_TOKEN", "t0ken")
    record = await run_scripted_call(SCRIPT, flow=FLOW)
    assert len(received) == 1
    assert any(
        line.startswith(f"send_tracking_sms failed: {reason} (") for line in lines(record, "tool")
    )
    assert "sending_sms -> sent (failed:send_tracking_sms)" in lines(record, "state")
    assert '"Sorry, I could not send the message."' in lines(record, "agent")
    assert record.transcript.outcome == "resolved"


@pytest.mark.looptime
async def test_unreachable_tool_url_routes_failed(monkeypatch) -> None:
    """Nothing listening at the action's URL is a failed tool, not a dropped call."""
    monkeypatch.setenv("SHOP_URL", "http://127.0.0.1:9")
    record = await run_scripted_call(SCRIPT, flow=FLOW)
    assert "sending_sms -> sent (failed:send_tracking_sms)" in lines(record, "state")


def code_tool_flow(tmp_path: Path) -> Path:
    """The SMS flow with the tool's `http:` action removed: a code handler must do the work."""
    text = FLOW.read_text(encoding="utf-8")
    start = text.index("    http:\n")
    end = text.index("  end_call:\n")
    path = tmp_path / "code_tool.yaml"
    path.write_text(text[:start] + text[end:], encoding="utf-8")
    return path


@asynccontextmanager
async def sms_done_then_failed(tmp_path: Path) -> AsyncIterator[Line]:
    """A line serving the code-tool flow after two SMS calls: the handler answered the first, raised on the second."""
    outcomes = iter([{"message_id": "M1"}, ToolError("SMS quota exhausted")])

    async def send_tracking_sms(call: ToolCallContext) -> dict[str, object]:
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    flow = load_flow(code_tool_flow(tmp_path), handlers={"send_tracking_sms"})
    async with serve_line(
        flow=flow,
        settings=Settings(fallback_voice="synthetic"),
        brain_factory=lambda start: ScriptedBrain(SCRIPT),
        tools={"send_tracking_sms": send_tracking_sms},
    ) as line:
        await line.call(SCRIPT, call_sid="HD_tools001")
        await line.call(SCRIPT, call_sid="HD_tools002")
        yield line


@pytest.mark.looptime
async def test_code_tool_handler_answers_and_routes_done(tmp_path: Path) -> None:
    """A handler given to add_routes gets the arguments and the call's view; its answer is `result.<tool>`."""
    calls: list[ToolCallContext] = []

    async def send_tracking_sms(call: ToolCallContext) -> dict[str, object]:
        calls.append(call)
        return {"message_id": "CODE7"}

    flow = load_flow(code_tool_flow(tmp_path), handlers={"send_tracking_sms"})
    record = await run_scripted_call(
        SCRIPT, flow=flow, tools={"send_tracking_sms": send_tracking_sms}
    )
    (call,) = calls
    assert (call.name, dict(call.arguments), call.call_sid) == (
        "send_tracking_sms",
        {"language": "en"},
        "HD_test0001",
    )
    order = call.view["order"]
    assert isinstance(order, dict)
    assert order["order_number"] == "DX1042"
    assert '"Done: message CODE7 is on its way."' in lines(record, "agent")


@pytest.mark.looptime
async def test_code_tool_error_routes_failed(tmp_path: Path) -> None:
    """A handler raising ToolError (or anything else) routes failed:<tool> with its reason."""

    async def send_tracking_sms(call: ToolCallContext) -> dict[str, object]:
        raise ToolError("SMS quota exhausted")

    flow = load_flow(code_tool_flow(tmp_path), handlers={"send_tracking_sms"})
    record = await run_scripted_call(
        SCRIPT, flow=flow, tools={"send_tracking_sms": send_tracking_sms}
    )
    assert any(
        line.startswith("send_tracking_sms failed: SMS quota exhausted")
        for line in lines(record, "tool")
    )
    assert "sending_sms -> sent (failed:send_tracking_sms)" in lines(record, "state")


@pytest.mark.looptime
async def test_unset_environment_variable_fails_the_tool_naming_it(
    aiohttp_server, monkeypatch
) -> None:
    """An action reading an unset `{{ env.NAME }}` fails with that name and sends nothing."""
    received: list[dict[str, object]] = []
    monkeypatch.setenv("SHOP_URL", await sms_endpoint(aiohttp_server, "ok", received))
    monkeypatch.delenv("SHOP_API_TOKEN", raising=False)
    record = await run_scripted_call(SCRIPT, flow=FLOW)
    assert received == []
    failed = "send_tracking_sms failed: environment variable SHOP_API_TOKEN is not set"
    assert any(line.startswith(failed) for line in lines(record, "tool"))
