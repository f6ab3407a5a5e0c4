"""`orchestrator test`: scripted calls against a team's flow, snapshots, diffs, expectations and coverage.

Each test copies the pinned flow and a script or two into a temporary folder, the way a team keeps them,
and runs the command as users do (`main([...])`), with real calls on a fast-forwarded clock.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from orchestrator.cli import main
from tests.flows import ORDER_STATUS, SCRIPTS


def _team(tmp_path: Path, *scripts: str) -> tuple[Path, Path]:
    """A team's folder: flows/order_status.yaml and fixtures/calls/ with the named scripts."""
    flow = tmp_path / "flows" / "order_status.yaml"
    flow.parent.mkdir()
    shutil.copy(ORDER_STATUS, flow)
    calls = tmp_path / "fixtures" / "calls"
    calls.mkdir(parents=True)
    for name in scripts:
        shutil.copy(SCRIPTS / f"{name}.yaml", calls / f"{name}.yaml")
    return flow, calls


def _run(capsys, *args: object) -> tuple[int, str]:
    status = main(["test", *map(str, args)])
    return status, capsys.readouterr().out


def test_orchestrator_test_new_script_fails_until_its_snapshot_is_written(tmp_path, capsys):
    """A script without a reviewed snapshot fails and shows the whole call; --update writes it; then it passes."""
    flow, calls = _team(tmp_path, "asks_for_human")

    status, out = _run(capsys, "--flow", flow, calls)
    assert status == 1
    assert "NEW" in out
    assert "+state     identifying -> escalating (tool:transfer_to_human)" in out

    status, out = _run(capsys, "--flow", flow, calls, "--update")
    assert status == 0
    snapshot = (calls / "__snapshots__" / "asks_for_human.txt").read_text()
    assert snapshot.startswith("# The caller asks for a person and is transferred with a Dial\n")

    status, out = _run(capsys, "--flow", flow, calls)
    assert status == 0
    assert "1 passed" in out


def test_orchestrator_test_changed_instructions_and_say_are_one_line_diffs(tmp_path, capsys):
    """An edited system prompt, state instruction and greeting each change exactly one snapshot line."""
    flow, calls = _team(tmp_path, "asks_for_human")
    assert _run(capsys, "--flow", flow, calls, "--update")[0] == 0
    text = flow.read_text()
    text = text.replace("Ask for the order number;", "Ask kindly for the order number;")
    text = text.replace("I can check on your order for you.", "I can check your order.")
    text = text.replace("You only help callers", "You only ever help callers")
    flow.write_text(text)

    status, out = _run(capsys, "--flow", flow, calls, "--no-coverage")

    assert status == 1
    assert "CHANGED" in out
    removed = [line for line in out.splitlines() if line.startswith("-") and not line.startswith("---")]
    added = [line for line in out.splitlines() if line.startswith("+") and not line.startswith("+++")]
    assert len(removed) == len(added) == 3
    assert "You only ever help callers" in added[0]
    assert 'I can check your order." + Stream' in added[1]
    assert "Ask kindly for the order number;" in added[2]


def test_orchestrator_test_update_rewrites_only_the_scripts_it_ran(tmp_path, capsys):
    """--update on one script leaves every other snapshot, even a stale or orphaned one, untouched."""
    flow, calls = _team(tmp_path, "asks_for_human", "hangup_mid_narration")
    snapshots = calls / "__snapshots__"
    snapshots.mkdir()
    (snapshots / "hangup_mid_narration.txt").write_text("stale\n")
    (snapshots / "deleted_script.txt").write_text("kept\n")

    status, _ = _run(capsys, "--flow", flow, calls / "asks_for_human.yaml", "--update")

    assert status == 0
    assert (snapshots / "asks_for_human.txt").exists()
    assert (snapshots / "hangup_mid_narration.txt").read_text() == "stale\n"
    assert (snapshots / "deleted_script.txt").read_text() == "kept\n"


def test_orchestrator_test_checks_expect_steps_and_locates_failures(tmp_path, capsys):
    """Met `expect:` steps pass without a snapshot; an unmet one fails at its file:line:col."""
    flow, calls = _team(tmp_path)
    script = calls / "human.yaml"
    script.write_text(
        "title: Asks for a person\n"
        "snapshot: none\n"
        "turns:\n"
        "  - agent: [{say: How can I help?}]\n"
        "    expect: {state: identifying, says: help}\n"
        "  - caller: I want to speak to a real person please.\n"
        "  - agent: [{tool: transfer_to_human}]\n"
        "    expect: {state: escalating, tool: transfer_to_human, says: please hold}\n"
        "expect: {outcome: escalated}\n"
    )
    status, out = _run(capsys, "--flow", flow, calls)
    assert status == 0, out
    assert not (calls / "__snapshots__").exists()

    script.write_text(script.read_text().replace("says: please hold", "says: goodbye"))
    status, out = _run(capsys, "--flow", flow, calls)
    assert status == 1
    assert f"{script}:8:64: turns[2].expect.says: expected the agent to say 'goodbye'" in out
    assert "after the caller's \"I want to speak to a real person please.\"" in out


def test_orchestrator_test_script_errors_are_located_and_checked_against_the_flow(tmp_path, capsys):
    """A tool or state the flow does not declare is a located error with the likely fix; nothing is run."""
    flow, calls = _team(tmp_path)
    script = calls / "typo.yaml"
    script.write_text(
        "title: Typos\n"
        "turns:\n"
        "  - caller: Where is my order?\n"
        "  - agent: [{tool: lookup}]\n"
        "    expect: {state: narating}\n"
    )
    status, out = _run(capsys, "--flow", flow, calls)
    assert status == 1
    assert "ERROR" in out
    assert f"{script}:4:20: turns[1].agent[0].tool: unknown tool 'lookup' (did you mean `lookup_order`?)" in out
    assert f"{script}:5:21: turns[1].expect.state: unknown state 'narating' (did you mean `narrating`?)" in out


def test_orchestrator_test_coverage_table_names_what_no_script_exercised(tmp_path, capsys):
    """The coverage table counts states and routes taken, and marks the ones no script reached."""
    flow, calls = _team(tmp_path, "asks_for_human")
    _, out = _run(capsys, "--flow", flow, calls, "--update")
    assert "coverage: 3 of 6 states" in out
    assert "identifying --tool:transfer_to_human--> escalating      1" in out
    assert "looking_up --order_found--> narrating                   0  never" in out
    assert "* --brain_failed--> escalating                          0  never" in out


def test_orchestrator_test_timed_snapshot_keeps_the_clock(tmp_path, capsys):
    """`snapshot: timed` writes the call clock and the platform's view, with what the model was told."""
    flow, calls = _team(tmp_path, "asks_for_human")
    script = calls / "asks_for_human.yaml"
    script.write_text(script.read_text().replace("turns:", "snapshot: timed\nturns:", 1))
    assert _run(capsys, "--flow", flow, calls, "--update")[0] == 0
    snapshot = (calls / "__snapshots__" / "asks_for_human.txt").read_text()
    assert "] state     greeting -> identifying (stream_started)" in snapshot
    assert "] model     identifying: lookup_order, transfer_to_human, end_call; instructions:" in snapshot
    assert "# platform" in snapshot


def test_orchestrator_test_without_scripts_says_so(tmp_path, capsys):
    """An empty folder is an error that names it, not a silent pass."""
    status, out = _run(capsys, "--flow", ORDER_STATUS, tmp_path)
    assert status == 2
    assert f"no call scripts in {tmp_path}" in out
