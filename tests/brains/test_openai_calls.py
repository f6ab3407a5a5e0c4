"""Whole calls through the service and fake Sautikit, with the OpenAI brain on a fake server.

Each test places one scripted call: the fake Sautikit speaks the caller's lines, the fake OpenAI
server plays the model's turns over a loopback WebSocket, and the service between runs the flow.
"""

from __future__ import annotations

import json
import re

import pytest

from orchestrator.brains.openai_realtime import OpenAIRealtimeBrain
from orchestrator.script import CallScript, load_script
from orchestrator.testing import CallRecord, TranscriptSnapshotExtension, run_scripted_call
from tests.fakes.openai_realtime import FakeOpenAIRealtime, Fault
from tests.flows import CARE_DESK, SCRIPTS

CALLS = SCRIPTS


async def place_call(fake: FakeOpenAIRealtime, script: CallScript, **config: object) -> CallRecord:
    return await run_scripted_call(
        script, brain_factory=lambda start: OpenAIRealtimeBrain(fake.config(**config))
    )


# The conversation without clock times: a network brain on a fast-forwarded loop lands a frame
# (20 ms) early or late from run to run, and stream bookkeeping lines interleave with its connect.
STORY = (
    "caller",
    "agent",
    "tool",
    "state",
    "lookup",
    "result",
    "barge-in",
    "error",
    "escalate",
    "outcome",
)


def story(record: CallRecord) -> str:
    lines = [f"# {record.script.title}"]
    for entry in record.transcript.entries:
        if entry.kind in STORY:
            text = re.sub(r"\d+(/\d+)? ms", "<ms>", entry.text)
            text = re.sub(r'heard ".*"$', 'heard "<words>"', text)
            lines.append(f"{entry.kind:<9} {text}")
    platform = record.platform
    lines.append(f"platform: ended by {platform.ended_by}; dialed {platform.dialed or '-'}")
    return "\n".join(lines) + "\n"


def errors_sent(fake: FakeOpenAIRealtime) -> list[object]:
    return [event["error"] for event in fake.sent_of("error")]


@pytest.mark.looptime
async def test_openai_call_resolves_returning_caller(snapshot):
    """A returning caller hears their order's status: greeting, lookup tool round trip, goodbye."""
    script = load_script(CALLS / "returning_caller_by_phone.yaml")
    async with FakeOpenAIRealtime(script) as fake:
        record = await place_call(fake, script)
    assert record.transcript.outcome == "resolved"
    assert story(record) == snapshot(extension_class=TranscriptSnapshotExtension)
    assert errors_sent(fake) == []
    assert fake.connections == 1
    assert fake.models == ["gpt-realtime"]


@pytest.mark.looptime
async def test_openai_call_answers_tool_with_function_call_output():
    """The lookup result returns as a function_call_output for the model's call id."""
    script = load_script(CALLS / "order_number_read_out.yaml")
    async with FakeOpenAIRealtime(script) as fake:
        record = await place_call(fake, script)
    assert record.transcript.outcome == "resolved"
    named = [e["item"] for e in fake.sent_of("response.output_item.added")]
    calls = {i["call_id"]: i["name"] for i in named if i["type"] == "function_call"}
    assert all("name" not in e for e in fake.sent_of("response.function_call_arguments.done"))
    outputs = [
        e["item"] for e in fake.received_of("conversation.item.create")
        if e["item"]["type"] == "function_call_output"
    ]
    assert [calls[o["call_id"]] for o in outputs] == list(calls.values())
    lookup = json.loads(outputs[0]["output"])
    assert lookup["found"] is True
    assert lookup["state"] == "narrating"
    assert "instructions" in lookup
    assert errors_sent(fake) == []


