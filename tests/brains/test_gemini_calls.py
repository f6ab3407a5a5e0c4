"""Whole calls through the real service with the Gemini Live brain against a loopback fake of Gemini Live."""

from __future__ import annotations

import pytest

from orchestrator.script import load_script
from orchestrator.testing import TranscriptSnapshotExtension, run_scripted_call
from tests.fakes.gemini_live import FakeGeminiLive, GeminiFaults
from tests.fakes.tls import LoopbackTls, make_loopback_tls
from tests.flows import SCRIPTS

CALLS = SCRIPTS


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> LoopbackTls:
    return make_loopback_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def transcript_snapshot(snapshot):
    return snapshot.use_extension(TranscriptSnapshotExtension)


@pytest.mark.looptime
async def test_gemini_call_happy_path_resolves(tls, transcript_snapshot):
    """A returning caller hears their order's status from Gemini, which looked it up with the tool."""
    script = load_script(CALLS / "returning_caller_by_phone.yaml")
    async with FakeGeminiLive(script, tls=tls) as fake:
        record = await run_scripted_call(script, brain_factory=lambda start: fake.brain())
    assert record.transcript.outcome == "resolved"
    assert len(fake.connections) == 1
    assert record.render() == transcript_snapshot


@pytest.mark.looptime
async def test_gemini_call_tool_call_transfers_to_a_person(tls, transcript_snapshot):
    """Gemini's transfer_to_human call moves the call to escalating; the hold line is spoken verbatim."""
    script = load_script(CALLS / "asks_for_human.yaml")
    async with FakeGeminiLive(script, tls=tls) as fake:
        record = await run_scripted_call(script, brain_factory=lambda start: fake.brain())
    assert record.transcript.outcome == "escalated"
    responses = fake.connections[0].tool_responses
    assert [r["name"] for r in responses] == ["transfer_to_human"]
    assert responses[0]["response"]["state"] == "escalating"
    assert any("Please hold while I connect you" in t for t in fake.connections[0].text_turns)
    assert record.render() == transcript_snapshot


@pytest.mark.looptime
async def test_gemini_call_barge_in_cuts_the_agent(tls, transcript_snapshot):
    """The caller talks over the narration: the agent stops at once and answers the new question."""
    script = load_script(CALLS / "barge_in_during_narration.yaml")
    async with FakeGeminiLive(script, tls=tls) as fake:
        record = await run_scripted_call(script, brain_factory=lambda start: fake.brain())
    assert record.transcript.outcome == "resolved"
    assert fake.interruptions == 1
    assert record.platform.kill_audio == 1
    assert record.render() == transcript_snapshot


@pytest.mark.looptime
async def test_gemini_call_dropped_socket_resumes_the_session(tls, transcript_snapshot):
    """The socket dies without a close frame after the first turn; the brain resumes with its handle."""
    script = load_script(CALLS / "returning_caller_by_phone.yaml")
    faults = GeminiFaults(drop_after_turn=1)
    async with FakeGeminiLive(script, tls=tls, faults=faults) as fake:
        record = await run_scripted_call(script, brain_factory=lambda start: fake.brain())
    assert record.transcript.outcome == "resolved"
    assert fake.connections[0].ended == "dropped"
    assert fake.connections[1].resumed_with == "handle-1"
    assert record.render() == transcript_snapshot


@pytest.mark.looptime
async def test_gemini_call_go_away_moves_to_a_resumed_connection(tls):
    """go_away (the ~10-minute limit) makes the brain reconnect with its handle before the server cuts it."""
    script = load_script(CALLS / "returning_caller_by_phone.yaml")
    faults = GeminiFaults(go_away_after_turn=1, go_away_time_left_s=3.0)
    async with FakeGeminiLive(script, tls=tls, faults=faults) as fake:
        record = await run_scripted_call(script, brain_factory=lambda start: fake.brain())
    assert record.transcript.outcome == "resolved"
    assert len(fake.connections) == 2
    assert fake.connections[1].resumed_with == "handle-1"
    assert record.transcript.of_kind("error") == []


@pytest.mark.looptime
async def test_gemini_call_malformed_message_resumes_the_session(tls):
    """A frame that is not JSON ends that connection; the brain resumes and the call is unaffected."""
    script = load_script(CALLS / "returning_caller_by_phone.yaml")
    async with FakeGeminiLive(script, tls=tls, faults=GeminiFaults(malformed_after_turn=1)) as fake:
        record = await run_scripted_call(script, brain_factory=lambda start: fake.brain())
    assert record.transcript.outcome == "resolved"
    assert fake.connections[1].resumed_with == "handle-1"


@pytest.mark.looptime
async def test_gemini_call_first_connect_refused_retries_once(tls):
    """An HTTP 503 on the first connection is retried once, and the call goes on normally."""
    script = load_script(CALLS / "returning_caller_by_phone.yaml")
    faults = GeminiFaults(refuse_connections=frozenset({1}))
    async with FakeGeminiLive(script, tls=tls, faults=faults) as fake:
        record = await run_scripted_call(script, brain_factory=lambda start: fake.brain())
    assert record.transcript.outcome == "resolved"
    assert [c.ended for c in fake.connections] == ["refused", "closed"]


@pytest.mark.looptime
async def test_gemini_call_drop_then_quota_escalates(tls, transcript_snapshot):
    """The socket drops and the reconnect hits the quota: the caller hears an apology and is transferred."""
    script = load_script(CALLS / "returning_caller_by_phone.yaml")
    faults = GeminiFaults(drop_after_turn=1, quota_connections=frozenset({2}))
    async with FakeGeminiLive(script, tls=tls, faults=faults) as fake:
        record = await run_scripted_call(script, brain_factory=lambda start: fake.brain())
    assert record.transcript.outcome == "escalated"
    assert [c.ended for c in fake.connections] == ["dropped", "quota"]
    assert "quota exceeded" in record.render()
    assert record.render() == transcript_snapshot


@pytest.mark.looptime
async def test_gemini_call_unreachable_at_start_escalates(tls):
    """Gemini refuses both the first connection and the retry: the flow's brain_failed route runs."""
    script = load_script(CALLS / "returning_caller_by_phone.yaml")
    faults = GeminiFaults(refuse_connections=frozenset({1, 2}))
    async with FakeGeminiLive(script, tls=tls, faults=faults) as fake:
        record = await run_scripted_call(script, brain_factory=lambda start: fake.brain())
    assert record.transcript.outcome == "escalated"
    assert "refused the connection (HTTP 503)" in record.render()
    assert len(fake.connections) == 2
