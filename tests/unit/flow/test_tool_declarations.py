"""The loader checks what tools do: an action or a handler for each, `done:`/`failed:` routes, action templates."""

from __future__ import annotations

import pytest

from orchestrator.errors import FlowError
from orchestrator.flow import load_flow_text

HEAD = """\
flow: t
tools:
  send_sms:
    description: Text the caller.
{action}
initial: a
states:
  a:
    tools: [send_sms]
    say: "{say}"
    on:
      "tool:send_sms": b
  b:
    on:
      "done:send_sms": c
      "failed:send_sms": c
  c: {{final: true}}
"""
HTTP = """\
    http:
      url: "{url}"
      headers: {{Authorization: "Bearer {{{{ env.SMS_TOKEN }}}}"}}
      json: {{to: "{{{{ caller.number }}}}", lang: "{{{{ arguments.language }}}}"}}
"""


def flow_text(
    *, action: str = "", say: str = "hi", url: str = "https://sms.example.com/send"
) -> str:
    return HEAD.format(action=action.format(url=url) if action else "", say=say)


def messages(text: str, **kwargs) -> list[str]:
    with pytest.raises(FlowError) as failure:
        load_flow_text(text, path="f.yaml", **kwargs)
    return [str(p) for p in failure.value.problems]


def test_http_tool_with_done_and_failed_routes_loads() -> None:
    """An `http:` tool whose done:/failed: events are routed is a valid flow, even for flow check."""
    flow = load_flow_text(flow_text(action=HTTP), handlers=())
    action = flow.tools["send_sms"].http
    assert action is not None
    assert (action.method, action.timeout) == ("POST", 5.0)
    assert action.body == {"to": "{{ caller.number }}", "lang": "{{ arguments.language }}"}


def test_tool_that_does_nothing_is_an_error_when_handlers_are_known() -> None:
    """With the handlers known (flow check, serve), a tool with no action is located and explained."""
    (problem,) = messages(flow_text(), handlers=())
    assert problem.startswith(
        "f.yaml:3:3: tools.send_sms: tool 'send_sms' does nothing: add an `http:` action"
    )


def test_tool_with_a_code_handler_loads() -> None:
    """The same tool loads when the host application handles it in code."""
    assert load_flow_text(flow_text(), handlers={"send_sms"}).tools["send_sms"].http is None


def test_unknown_variable_in_an_action_is_located() -> None:
    """An action's URL naming an unknown variable is reported at its place in the file."""
    (problem,) = messages(flow_text(action=HTTP, url="{{ shop.url }}/send"))
    assert (
        problem
        == "f.yaml:6:13: tools.send_sms.http.url: unknown template variable '{{ shop.url }}'"
    )


def test_environment_cannot_be_read_by_spoken_text() -> None:
    """`env.*` is for actions only: a `say` reading it could speak a secret to the caller."""
    (problem,) = messages(flow_text(action=HTTP, say="{{ env.SMS_TOKEN }}"))
    assert "unknown template variable 'env.SMS_TOKEN'" in problem


def test_results_of_declared_tools_are_template_variables() -> None:
    """`result.<tool>.*` is known for declared tools, and only for them."""
    load_flow_text(flow_text(action=HTTP, say="{{ result.send_sms.message_id }}"))
    (problem,) = messages(flow_text(action=HTTP, say="{{ result.send_email.id }}"))
    assert "unknown template variable 'result.send_email.id'" in problem


def test_done_event_of_an_undeclared_tool_is_an_error() -> None:
    """`done:<tool>` must name a declared tool, like `tool:<tool>`."""
    text = flow_text(action=HTTP).replace('"done:send_sms"', '"done:send_email"')
    (problem,) = messages(text)
    assert "event 'done:send_email' names an undeclared tool 'send_email'" in problem