@pytest.mark.looptime
async def test_openai_call_state_change_reaches_the_model():
    """Entering narrating sends session.update with that state's instructions and only its tools."""
    script = load_script(CALLS / "returning_caller_by_phone.yaml")
    async with FakeOpenAIRealtime(script) as fake:
        await place_call(fake, script)
    updates = [e["session"] for e in fake.received_of("session.update")]
    looking_up = next(u for u in updates if u["tools"] == [])
    assert looking_up["tools"] == []
    assert looking_up["tool_choice"] == "none"
    narrating = next(u for u in updates if "step 'narrating'" in u["instructions"])
    assert narrating["instructions"].startswith("You are the phone order-status assistant")
    assert "Tell the caller that order DX1042 is" in narrating["instructions"]
    names = [t["name"] for t in narrating["tools"]]
    assert names == ["lookup_order", "transfer_to_human", "end_call"]


@pytest.mark.looptime
async def test_openai_call_refused_tool_is_answered_not_available():
    """A tool the state does not allow gets "<name> is not available now"; the call goes on."""
    script = CallScript.model_validate(
        {
            "title": "The model reaches for a tool the state does not offer",
            "turns": [
                {"agent": [{"say": "How can I help you today?"}]},
                {"caller": "Cancel my order please."},
                {
                    "agent": [
                        {"tool": "cancel_order"},
                        {"say": "I can only check on orders. Anything else?"},
                    ]
                },
                {"caller": "No, bye."},
                {"agent": [{"say": "Goodbye!"}, {"tool": "end_call"}]},
            ],
        }
    )
    async with FakeOpenAIRealtime(script) as fake:
        record = await place_call(fake, script)
    outputs = [
        json.loads(e["item"]["output"]) for e in fake.received_of("conversation.item.create")
        if e["item"]["type"] == "function_call_output"
    ]
    assert outputs[0] == {"error": "cancel_order is not available now", "state": "identifying"}
    assert record.transcript.of_kind("result")[0] == "cancel_order refused in identifying"
    assert record.transcript.of_kind("state")[-1] == "identifying -> ended (tool:end_call)"


@pytest.mark.looptime
async def test_openai_call_barge_in_truncates_at_played_position(snapshot):
    """The caller cuts in: the response is cancelled, its item truncated where heard."""
    script = load_script(CALLS / "barge_in_during_narration.yaml")
    async with FakeOpenAIRealtime(script) as fake:
        record = await place_call(fake, script)
    assert story(record) == snapshot(extension_class=TranscriptSnapshotExtension)
    (barge_in,) = [line for line in record.transcript.of_kind("barge-in") if "agent cut at" in line]
    played_ms = int(re.search(r"agent cut at (\d+)/", barge_in).group(1))
    (truncate,) = fake.received_of("conversation.item.truncate")
    narration = next(
        e["item_id"] for e in fake.sent_of("response.output_audio_transcript.delta")
        if e["delta"] == "DX1042 "
    )
    assert truncate["item_id"] == narration
    assert truncate["content_index"] == 0
    assert truncate["audio_end_ms"] == played_ms
    assert fake.sent_of("conversation.item.truncated")[0]["audio_end_ms"] == played_ms
    assert record.platform.kill_audio == 1
    assert record.transcript.outcome == "resolved"
    assert [e["code"] for e in errors_sent(fake)] in ([], ["response_cancel_not_active"])


@pytest.mark.looptime
async def test_openai_call_transfer_says_hold_message_verbatim():
    """transfer_to_human: the escalating state's `say` is asked of the model verbatim, then Dial."""
    script = load_script(CALLS / "asks_for_human.yaml")
    async with FakeOpenAIRealtime(script) as fake:
        record = await place_call(fake, script)
    assert record.transcript.outcome == "escalated"
    assert record.platform.dialed == CARE_DESK
    says = [e["response"] for e in fake.received_of("response.create") if "response" in e]
    hold = next(r for r in says if "metadata" in r)
    assert "Please hold while I connect you to a colleague at Duka Express." in hold["instructions"]
    assert hold["tool_choice"] == "none"
    assert errors_sent(fake) == []


