"""Whole calls through the real service with the Gemini Live brain against a loopback fake of Gemini Live.

Every call runs once per model generation the fake knows (2.5, 3.1, 3.8): the fake closes the socket where that
model would (client content after the initial history on 3.1, `mediaChunks`, a null resumption handle), so a
call that resolves in every mode follows every model's rules.
"""

from __future__ import annotations

import pytest

from orchestrator.script import load_script
from orchestrator.testing import CallRecord, TranscriptSnapshotExtension, run_scripted_call
from tests.fakes.gemini_live import GENERATIONS, FakeGeminiLive, GeminiFaults, Generation
from tests.fakes.tls import LoopbackTls, make_loopback_tls
from tests.flows import SCRIPTS

CALLS = SCRIPTS


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> LoopbackTls:
    return make_loopback_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(params=GENERATIONS)
def generation(request: pytest.FixtureRequest) -> Generation:
    return request.param


@pytest.fixture
def transcript_snapshot(snapshot):
    return snapshot.use_extension(TranscriptSnapshotExtension)


def assert_no_refusals(fake: FakeGeminiLive) -> None:
    assert [c.ended for c in fake.connections if c.ended.startswith("1007")] == []


def cuts(record: CallRecord) -> list[str]:
    return [line for line in record.transcript.of_kind("barge-in") if "agent cut at" in line]


@pytest.mark.looptime
async def test_gemini_call_happy_path_resolves(tls, generation, transcript_snapshot):
    """A returning caller hears their order's status from Gemini, which looked it up with the tool."""
    script = load_script(CALLS / "returning_caller_by_phone.yaml")
    async with FakeGeminiLive(script, tls=tls, generation=generation) as fake:
        record = await run_scripted_call(script, brain_factory=lambda start: fake.brain())
    assert record.transcript.outcome == "resolved"
    assert len(fake.connections) == 1
    assert_no_refusals(fake)
    assert record.render() == transcript_snapshot


@pytest.mark.looptime
async def test_gemini_call_every_state_change_reaches_the_model_by_its_row(tls, generation):
    """greeting -> identifying -> looking_up -> narrating -> ended; each change goes by the row's strategy."""
    script = load_script(CALLS / "returning_caller_by_phone.yaml")
    async with FakeGeminiLive(script, tls=tls, generation=generation) as fake:
        record = await run_scripted_call(script, brain_factory=lambda start: fake.brain())
    states = record.transcript.of_kind("state")
    assert states == [
        "-> greeting",
        "greeting -> identifying (stream_started)",
        "identifying -> looking_up (tool:lookup_order)",
        "looking_up -> narrating (order_found)",
        "narrating -> ended (tool:end_call)",
    ]
    text = "client_content" if generation == "2.5" else "realtime_text"
    assert record.transcript.of_kind("model") == [
        f"identifying reached the model by {text}",
        "looking_up reached the model by tool_result",
        "narrating reached the model by tool_result",
        "ended reached the model by tool_result",
    ]
    connection = fake.connections[0]
    step = next(t for t in connection.text_turns if "step 'identifying'" in t)
    assert step in (connection.client_texts if generation == "2.5" else connection.realtime_texts)
    lookup = next(r for r in connection.tool_responses if r["name"] == "lookup_order")
    assert lookup["response"]["state"] == "narrating"
    assert "Tell the caller that order DX1042 is" in lookup["response"]["instructions"]
    assert lookup.get("scheduling") == ("WHEN_IDLE" if generation == "3.8" else None)
    assert_no_refusals(fake)


@pytest.mark.looptime
async def test_gemini_call_tool_call_transfers_to_a_person(tls, generation, transcript_snapshot):
    """Gemini's transfer_to_human call moves the call to escalating; the hold line is spoken verbatim."""
    script = load_script(CALLS / "asks_for_human.yaml")
    async with FakeGeminiLive(script, tls=tls, generation=generation) as fake:
        record = await run_scripted_call(script, brain_factory=lambda start: fake.brain())
    assert record.transcript.outcome == "escalated"
    responses = fake.connections[0].tool_responses
    assert [r["name"] for r in responses] == ["transfer_to_human"]
    assert responses[0]["response"]["state"] == "escalating"
    assert any("Please hold while I connect you" in t for t in fake.connections[0].text_turns)
    assert_no_refusals(fake)
    assert record.render() == transcript_snapshot


