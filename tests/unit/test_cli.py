"""The `orchestrator` command line, run the way users run it."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import structlog

from orchestrator.cli import _run_demo, main
from orchestrator.script import load_script
from orchestrator.simulator import FakeSautikit
from tests.flows import CARE_DESK, ORDER_STATUS, SCRIPTS
from tests.serving import wait_until_serving

ROOT = Path(__file__).resolve().parents[2]
FLOW = ORDER_STATUS


@pytest.fixture(autouse=True)
def _reset_logging():
    """The CLI configures logging process-wide: put it back for the tests that follow."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    httpx_level = logging.getLogger("httpx").level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("httpx").setLevel(httpx_level)


def test_cli_help_lists_every_command(capsys):
    """`orchestrator --help` names serve, flow, demo and call."""
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("serve", "flow", "demo", "call"):
        assert command in out


def test_cli_serve_help_documents_environment_variables(capsys):
    """`orchestrator serve --help` documents the flags and their environment variables."""
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    for text in ("--public-url", "ORCHESTRATOR_PUBLIC_URL", "ORCHESTRATOR_PORT", "SAUTIKIT_WEBHOOK_SECRET"):
        assert text in out


def test_cli_flow_check_summarises_a_valid_flow(capsys):
    """A valid flow exits 0 with a summary naming its states and tools."""
    assert main(["flow", "check", str(FLOW)]) == 0
    out = capsys.readouterr().out
    assert f"{FLOW}: ok" in out
    for name in ("greeting", "identifying", "looking_up", "narrating", "escalating", "ended", "lookup_order"):
        assert name in out


def test_cli_flow_check_reports_located_errors(tmp_path, capsys):
    """An invalid flow exits 1 and prints every problem as path:line:col: message."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "flow: broken\ninitial: greeting\nstates:\n  greeting:\n    on:\n      stream_started: nowhere\n"
    )
    assert main(["flow", "check", str(bad)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err
    assert all(line.startswith(f"{bad}:") for line in err)
    assert any(":6:" in line and "nowhere" in line for line in err)


def test_cli_flow_diagram_prints_mermaid(capsys):
    """`flow diagram` prints a Mermaid state diagram of the flow."""
    assert main(["flow", "diagram", str(FLOW)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("stateDiagram-v2")
    assert "greeting --> identifying" in out


def test_cli_without_command_prints_help(capsys):
    """Running with no command shows the help and exits 2."""
    assert main([]) == 2
    assert "commands" in capsys.readouterr().out


@pytest.mark.looptime
async def test_cli_demo_writes_transcript_and_two_track_wav(tmp_path, capsys):
    """The demo serves, places a call, prints it live and leaves a transcript and a stereo WAV."""
    args = argparse.Namespace(
        scenario="returning-caller", out=tmp_path, flow=None, verbose=False, brain="scripted"
    )
    assert await _run_demo(args) == 0
    out = capsys.readouterr().out
    assert "greeting -> identifying" in out
    assert "outcome: resolved" in out
    transcript = (tmp_path / "returning-caller.txt").read_text()
    assert "lookup_order" in transcript
    wav = (tmp_path / "returning-caller.wav").read_bytes()
    assert wav[:4] == b"RIFF"
    assert int.from_bytes(wav[22:24], "little") == 2  # caller and agent tracks


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_cli_serve_answers_a_call_as_a_real_process(tmp_path):
    """`orchestrator serve` started as a process answers a simulated Sautikit call end to end."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "ORCHESTRATOR_TRANSCRIPTS_DIR": str(tmp_path),
        "ORCHESTRATOR_CALLS_DB": str(tmp_path / "calls.sqlite3"),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orchestrator.cli", "serve", "--port", str(port), "--public-url", base,
        "--brain", "scripted", "--script", str(SCRIPTS / "asks_for_human.yaml"),
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        async with aiohttp.ClientSession() as http:
            await wait_until_serving(http, base, attempts=100)
        script = load_script(SCRIPTS / "asks_for_human.yaml")
        platform = await FakeSautikit(base).call(script, call_sid="HD_process01")
        assert platform.dialed == CARE_DESK
        transcript = tmp_path / "HD_process01.txt"
        for _ in range(100):  # the file is created, then written: wait for its last line, not its name
            if transcript.exists() and "outcome" in transcript.read_text():
                break
            await asyncio.sleep(0.1)
        assert "outcome   escalated" in transcript.read_text()
    finally:
        process.terminate()
        _, stderr = await process.communicate()
    assert b"Traceback" not in stderr
    # The finished call is in the service's call store, readable with `orchestrator history`.
    history = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orchestrator.cli", "history", "list", "--db", str(tmp_path / "calls.sqlite3"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    out, err = await history.communicate()
    assert history.returncode == 0, err
    assert b"HD_process01" in out
    assert b"escalated" in out


@pytest.mark.looptime
async def test_cli_demo_offline_brain_understands_the_spoken_caller(tmp_path, capsys):
    """The default demo: a flite caller reads out an order number, the offline brain finds and reads it."""
    args = argparse.Namespace(scenario="by-order-number", out=tmp_path, flow=None, verbose=False, brain="offline")
    assert await _run_demo(args) == 0
    transcript = (tmp_path / "by-order-number.txt").read_text()
    assert 'lookup_order {"order_number": "PK20931"}' in transcript
    assert "outcome   resolved" in transcript


@pytest.mark.parametrize(("brain", "variable"), [("gemini", "GEMINI_API_KEY"), ("openai", "OPENAI_API_KEY")])
def test_cli_serve_names_the_missing_key(brain, variable, monkeypatch, capsys):
    """A realtime brain without its key stops at start-up with an error naming the variable."""
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert main(["serve", "--brain", brain, "--port", "0"]) == 2
    assert variable in capsys.readouterr().err