@pytest.mark.looptime
async def test_openai_call_survives_socket_drop_by_reconnecting(snapshot):
    """The socket drops after the caller's question: reconnect, session, summary; resolved."""
    script = load_script(CALLS / "returning_caller_by_phone.yaml")
    faults = (Fault(action="drop", after_caller_line=1),)
    async with FakeOpenAIRealtime(script, faults=faults) as fake:
        record = await place_call(fake, script)
    assert fake.connections == 2
    assert record.transcript.outcome == "resolved"
    assert story(record) == snapshot(extension_class=TranscriptSnapshotExtension)
    summary = next(
        e["item"]["content"][0]["text"] for e in fake.received_of("conversation.item.create")
        if e["item"]["type"] == "message"
    )
    assert "Caller: Hi, is my order out for delivery?" in summary
    assert "Agent: How can I help you today?" in summary
    second = [e["session"] for e in fake.received_of("session.update")]
    assert any("audio" in s for s in second[1:]), "the new connection is configured in full"


@pytest.mark.looptime
async def test_openai_call_retries_a_refused_connect():
    """The first connection attempt is refused (HTTP 503): one more try and the call goes ahead."""
    script = load_script(CALLS / "returning_caller_by_phone.yaml")
    async with FakeOpenAIRealtime(script, refuse_connections=1) as fake:
        record = await place_call(fake, script)
    assert fake.attempts == 2
    assert record.transcript.outcome == "resolved"


@pytest.mark.looptime
async def test_openai_call_skips_a_malformed_message():
    """One garbled frame from the server is logged and skipped; the call stays on its connection."""
    script = load_script(CALLS / "returning_caller_by_phone.yaml")
    faults = (Fault(action="malformed", after_caller_line=1),)
    async with FakeOpenAIRealtime(script, faults=faults) as fake:
        record = await place_call(fake, script)
    assert fake.connections == 1
    assert record.transcript.outcome == "resolved"


@pytest.mark.looptime
async def test_openai_call_reconnects_after_repeated_malformed_messages():
    """A run of garbled frames means a broken connection: one reconnection and the call resolves."""
    script = load_script(CALLS / "returning_caller_by_phone.yaml")
    faults = (Fault(action="malformed", after_caller_line=1, count=5),)
    async with FakeOpenAIRealtime(script, faults=faults) as fake:
        record = await place_call(fake, script)
    assert fake.connections == 2
    assert record.transcript.outcome == "resolved"


@pytest.mark.looptime
async def test_openai_call_reconnects_after_rate_limit_error():
    """A rate_limit_exceeded error closes that session; one reconnection gets the call through."""
    script = load_script(CALLS / "returning_caller_by_phone.yaml")
    faults = (Fault(action="rate_limit", after_caller_line=1),)
    async with FakeOpenAIRealtime(script, faults=faults) as fake:
        record = await place_call(fake, script)
    assert fake.connections == 2
    assert record.transcript.outcome == "resolved"


@pytest.mark.looptime
async def test_openai_call_escalates_when_reconnection_also_drops(snapshot):
    """The socket drops, then drops again on the new connection: brain_failed, apology, Dial."""
    script = load_script(CALLS / "returning_caller_by_phone.yaml")
    faults = (Fault(action="drop", after_caller_line=1), Fault(action="drop", on_connection=2))
    async with FakeOpenAIRealtime(script, faults=faults) as fake:
        record = await place_call(fake, script)
    assert story(record) == snapshot(extension_class=TranscriptSnapshotExtension)
    assert fake.connections == 2
    assert record.transcript.outcome == "escalated"
    assert record.platform.dialed == CARE_DESK
    (error,) = record.transcript.of_kind("error")
    assert error.startswith("brain failed: OpenAI Realtime connection closed")


@pytest.mark.parametrize("action", ["quota", "quota_response"])
@pytest.mark.looptime
async def test_openai_call_escalates_on_insufficient_quota(action):
    """No quota (an error event or a failed response) is not fixed by reconnecting: escalate now."""
    script = load_script(CALLS / "returning_caller_by_phone.yaml")
    faults = (Fault(action=action, after_caller_line=1),)
    async with FakeOpenAIRealtime(script, faults=faults) as fake:
        record = await place_call(fake, script)
    assert fake.connections == 1
    assert record.transcript.outcome == "escalated"
    errors = record.transcript.of_kind("error")
    assert errors == ["brain failed: OpenAI Realtime error: insufficient_quota"]