@pytest.mark.looptime
async def test_gemini_call_barge_in_cuts_the_agent_exactly_once(tls, generation, transcript_snapshot):
    """The caller talks over the narration: the session's own barge-in cuts it once; Gemini does not."""
    script = load_script(CALLS / "barge_in_during_narration.yaml")
    async with FakeGeminiLive(script, tls=tls, generation=generation) as fake:
        record = await run_scripted_call(script, brain_factory=lambda start: fake.brain())
    assert record.transcript.outcome == "resolved"
    assert fake.interruptions == 0  # activity handling NO_INTERRUPTION: the server never cut it
    assert len(cuts(record)) == 1
    assert record.platform.kill_audio == 1
    assert_no_refusals(fake)
    assert record.render() == transcript_snapshot


@pytest.mark.parametrize(
    ("script", "noticed"),
    [
        ("cough_during_narration.yaml", False),  # too short for the session's VAD; Gemini's would cut on it
        ("barge_in_during_narration.yaml", True),  # heard, and ignored: the state is not interruptible
    ],
    ids=["cough", "words"],
)
@pytest.mark.looptime
async def test_gemini_call_nothing_cuts_a_non_interruptible_state(
    tls, generation, steady_narration, script, noticed
):
    """A cough or words over a non-interruptible narration: Gemini's barge-in is off, so it plays to the end."""
    call = load_script(CALLS / script)
    async with FakeGeminiLive(call, tls=tls, generation=generation) as fake:
        record = await run_scripted_call(
            call, flow=steady_narration, brain_factory=lambda start: fake.brain()
        )
    assert record.transcript.outcome == "resolved"
    assert fake.interruptions == 0
    assert cuts(record) == []
    assert record.platform.kill_audio == 0
    ignored = "ignored: narrating is not interruptible" in record.transcript.of_kind("barge-in")
    assert ignored is noticed
    narration = next(a for a in record.transcript.of_kind("agent") if "DX1042" in a)
    assert narration.endswith('close."') or narration.endswith('Anything else?"')


@pytest.mark.looptime
async def test_gemini_call_server_barge_in_on_lets_a_cough_cut_the_reply(
    tls, generation, steady_narration
):
    """With server_barge_in=True (Gemini's default activity handling) a mere cough stops the model."""
    script = load_script(CALLS / "cough_during_narration.yaml")
    async with FakeGeminiLive(script, tls=tls, generation=generation) as fake:
        record = await run_scripted_call(
            script,
            flow=steady_narration,
            brain_factory=lambda start: fake.brain(server_barge_in=True),
        )
    assert "realtimeInputConfig" not in fake.connections[0].setup
    assert fake.interruptions == 1
    assert any("model stopped" in line for line in record.transcript.of_kind("barge-in"))


@pytest.mark.looptime
async def test_gemini_call_dropped_socket_resumes_the_session(tls, generation, transcript_snapshot):
    """The socket dies without a close frame after the first turn; the brain resumes with its handle."""
    script = load_script(CALLS / "returning_caller_by_phone.yaml")
    faults = GeminiFaults(drop_after_turn=1)
    async with FakeGeminiLive(script, tls=tls, faults=faults, generation=generation) as fake:
        record = await run_scripted_call(script, brain_factory=lambda start: fake.brain())
    assert record.transcript.outcome == "resolved"
    assert fake.connections[0].ended == "dropped"
    assert fake.connections[1].resumed_with == "handle-1"
    assert_no_refusals(fake)
    assert record.render() == transcript_snapshot


