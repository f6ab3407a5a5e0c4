"""GET /metrics after real calls: the families an on-call engineer graphs, scraped and parsed like Prometheus does.

Whole calls through the real service and the fake Sautikit on a fast-forwarded clock; the scrape is a real HTTP
request to the same server, and the body is read with prometheus-client's own parser.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.brains.openai_realtime import OpenAIRealtimeBrain
from orchestrator.brains.scripted import ScriptedBrain
from orchestrator.call.tools import ToolCallContext, ToolError
from orchestrator.flow import load_flow
from orchestrator.harness import serve_line
from orchestrator.script import load_script
from orchestrator.settings import Settings
from tests.calls.test_tool_actions import FLOW as SMS_FLOW
from tests.calls.test_tool_actions import sms_done_then_failed
from tests.fakes.openai_realtime import FakeOpenAIRealtime, Fault
from tests.flows import SCRIPTS

CALLS = SCRIPTS  # the engine tests' pinned call scripts
SCRAPE_TOKEN = "s3cret-scrape"  # noqa: S105 - test credential


def _samples(body: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, keyed by name and sorted labels."""
    samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def _scripted(path: Path):
    script = load_script(path)
    return lambda start: ScriptedBrain(script)


async def _calls_then_scrape(scripts: dict[str, Path]):
    """Place each scripted call (by call id) on one line, then scrape it: the records and the samples."""
    brains = {call_sid: load_script(path) for call_sid, path in scripts.items()}
    async with serve_line(
        settings=Settings(fallback_voice="synthetic"),
        brain_factory=lambda start: ScriptedBrain(brains[start.call_sid]),
    ) as line:
        records = [await line.call(brains[sid], call_sid=sid) for sid in scripts]
        response = await _scrape(line.url)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return records, _samples(response.text)