@pytest.mark.looptime
async def test_openai_call_escalates_when_openai_is_unreachable():
    """Every connection attempt is refused: the call does not hang; it apologises and dials out."""
    script = load_script(CALLS / "returning_caller_by_phone.yaml")
    async with FakeOpenAIRealtime(script, refuse_connections=5) as fake:
        record = await place_call(fake, script)
    assert fake.attempts == 2
    assert record.transcript.outcome == "escalated"
    assert record.transcript.of_kind("error") == [
        "brain failed: OpenAI Realtime refused the connection (HTTP 503)"
    ]


@pytest.mark.looptime
async def test_openai_call_every_state_change_reaches_the_model_by_session_update():
    """greeting -> identifying -> looking_up -> narrating -> ended, each by session.update (the row's strategy)."""
    script = load_script(CALLS / "returning_caller_by_phone.yaml")
    async with FakeOpenAIRealtime(script) as fake:
        record = await place_call(fake, script)
    assert record.transcript.of_kind("state") == [
        "-> greeting",
        "greeting -> identifying (stream_started)",
        "identifying -> looking_up (tool:lookup_order)",
        "looking_up -> narrating (order_found)",
        "narrating -> ended (tool:end_call)",
    ]
    assert record.transcript.of_kind("model") == [
        f"{state} reached the model by context_update"
        for state in ("identifying", "looking_up", "narrating", "ended")
    ]
    # Every call ran although no function_call_arguments.done named its function.
    assert [line.split()[0] for line in record.transcript.of_kind("tool")] == ["lookup_order", "end_call"]
    assert record.transcript.outcome == "resolved"


@pytest.mark.looptime
async def test_openai_call_tool_call_of_a_cancelled_response_never_runs():
    """A barge-in cancels the narration; the end_call still in flight from that response is never run."""
    script = load_script(CALLS / "barge_in_during_narration.yaml")
    async with FakeOpenAIRealtime(script, call_on_cancel="end_call") as fake:
        record = await place_call(fake, script)
    cancelled = [e["response"]["id"] for e in fake.sent_of("response.done") if e["response"]["status"] == "cancelled"]
    assert len(cancelled) == 1
    stray = next(
        e["call_id"] for e in fake.sent_of("response.function_call_arguments.done")
        if e["response_id"] == cancelled[0]
    )
    outputs = [
        e["item"]["call_id"] for e in fake.received_of("conversation.item.create")
        if e["item"]["type"] == "function_call_output"
    ]
    assert stray not in outputs
    # The call went on: the caller's question was answered, and end_call ran once, at the real goodbye.
    assert [line.split()[0] for line in record.transcript.of_kind("tool")] == ["lookup_order", "end_call"]
    assert any("PikiPiki. Anything else?" in line for line in record.transcript.of_kind("agent"))
    assert record.transcript.outcome == "resolved"
    assert len([b for b in record.transcript.of_kind("barge-in") if "agent cut at" in b]) == 1


@pytest.mark.parametrize(
    ("script", "noticed"),
    [("cough_during_narration.yaml", False), ("barge_in_during_narration.yaml", True)],
    ids=["cough", "words"],
)
@pytest.mark.looptime
async def test_openai_call_nothing_cuts_a_non_interruptible_state(steady_narration, script, noticed):
    """A cough or words over a non-interruptible narration: no response.cancel, no killAudio, no cut."""
    call = load_script(CALLS / script)
    async with FakeOpenAIRealtime(call) as fake:
        record = await run_scripted_call(
            call,
            flow=steady_narration,
            brain_factory=lambda start: OpenAIRealtimeBrain(fake.config()),
        )
    assert record.transcript.outcome == "resolved"
    assert fake.received_of("response.cancel") == []
    assert [b for b in record.transcript.of_kind("barge-in") if "agent cut at" in b] == []
    assert record.platform.kill_audio == 0
    ignored = "ignored: narrating is not interruptible" in record.transcript.of_kind("barge-in")
    assert ignored is noticed
