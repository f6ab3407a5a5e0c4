"""`orchestrator brain check openai` against the loopback fake, and without a key."""

from __future__ import annotations

import pytest

from orchestrator.audio.synth import synthesize_speech
from orchestrator.brain_check import EXPECTED_CALL, run_check
from orchestrator.cli import main
from tests.fakes.openai_realtime import API_KEY, FakeOpenAIRealtime


@pytest.mark.looptime
async def test_openai_brain_check_passes_against_the_fake():
    """Every rule holds: state by session.update, a nameless function call resolved, no server barge-in."""
    async with FakeOpenAIRealtime(EXPECTED_CALL) as fake:
        environ = {"OPENAI_API_KEY": API_KEY, "OPENAI_REALTIME_URL": fake.url}
        report = await run_check(
            "openai", environ, caller_voice=lambda text, rate: synthesize_speech(text, rate=rate)
        )
    assert report.row == "gpt-realtime"
    assert [(c.rule, c.result) for c in report.checks if c.result != "pass"] == []
    assert "went by context_update" in report.table()
    # The fake's function-call events carried no name: the check's tool call still named lookup_order.
    assert all("name" not in e for e in fake.sent_of("response.function_call_arguments.done"))


def test_openai_brain_check_without_a_key_says_so_and_exits_2(monkeypatch, capsys):
    """No OPENAI_API_KEY: the message names the variable and the exit code is 2."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert main(["brain", "check", "openai"]) == 2
    assert "OPENAI_API_KEY is not set" in capsys.readouterr().err
