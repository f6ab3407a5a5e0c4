"""`orchestrator serve` and `orchestrator call` as a team runs them daily: real processes, one clear line per fault."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
import structlog

from orchestrator.cli import main
from tests.flows import CARE_DESK, OFFLINE_SCRIPTS, SCRIPTS
from tests.serving import wait_until_serving

SCRIPT = SCRIPTS / "asks_for_human.yaml"


@pytest.fixture(autouse=True)
def _reset_logging():
    """The CLI configures logging process-wide: put it back for the tests that follow."""
    yield
    structlog.reset_defaults()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orchestrator.cli",
        *args,
        env=env or dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_call_command_against_serve_without_public_url(tmp_path: Path) -> None:
    """Serve advertises its own port; `orchestrator call` completes a call there, and a wrong path is one line."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "ORCHESTRATOR_CALLS_DB": str(tmp_path / "calls.sqlite3")}
    env.pop("ORCHESTRATOR_PUBLIC_URL", None)
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orchestrator.cli",
        "serve",
        "--port",
        str(port),
        "--orders",
        "demo",
        "--brain",
        "scripted",
        "--script",
        str(SCRIPT),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        async with aiohttp.ClientSession() as http:
            await wait_until_serving(http, base, attempts=200)
        code, out, err = await _cli("call", str(SCRIPT), "--url", base, "--voice", "synthetic")
        assert code == 0, err
        assert "stream connected" in out  # the Stream URL pointed at this port, not 8080
        assert 'caller says "' in out
        assert "agent speaking" in out
        assert f"dialed {CARE_DESK}" in out

        code, out, err = await _cli(
            "call", str(SCRIPT), "--url", base, "--voice-path", "/nope", "--voice", "synthetic"
        )
        assert code == 1
        assert err.strip().splitlines() == [
            f"orchestrator: {base}/nope refused the call: webhook answered HTTP 404: 404: Not Found"
        ]
    finally:
        server.terminate()
        _, stderr = await server.communicate()
    text = stderr.decode()
    assert f"point Sautikit at {base}/voice" in text
    assert "Traceback" not in text


async def test_call_command_natural_voice_is_understood_by_the_offline_brain(tmp_path: Path) -> None:
    """`orchestrator call --voice slt` against `serve` with the offline brain: the flite caller's order
    number is recognised, confirmed and looked up, and the call ends resolved (the synthetic audio it
    used to send was heard as "okay bye okay" and the caller was hung up on)."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "ORCHESTRATOR_CALLS_DB": str(tmp_path / "calls.sqlite3"),
        "ORCHESTRATOR_TRANSCRIPTS_DIR": str(tmp_path),
    }
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orchestrator.cli", "serve", "--port", str(port), "--orders", "demo",
        "--brain", "offline", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        async with aiohttp.ClientSession() as http:
            await wait_until_serving(http, base, attempts=600)
        script = OFFLINE_SCRIPTS / "track_by_number.yaml"
        code, out, err = await _cli(
            "call", str(script), "--url", base, "--voice", "slt", "--call-sid", "HD_flite0001"
        )
        assert code == 0, err
        assert 'caller says "Hello, my order number is P K two zero nine three one."' in out
        transcript = tmp_path / "HD_flite0001.txt"
        for _ in range(100):  # written when the call's record closes, just after the stream
            if transcript.exists() and "outcome" in transcript.read_text():
                break
            await asyncio.sleep(0.1)
        text = transcript.read_text()
        assert 'tool      lookup_order {"order_number": "PK20931"}' in text
        assert "outcome   resolved" in text
    finally:
        server.terminate()
        await server.communicate()


async def test_call_command_to_nothing_is_one_line() -> None:
    """Nothing listening at --url: one line naming the URL and the reason, exit 1."""
    url = f"http://127.0.0.1:{_free_port()}"
    code, _, err = await _cli("call", str(SCRIPT), "--url", url, "--voice", "synthetic")
    assert code == 1
    assert err.strip().splitlines() == [
        f"orchestrator: cannot reach the service at {url}: connection refused"
    ]


def test_serve_on_a_taken_port_is_one_line(capsys, monkeypatch, tmp_path) -> None:
    """A port in use stops serve with one line, not a traceback, and before the service starts: it used to
    seed the demo orders and mark the live calls of the service already on that port as interrupted in
    their shared call store, then fail to bind."""
    monkeypatch.setenv("ORCHESTRATOR_WEBHOOK_SECRET", "s3cret")  # no warning line either
    monkeypatch.setenv("ORCHESTRATOR_CALLS_DB", str(tmp_path / "calls.sqlite3"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port), "--orders", "demo", "--brain", "scripted"]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"orchestrator: cannot listen on 127.0.0.1:{port}: address already in use"
    ]


def test_serve_without_orders_api_refuses_and_says_how(monkeypatch, capsys) -> None:
    """No orders URL and no `--orders demo`: serve refuses to answer real callers from demo data."""
    monkeypatch.delenv("ORCHESTRATOR_ORDERS", raising=False)
    monkeypatch.delenv("ORCHESTRATOR_ORDERS_BASE_URL", raising=False)
    assert main(["serve", "--port", "0", "--brain", "scripted"]) == 2
    assert "--orders demo (ORCHESTRATOR_ORDERS=demo)" in capsys.readouterr().err


def test_call_help_documents_voice_path_and_hosts(capsys) -> None:
    """`orchestrator call --help` explains the voice, path and host options."""
    with pytest.raises(SystemExit):
        main(["call", "--help"])
    out = capsys.readouterr().out
    for text in (
        "--voice {kal16,slt,awb,rms,synthetic}",
        "--voice-path",
        "PUBLIC=LOCAL",
        "--webhook-secret",
    ):
        assert text in out


def test_call_with_a_bad_host_mapping_is_one_line(capsys) -> None:
    """A malformed --host is a configuration error that shows the expected form."""
    assert main(["call", str(SCRIPT), "--host", "agent.example.com", "--voice", "synthetic"]) == 2
    assert "expected PUBLIC=LOCAL" in capsys.readouterr().err