@pytest.mark.looptime
async def test_gemini_call_fresh_session_is_seeded_with_the_conversation(tls, generation):
    """No handle to resume: 3.x gets the history as initial client content (history_config); 2.5 in its prompt."""
    script = load_script(CALLS / "returning_caller_by_phone.yaml")
    faults = GeminiFaults(drop_after_turn=1, resumption=False)
    async with FakeGeminiLive(script, tls=tls, faults=faults, generation=generation) as fake:
        record = await run_scripted_call(script, brain_factory=lambda start: fake.brain())
    assert record.transcript.outcome == "resolved"
    second = fake.connections[1]
    assert second.resumed_with is None
    assert "handle" not in str(second.setup.get("sessionResumption"))
    if generation == "2.5":
        assert "historyConfig" not in second.setup
        assert "The conversation so far" in str(second.setup["systemInstruction"])
    else:
        # The SDK writes the inner key snake_case; the service's JSON parser takes either spelling.
        assert list(second.setup["historyConfig"].values()) == [True]
        assert second.seeded[0]["role"] == "model"
        assert second.seeded[0]["parts"] == [{"text": "How can I help you today?"}]
    assert_no_refusals(fake)


@pytest.mark.looptime
async def test_gemini_call_go_away_moves_to_a_resumed_connection(tls, generation):
    """go_away (the ~10-minute limit) makes the brain reconnect with its handle before the server cuts it."""
    script = load_script(CALLS / "returning_caller_by_phone.yaml")
    faults = GeminiFaults(go_away_after_turn=1, go_away_time_left_s=3.0)
    async with FakeGeminiLive(script, tls=tls, faults=faults, generation=generation) as fake:
        record = await run_scripted_call(script, brain_factory=lambda start: fake.brain())
    assert record.transcript.outcome == "resolved"
    assert len(fake.connections) == 2
    assert fake.connections[1].resumed_with == "handle-1"
    assert record.transcript.of_kind("error") == []


@pytest.mark.looptime
async def test_gemini_call_malformed_message_resumes_the_session(tls, generation):
    """A frame that is not JSON ends that connection; the brain resumes and the call is unaffected."""
    script = load_script(CALLS / "returning_caller_by_phone.yaml")
    faults = GeminiFaults(malformed_after_turn=1)
    async with FakeGeminiLive(script, tls=tls, faults=faults, generation=generation) as fake:
        record = await run_scripted_call(script, brain_factory=lambda start: fake.brain())
    assert record.transcript.outcome == "resolved"
    assert fake.connections[1].resumed_with == "handle-1"


@pytest.mark.looptime
async def test_gemini_call_first_connect_refused_retries_once(tls, generation):
    """An HTTP 503 on the first connection is retried once, and the call goes on normally."""
    script = load_script(CALLS / "returning_caller_by_phone.yaml")
    faults = GeminiFaults(refuse_connections=frozenset({1}))
    async with FakeGeminiLive(script, tls=tls, faults=faults, generation=generation) as fake:
        record = await run_scripted_call(script, brain_factory=lambda start: fake.brain())
    assert record.transcript.outcome == "resolved"
    assert [c.ended for c in fake.connections] == ["refused", "closed"]


@pytest.mark.looptime
async def test_gemini_call_drop_then_quota_escalates(tls, generation, transcript_snapshot):
    """The socket drops and the reconnect hits the quota: the caller hears an apology and is transferred."""
    script = load_script(CALLS / "returning_caller_by_phone.yaml")
    faults = GeminiFaults(drop_after_turn=1, quota_connections=frozenset({2}))
    async with FakeGeminiLive(script, tls=tls, faults=faults, generation=generation) as fake:
        record = await run_scripted_call(script, brain_factory=lambda start: fake.brain())
    assert record.transcript.outcome == "escalated"
    assert [c.ended for c in fake.connections] == ["dropped", "quota"]
    assert "quota exceeded" in record.render()
    assert record.render() == transcript_snapshot


@pytest.mark.looptime
async def test_gemini_call_unreachable_at_start_escalates(tls, generation):
    """Gemini refuses both the first connection and the retry: the flow's brain_failed route runs."""
    script = load_script(CALLS / "returning_caller_by_phone.yaml")
    faults = GeminiFaults(refuse_connections=frozenset({1, 2}))
    async with FakeGeminiLive(script, tls=tls, faults=faults, generation=generation) as fake:
        record = await run_scripted_call(script, brain_factory=lambda start: fake.brain())
    assert record.transcript.outcome == "escalated"
    assert "refused the connection (HTTP 503)" in record.render()
    assert len(fake.connections) == 2