async def _scrape(url: str, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient() as client:
        return await client.get(f"{url}/metrics", headers=headers)


async def _openai_call_then_scrape(fault: Fault):
    """A returning caller's call on OpenAI Realtime's fake with one `fault`; the fake, record and samples."""
    script = load_script(CALLS / "returning_caller_by_phone.yaml")
    async with (
        FakeOpenAIRealtime(script, faults=(fault,)) as fake,
        serve_line(
            settings=Settings(fallback_voice="synthetic"),
            brain_factory=lambda start: OpenAIRealtimeBrain(fake.config()),
        ) as line,
    ):
        record = await line.call(script, call_sid="HD_openai01")
        samples = _samples((await _scrape(line.url)).text)
    return fake, record, samples


@pytest.mark.looptime
async def test_metrics_after_a_resolved_call_count_it_with_its_turns_and_lookup():
    """A call that reads out an order counts as one resolved call with its lookup, tools and turns."""
    _records, samples = await _calls_then_scrape(
        {"HD_metrics01": CALLS / "order_number_read_out.yaml"}
    )
    assert _value(samples, "orchestrator_calls_started_total") == 1
    assert _value(samples, "orchestrator_calls_total", outcome="resolved", final_state="ended") == 1
    assert _value(samples, "orchestrator_active_calls") == 0
    assert _value(samples, "orchestrator_lookups_total", result="found") == 1
    assert _value(samples, "orchestrator_lookup_latency_seconds_count", result="found") == 1
    accepted = {"tool": "lookup_order", "result": "accepted"}
    assert _value(samples, "orchestrator_tool_calls_total", **accepted) == 1
    turns = _value(samples, "orchestrator_turn_latency_seconds_count", stage="first_audio")
    assert turns >= 1
    assert _value(samples, "orchestrator_turn_latency_seconds_count", stage="brain") == turns
    # The reply can't come before the caller stops: total wait is at least the end-of-turn wait.
    assert _value(samples, "orchestrator_turn_latency_seconds_sum", stage="first_audio") >= _value(
        samples, "orchestrator_turn_latency_seconds_sum", stage="end_of_turn"
    )
    assert _value(samples, "orchestrator_first_prompt_latency_seconds_count") == 1
    assert _value(samples, "orchestrator_barge_ins_total", outcome="confirmed") == 0
    assert _value(samples, "orchestrator_call_store_write_failures_total") == 0
    # Nothing failed, and a dashboard sees that as a zero for this brain, not as a missing series.
    for family in ("orchestrator_brain_failures_total", "orchestrator_brain_reconnects_total"):
        assert samples[(family, (("brain", "scripted"),))] == 0


async def test_metrics_export_a_flows_tool_actions_at_zero_before_any_call():
    """A flow tool with an action (here `http:`) has its done/failed series from the start; built-ins have none."""
    async with serve_line(
        flow=load_flow(SMS_FLOW),
        settings=Settings(fallback_voice="synthetic"),
        brain_factory=_scripted(CALLS / "asks_for_human.yaml"),
    ) as line:
        samples = _samples((await _scrape(line.url)).text)
    actions = {labels for (name, labels) in samples if name == "orchestrator_tool_actions_total"}
    assert actions == {
        (("result", "done"), ("tool", "send_tracking_sms")),
        (("result", "failed"), ("tool", "send_tracking_sms")),
    }
    latency = ("orchestrator_tool_action_latency_seconds_count", (("tool", "send_tracking_sms"),))
    assert samples[latency] == 0


@pytest.mark.looptime
async def test_metrics_count_barge_ins_by_what_was_decided():
    """An interruption is confirmed, a "mhmm" resumed, speech over a non-interruptible state ignored."""
    _records, samples = await _calls_then_scrape(
        {
            "HD_barge01": CALLS / "barge_in_during_narration.yaml",
            "HD_barge02": CALLS / "backchannel_during_narration.yaml",
            "HD_barge03": CALLS / "talks_over_hold_message.yaml",
        }
    )
    assert _value(samples, "orchestrator_calls_started_total") == 3
    assert _value(samples, "orchestrator_barge_ins_total", outcome="confirmed") == 1
    assert _value(samples, "orchestrator_barge_ins_total", outcome="resumed") == 1
    assert _value(samples, "orchestrator_barge_ins_total", outcome="ignored") >= 1


@pytest.mark.looptime
async def test_metrics_count_escalation_steps_and_failed_lookups():
    """A lookup against a failing orders API counts as failed; the escalation after it by strategy."""
    (record,), samples = await _calls_then_scrape(
        {"HD_metrics02": CALLS / "orders_api_down_5xx.yaml"}
    )
    assert _value(samples, "orchestrator_lookups_total", result="failed") >= 1
    tried = record.transcript.of_kind("escalate")
    assert any(line.startswith("trying") for line in tried)
    steps = sum(
        value
        for (name, _labels), value in samples.items()
        if name == "orchestrator_escalation_steps_total"
    )
    assert steps == sum(1 for line in tried if line.startswith("trying"))
    outcome = record.transcript.outcome
    assert (
        sum(
            value
            for (name, labels), value in samples.items()
            if name == "orchestrator_calls_total" and ("outcome", outcome) in labels
        )
        == 1
    )


async def test_metrics_behind_a_token_refuse_a_scrape_without_it():
    """With ORCHESTRATOR_METRICS_TOKEN set, a scrape needs `Authorization: Bearer <token>`."""
    settings = Settings(fallback_voice="synthetic", metrics_token=SCRAPE_TOKEN)
    brain_factory = _scripted(CALLS / "asks_for_human.yaml")
    async with serve_line(settings=settings, brain_factory=brain_factory) as line:
        anonymous = await _scrape(line.url)
        wrong = await _scrape(line.url, token=SCRAPE_TOKEN[::-1])
        right = await _scrape(line.url, token=SCRAPE_TOKEN)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert wrong.status_code == 401
    assert right.status_code == 200
    assert "orchestrator_event_loop_lag_seconds" in right.text


@pytest.mark.looptime
async def test_metrics_of_two_apps_in_one_process_do_not_mix():
    """Each app counts in its own registry: a call on one line never shows up on the other."""
    script = CALLS / "asks_for_human.yaml"
    settings = Settings(fallback_voice="synthetic")
    async with (
        serve_line(settings=settings, brain_factory=_scripted(script)) as first,
        serve_line(settings=settings, brain_factory=_scripted(script)) as second,
    ):
        await first.call(script, call_sid="HD_first001")
        one = _samples((await _scrape(first.url)).text)
        other = _samples((await _scrape(second.url)).text)
    assert _value(one, "orchestrator_calls_started_total") == 1
    assert _value(other, "orchestrator_calls_started_total") == 0


@pytest.mark.looptime
async def test_metrics_count_a_brain_reconnect_by_brain_kind():
    """OpenAI Realtime's socket drops mid-call and the adapter reconnects: one reconnect, no failure."""
    fake, record, samples = await _openai_call_then_scrape(
        Fault(action="drop", after_caller_line=1)
    )
    assert fake.connections == 2
    assert record.transcript.outcome == "resolved"
    assert _value(samples, "orchestrator_brain_reconnects_total", brain="openairealtime") == 1
    assert _value(samples, "orchestrator_brain_failures_total", brain="openairealtime") == 0


@pytest.mark.looptime
async def test_metrics_count_tool_actions_done_and_failed(tmp_path):
    """A flow's own tool action counts as done when its handler answers and failed when it raises."""
    async with sms_done_then_failed(tmp_path) as line:
        samples = _samples((await _scrape(line.url)).text)
    done = {"tool": "send_tracking_sms", "result": "done"}
    failed = {"tool": "send_tracking_sms", "result": "failed"}
    assert _value(samples, "orchestrator_tool_actions_total", **done) == 1
    assert _value(samples, "orchestrator_tool_actions_total", **failed) == 1
    latency = {"tool": "send_tracking_sms"}
    assert _value(samples, "orchestrator_tool_action_latency_seconds_count", **latency) == 2


@pytest.mark.looptime
async def test_metrics_count_a_brain_failure_by_brain_kind():
    """OpenAI Realtime answers with an exhausted quota mid-call: one failure, and the flow escalates."""
    _fake, record, samples = await _openai_call_then_scrape(
        Fault(action="quota", after_caller_line=1)
    )
    assert record.transcript.outcome == "escalated"
    assert _value(samples, "orchestrator_brain_failures_total", brain="openairealtime") == 1
    assert (
        _value(samples, "orchestrator_calls_total", outcome="escalated", final_state="escalating")
        == 1
    )


async def test_metrics_count_call_record_writes_the_store_refused(tmp_path):
    """Another process holds the calls database's write lock during a call: each refused write is counted,
    and the records still arrive once the lock is gone."""
    db = tmp_path / "calls.sqlite3"
    script = load_script(CALLS / "hangup_mid_narration.yaml")
    settings = Settings(fallback_voice="synthetic", calls_db=str(db), calls_db_busy_timeout_s=0.05)
    async with serve_line(
        settings=settings, brain_factory=lambda start: ScriptedBrain(script)
    ) as line:
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            await line.call(script, call_sid="HD_locked01")
            refused = _samples((await _scrape(line.url)).text)
        finally:
            blocker.execute("COMMIT")
            blocker.close()
        async with asyncio.timeout(30):
            while (await _health(line.url))["records_pending"]:  # noqa: ASYNC110 - the service's own view
                await asyncio.sleep(0.1)
    assert _value(refused, "orchestrator_call_store_write_failures_total") >= 1
    with contextlib.closing(sqlite3.connect(db)) as connection:
        assert connection.execute("SELECT outcome FROM calls").fetchall() == [("abandoned",)]


async def _health(url: str) -> dict[str, object]:
    async with httpx.AsyncClient() as client:
        return dict((await client.get(f"{url}/healthz")).json())
