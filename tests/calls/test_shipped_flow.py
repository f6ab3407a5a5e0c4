"""The shipped flow's own scripted calls: the one test that follows flows/order_status.yaml.

Every other test runs against pinned copies (tests/flows/). When the product team changes the shipped flow,
this test fails with the readable diff `orchestrator test` prints, and `orchestrator test --update` after
review brings fixtures/calls/__snapshots__/ up to date.
"""

from pathlib import Path

from orchestrator.cli import main

ROOT = Path(__file__).parents[2]


def test_shipped_flow_scripted_calls_match_their_reviewed_snapshots(capsys):
    """`orchestrator test` on fixtures/calls/ against flows/order_status.yaml finds no difference."""
    status = main(["test", "--flow", str(ROOT / "flows" / "order_status.yaml"), str(ROOT / "fixtures" / "calls")])
    report = capsys.readouterr().out
    assert status == 0, report
