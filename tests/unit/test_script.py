"""Call scripts: the format's spellings, and problems located at `file:line:col` with the likely fix."""

from pathlib import Path

import pytest

from orchestrator.errors import FlowError
from orchestrator.flow import load_flow
from orchestrator.script import AgentTurn, CallerTurn, HangupTurn, ToolStep, load_script
from tests.flows import ORDER_STATUS, SCRIPTS

FLOW = load_flow(ORDER_STATUS)


def _problems(tmp_path: Path, text: str, *, flow=FLOW) -> list[str]:
    path = tmp_path / "script.yaml"
    path.write_text(text)
    with pytest.raises(FlowError) as caught:
        load_script(path, flow=flow)
    return [str(problem).removeprefix(f"{path}:") for problem in caught.value.problems]


@pytest.mark.parametrize("path", sorted(SCRIPTS.glob("*.yaml")), ids=lambda p: p.stem)
def test_load_script_reads_every_pinned_script_against_the_flow(path: Path) -> None:
    """Every pinned script is valid and names only tools and states of the pinned flow."""
    script = load_script(path, flow=FLOW)
    assert script.turns


def test_load_script_reads_each_kind_of_turn_and_expectation(tmp_path: Path) -> None:
    """Caller, agent and hang-up turns are told apart by their key; `expect:` may sit on any turn."""
    path = tmp_path / "script.yaml"
    path.write_text(
        "title: t\n"
        "turns:\n"
        "  - caller: hi\n"
        "    expect: {state: identifying}\n"
        "  - agent: [{tool: end_call}]\n"
        "  - hangup:\n"
        "expect: {outcome: abandoned}\n"
    )
    script = load_script(path, flow=FLOW)
    caller, agent, hangup = script.turns
    assert isinstance(caller, CallerTurn)
    assert caller.expect is not None
    assert caller.expect.state == "identifying"
    assert isinstance(agent, AgentTurn)
    assert agent.agent == [ToolStep(tool="end_call")]
    assert isinstance(hangup, HangupTurn)
    assert hangup.hangup is None
    assert script.expect is not None
    assert script.expect.outcome == "abandoned"
    assert script.snapshot == "conversation"


def test_load_script_shape_problems_are_located_without_union_noise(tmp_path: Path) -> None:
    """A bad value, an unknown turn and an empty `expect` each give one message at their own place."""
    problems = _problems(
        tmp_path,
        "title: t\n"
        "turns:\n"
        "  - caller: hi\n"
        "    pause_ms: -1\n"
        "  - {expect: {tool: end_call}}\n"
        "  - agent: [{sey: hello}]\n"
        "    expect: {}\n",
    )
    assert problems == [
        "4:15: turns[0].pause_ms: Input should be greater than or equal to 0",
        "5:5: turns[1]: a turn is one of `caller:`, `press:`, `agent:`, `hangup:`, `silence_ms:`, `noise_ms:`",
        "6:13: turns[2].agent[0]: an agent step is `say: TEXT` or `tool: NAME` (with optional `args`)",
        "7:13: turns[2].expect: expect needs at least one of state, tool, says, outcome",
    ]


def test_load_script_unknown_tool_and_state_suggest_the_declared_name(tmp_path: Path) -> None:
    """Names the flow does not declare are errors that suggest the close one, or list the declared ones."""
    problems = _problems(
        tmp_path,
        "title: t\n"
        "turns:\n"
        "  - agent: [{tool: lookup}, {tool: send_sms}]\n"
        "    expect: {state: narating}\n",
    )
    assert problems == [
        "3:20: turns[0].agent[0].tool: unknown tool 'lookup' (did you mean `lookup_order`?)",
        "3:36: turns[0].agent[1].tool: unknown tool 'send_sms' "
        "(declared: lookup_order, transfer_to_human, end_call)",
        "4:21: turns[0].expect.state: unknown state 'narating' (did you mean `narrating`?)",
    ]


def test_load_script_syntax_error_is_located(tmp_path: Path) -> None:
    """Broken YAML is one problem at the line and column the parser stopped."""
    assert _problems(tmp_path, "title: t\nturns: [\n") == [
        "3:1: YAML syntax error: expected the node content, but found '<stream end>'"
        " (while parsing a flow node at 3:1)"
    ]
