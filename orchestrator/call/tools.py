"""What a flow's tools do when the model calls them: an `http:` action, or a handler the host app registers.

`perform` runs one tool call to its end and never raises for anything the outside world did: the answer is a
`ToolOutcome`, `ok` (its JSON result goes back to the model and into `result.<tool>`) or failed with a short
reason (an HTTP error, a timeout, an answer that is not JSON, a handler that raised). The session turns it into
`done:<tool>` or `failed:<tool>`. Knows the flow's models and httpx; nothing of sockets or brains.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import cast

import httpx
import structlog

from orchestrator.brains.base import JSONValue
from orchestrator.flow.model import HttpAction, ToolSpec
from orchestrator.flow.templates import find_placeholders, lookup, render

__all__ = [
    "ToolCallContext",
    "ToolError",
    "ToolHandler",
    "ToolOutcome",
    "environment_names",
    "perform",
    "render_json",
]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCallContext:
    """What a code handler is given: the tool's name, the model's arguments and the call's template view.

    `view` is what templates see (`caller`, `order`, `orders`, `shop`, `counters`, `result`, ...), read-only.
    """

    name: str
    arguments: Mapping[str, JSONValue]
    call_sid: str
    view: Mapping[str, object]


# A code tool: `async def send_tracking_sms(call: ToolCallContext) -> dict[str, JSONValue]`.
ToolHandler = Callable[[ToolCallContext], Awaitable[JSONValue]]


class ToolError(Exception):
    """Raise from a handler to fail the tool with a reason (the flow routes `failed:<tool>`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolOutcome:
    """How a tool call ended: its JSON result, or why it failed."""

    ok: bool
    result: JSONValue = None
    error: str | None = None

    @property
    def context_value(self) -> dict[str, JSONValue]:
        """What `result.<tool>` holds: the answer's object, `{"value": ...}` for any other JSON, or the error."""
        if not self.ok:
            return {"error": self.error}
        if isinstance(self.result, dict):
            return self.result
        return {"value": self.result}


async def perform(
    spec: ToolSpec,
    call: ToolCallContext,
    *,
    handler: ToolHandler | None,
    http: httpx.AsyncClient,
) -> ToolOutcome:
    """Run the tool's code handler, else its `http:` action, under its deadline."""
    if handler is not None:
        return await _run_handler(handler, call, timeout_s=spec.timeout)
    if spec.http is not None:
        return await _run_http(spec.http, call, http)
    return ToolOutcome(ok=True, result={})


async def _run_handler(
    handler: ToolHandler, call: ToolCallContext, *, timeout_s: float
) -> ToolOutcome:
    try:
        async with asyncio.timeout(timeout_s):
            result = await handler(call)
    except TimeoutError:
        return _failed(call, f"timeout after {timeout_s:g}s")
    except ToolError as exc:
        return _failed(call, exc.reason)
    except (
        Exception
    ) as exc:  # a host app's bug is the flow's failed:<tool> route, not a dropped call
        log.exception("tool_handler_crashed", tool=call.name)
        return _failed(call, f"handler error: {type(exc).__name__}")
    try:
        json.dumps(result)
    except (TypeError, ValueError):
        return _failed(call, "handler returned something that is not JSON")
    return ToolOutcome(ok=True, result=result)


async def _run_http(
    action: HttpAction, call: ToolCallContext, http: httpx.AsyncClient
) -> ToolOutcome:
    unset = [name for name in environment_names(action) if name not in os.environ]
    if unset:
        return _failed(call, f"environment variable {', '.join(unset)} is not set")
    view = {**call.view, "env": dict(os.environ), "arguments": dict(call.arguments)}
    url = render(action.url, view)
    headers = {key: render(value, view) for key, value in action.headers.items()}
    body = render_json(action.body, view)
    try:
        async with asyncio.timeout(action.timeout):
            response = await http.request(
                action.method,
                url,
                headers=headers,
                json=body if action.body is not None else None,
                timeout=action.timeout,
                follow_redirects=False,
            )
    except (TimeoutError, httpx.TimeoutException):
        return _failed(call, f"timeout after {action.timeout:g}s")
    except httpx.ConnectError:
        return _failed(call, "connect error")
    except httpx.HTTPError as exc:
        return _failed(call, f"transport error: {type(exc).__name__}")
    if not 200 <= response.status_code < 300:
        return _failed(call, f"HTTP {response.status_code}")
    if not response.content.strip():
        return ToolOutcome(ok=True, result={})
    try:
        result: JSONValue = json.loads(response.content)
    except ValueError:
        return _failed(call, "invalid JSON")
    return ToolOutcome(ok=True, result=result)


def environment_names(action: HttpAction) -> list[str]:
    """The environment variables an action reads (`{{ env.NAME }}`), in order, once each."""
    texts = [action.url, *action.headers.values(), *_strings(action.body)]
    names = [
        p.name.removeprefix("env.")
        for text in texts
        for p in find_placeholders(text)
        if p.name is not None and p.name.startswith("env.")
    ]
    return list(dict.fromkeys(names))


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return []


def render_json(value: object, view: Mapping[str, object]) -> JSONValue:
    """A JSON template filled from `view`: strings rendered; a string that is one placeholder keeps the type."""
    if isinstance(value, str):
        placeholders = find_placeholders(value)
        if len(placeholders) == 1 and placeholders[0].raw == value.strip() and placeholders[0].name:
            found = lookup(view, placeholders[0].name)
            if isinstance(found, bool | int | float | list | dict):
                return cast(JSONValue, found)  # JSON from the call's context
        return render(value, view)
    if isinstance(value, Mapping):
        return {str(key): render_json(item, view) for key, item in value.items()}
    if isinstance(value, list):
        return [render_json(item, view) for item in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return str(value)


def _failed(call: ToolCallContext, reason: str) -> ToolOutcome:
    log.warning("tool_failed", tool=call.name, reason=reason)
    return ToolOutcome(ok=False, error=reason)
