"""`orchestrator brain check gemini` against the loopback fake in each model mode, and without a key."""

from __future__ import annotations

import pytest

from orchestrator.audio.synth import synthesize_speech
from orchestrator.brain_check import EXPECTED_CALL, run_check
from orchestrator.cli import main
from tests.fakes.gemini_live import API_KEY, GENERATIONS, MODELS, FakeGeminiLive
from tests.fakes.tls import LoopbackTls, make_loopback_tls


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> LoopbackTls:
    return make_loopback_tls(tmp_path_factory.mktemp("tls"))


def _environ(fake: FakeGeminiLive, model: str) -> dict[str, str]:
    return {"GEMINI_API_KEY": API_KEY, "GEMINI_BASE_URL": fake.base_url, "GEMINI_LIVE_MODEL": model}


def _synthetic(text: str, rate: int) -> bytes:
    return synthesize_speech(text, rate=rate)


@pytest.mark.parametrize("generation", GENERATIONS)
@pytest.mark.looptime
async def test_gemini_brain_check_passes_against_a_faithful_server(tls, generation):
    """Every rule holds against the fake in each model's mode, and the table names the row it checked."""
    async with FakeGeminiLive(EXPECTED_CALL, tls=tls, generation=generation) as fake:
        report = await run_check(
            "gemini", _environ(fake, MODELS[generation]), ssl_context=tls.client, caller_voice=_synthetic
        )
    assert report.row == f"gemini-{generation}"
    assert [(c.rule, c.result) for c in report.checks if c.result != "pass"] == []
    table = report.table()
    assert "the model calls lookup_order" in table
    assert "lookup_order {'order_number': 'DX1042'}" in table
    via = "client_content" if generation == "2.5" else "realtime_text"
    assert f"went by {via}" in table


@pytest.mark.looptime
async def test_gemini_brain_check_fails_where_the_server_says_no(tls):
    """Told the model is 2.5 while the server is 3.1: client content is refused (1007), and the table says so."""
    async with FakeGeminiLive(EXPECTED_CALL, tls=tls, generation="3.1") as fake:
        report = await run_check(
            "gemini", _environ(fake, MODELS["2.5"]), ssl_context=tls.client, caller_voice=_synthetic,
            step_timeout_s=5.0,
        )
    assert not report.passed
    results = {c.rule: (c.result, c.detail) for c in report.checks}
    assert results["the session stayed open: no refusal, no protocol error"][0] == "FAIL"
    assert "1007" in results["the session stayed open: no refusal, no protocol error"][1]
    assert fake.connections[0].ended == "1007 client content after the initial history"


def test_gemini_brain_check_without_a_key_says_so_and_exits_2(monkeypatch, capsys):
    """No GEMINI_API_KEY (nor GOOGLE_API_KEY): nothing is dialled, the message names the variable, exit 2."""
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    assert main(["brain", "check", "gemini"]) == 2
    assert "GEMINI_API_KEY is not set" in capsys.readouterr().err
