"""`orchestrator calls place`: notification calls placed through the fake Sautikit REST API over real HTTP."""

from __future__ import annotations

import pytest

from orchestrator.simulator.rest_api import FakeNumber
from tests.flows import TESTS
from tests.unit.test_operator_cli import Platform, platform, run  # noqa: F401 (the fixture)

FLOW = str(TESTS / "flows" / "outbound.yaml")
CALLER_ID = "+254711000000"  # tests/flows/outbound.yaml's outbound.caller_id


@pytest.fixture
def line(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> Platform:  # noqa: F811
    """The workspace owns the flow's caller id; the service's URL and secret are in the environment."""
    platform.state.numbers["num_1"] = FakeNumber(id="num_1", e164=CALLER_ID, inventory_id="inv_1")
    monkeypatch.setenv("ORCHESTRATOR_PUBLIC_URL", "https://agent.example.test")
    monkeypatch.setenv("ORCHESTRATOR_STREAM_SECRET", "s3cret")
    return platform


def _outbound(platform: Platform):
    return [c for c in platform.state.calls.values() if c.direction == "outbound"]


def test_calls_place_help_shows_examples_columns_and_environment(capsys) -> None:
    """The help says how to call one number or a CSV, which columns it reads and what it needs."""
    with pytest.raises(SystemExit):
        run("calls", "place", "--help")
    out = capsys.readouterr().out
    expected = (
        "--to +254712345678 --order DX1042",
        "--csv deliveries.csv --rate 2/s",
        "order_number",
        "Idempotency-Key",
        "ORCHESTRATOR_STREAM_SECRET",
        "SAUTIKIT_API_KEY",
    )
    assert [text for text in expected if text not in out] == []


def test_calls_place_one_number_posts_the_call_with_a_signed_webhook(line: Platform, capsys) -> None:
    """--to and --order: one POST /v1/calls from the flow's caller id, its webhook URL naming the order."""
    assert run("calls", "place", "--to", "0712 345 678", "--order", "DX1042", "--flow", FLOW) == 0
    out = capsys.readouterr().out
    (call,) = _outbound(line)
    assert call.local_e164 == CALLER_ID
    assert call.remote_e164 == "+254712345678"
    url = str(call.events[0]["voice_callback_url"])
    assert url.startswith("https://agent.example.test/voice?outbound=DX1042&")
    assert "sig=" in url
    assert f"placed  {call.session_id}" in out
    assert "1 placed" in out


def test_calls_place_csv_reports_each_row_and_a_rerun_calls_nobody_twice(
    line: Platform, tmp_path, capsys
) -> None:
    """A CSV is placed row by row with a summary; the same file again gets the same calls back."""
    deliveries = tmp_path / "deliveries.csv"
    deliveries.write_text(
        "order_number,phone\nDX1042,+254712345678\nPK20931,0722000111\nDX1051,not-a-number\n"
    )
    argv = ("calls", "place", "--csv", str(deliveries), "--rate", "50/s", "--flow", FLOW)

    assert run(*argv) == 1  # one row is invalid
    first = capsys.readouterr()
    assert "2 placed, 1 invalid" in first.out
    assert "not a phone number" in first.out
    assert "[####################] 3/3" in first.err  # the progress display
    placed = {c.session_id for c in _outbound(line)}
    assert len(placed) == 2

    assert run(*argv) == 1
    again = capsys.readouterr().out
    assert {c.session_id for c in _outbound(line)} == placed  # no new call
    assert all(session_id in again for session_id in placed)
    keys = [r.idempotency_key for r in line.state.requests if r.path == "/v1/calls"]
    assert len(keys) == 4
    assert len(set(keys)) == 2


def test_calls_place_without_the_stream_secret_is_a_configuration_error(
    line: Platform, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """The secret signs the order into the webhook URL: without it nothing is placed (exit 2)."""
    monkeypatch.delenv("ORCHESTRATOR_STREAM_SECRET")
    assert run("calls", "place", "--to", "+254712345678", "--order", "DX1042", "--flow", FLOW) == 2
    assert "ORCHESTRATOR_STREAM_SECRET" in capsys.readouterr().err
    assert _outbound(line) == []


def test_calls_place_from_a_number_the_workspace_does_not_own_says_how_to_claim_it(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, capsys  # noqa: F811
) -> None:
    """The platform refuses the flow's caller id: the row fails with its reason, and a hint names the fix."""
    monkeypatch.setenv("ORCHESTRATOR_PUBLIC_URL", "https://agent.example.test")
    monkeypatch.setenv("ORCHESTRATOR_STREAM_SECRET", "s3cret")
    assert run("calls", "place", "--to", "+254712345678", "--order", "DX1042", "--flow", FLOW) == 1
    captured = capsys.readouterr()
    assert "from must be a number this workspace owns" in captured.out
    assert f"refused the flow's caller id {CALLER_ID}" in captured.err
    assert "orchestrator numbers claim" in captured.err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--to", "+254712345678"), "--to needs --order"),
        (("--to", "+254712345678", "--order", "DX1042", "--rate", "fast"), "--rate must look like"),
    ],
)
def test_calls_place_bad_arguments_say_what_to_fix(line: Platform, argv, message, capsys) -> None:
    """A missing order or an unreadable rate is exit 2 with the fix."""
    assert run("calls", "place", *argv, "--flow", FLOW) == 2
    assert message in capsys.readouterr().err
