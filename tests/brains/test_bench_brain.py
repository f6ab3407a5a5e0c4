"""The bench brain: an instant tone reply after the caller stops, in the service and a process."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from orchestrator.audio.frames import rms_dbfs
from orchestrator.brains.bench import BenchBrain, reply_tone
from orchestrator.script import CallScript
from orchestrator.simulator import FakeSautikit
from orchestrator.testing import run_scripted_call
from tests.serving import wait_until_serving

ROOT = Path(__file__).resolve().parents[2]


def _script(*turns: dict[str, object]) -> CallScript:
    return CallScript.model_validate(
        {"title": "bench", "caller": "+254712345678", "turns": list(turns)}
    )


def test_bench_reply_tone_is_a_fixed_length_audible_tone_in_100ms_chunks():
    """The reply is exactly the asked length, cut in 100 ms chunks, loud enough to hear."""
    chunks = reply_tone(16000, 1500)
    assert len(chunks) == 15
    assert {len(chunk) for chunk in chunks} == {3200}
    assert rms_dbfs(chunks[3]) > -20
    assert reply_tone(16000, 1500) is chunks  # made once


@pytest.mark.looptime
async def test_bench_brain_answers_each_line_and_latency_counts_from_the_last_speech():
    """The brain answers 200 ms after the caller stops, before the session's 400 ms end of turn:
    the transcript measures the wait from the caller's last speech frame, not from a later turn."""
    record = await run_scripted_call(
        _script({"caller": "Where is my order?"}, {"caller": "Thank you."}, {"hangup": None}),
        brain_factory=lambda start: BenchBrain(),
    )
    latencies = record.transcript.of_kind("latency")
    assert len(latencies) == 2
    for line in latencies:
        assert "the brain answered before the end of turn was detected" in line
        total_ms = int(re.search(r"reply audio (\d+) ms", line).group(1))
        assert (
            100 <= total_ms <= 320
        )  # 200 ms of silence by the brain's own detector, not 400 + a turn
    assert len(record.transcript.of_kind("agent")) == 3  # the greeting and two replies


@pytest.mark.looptime
async def test_bench_brain_reply_is_cut_off_by_a_caller_who_talks_over_it():
    """Talking over the tone in an interruptible state cuts it off with a killAudio."""
    record = await run_scripted_call(
        _script(
            {"caller": "Where is my order?"},
            {"caller": "Wait, the other one please.", "barge_in_after_ms": 500},
            {"hangup": None},
        ),
        brain_factory=lambda start: BenchBrain(reply_ms=2000),
    )
    assert record.platform.kill_audio == 1
    assert any("agent cut at" in line for line in record.transcript.of_kind("barge-in"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_serve_with_the_bench_brain_and_log_level_warning_answers_quietly(tmp_path):
    """`serve --brain bench --log-level warning` answers a call and logs no info lines."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "ORCHESTRATOR_CALLS_DB": str(tmp_path / "calls.sqlite3")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orchestrator.cli",
        "serve",
        "--port",
        str(port),
        "--public-url",
        base,
        "--brain",
        "bench",
        "--log-level",
        "warning",
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        async with aiohttp.ClientSession() as http:
            await wait_until_serving(http, base, attempts=100)
        platform = await FakeSautikit(base).call(
            _script({"caller": "Hello?"}, {"hangup": None}), call_sid="HD_bench01"
        )
        assert platform.ended_by == "caller"
        assert platform.agent_track.count(b"\x00") < len(platform.agent_track)  # the tone was heard
    finally:
        process.terminate()
        _, stderr = await process.communicate()
    assert b"Traceback" not in stderr
    assert b'"level": "info"' not in stderr
