"""`orchestrator serve --console` as a real process: the service, its /metrics and its console on one port."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.script import load_script
from orchestrator.simulator import FakeSautikit
from tests.console.conftest import CALLS, CONSOLE_TOKEN
from tests.serving import wait_until_serving


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_serve_console_process_serves_metrics_and_the_console_after_a_call(tmp_path: Path):
    """A call to `serve --console` shows up in /metrics and, behind the token, in the console with its recording."""
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "ORCHESTRATOR_CALLS_DB": str(tmp_path / "calls.sqlite3"),
        "ORCHESTRATOR_RECORDINGS_DIR": str(tmp_path / "recordings"),
        "ORCHESTRATOR_CONSOLE_TOKEN": CONSOLE_TOKEN,
        "ORCHESTRATOR_FALLBACK_VOICE": "synthetic",
        "ORCHESTRATOR_ORDERS": "demo",
    }
    script_path = CALLS / "asks_for_human.yaml"
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orchestrator.cli", "serve", "--port", str(port), "--public-url", base,
        "--brain", "scripted", "--script", str(script_path), "--console",
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    bearer = {"Authorization": f"Bearer {CONSOLE_TOKEN}"}
    try:
        async with aiohttp.ClientSession() as http:
            await wait_until_serving(http, base, attempts=150)
            platform = await FakeSautikit(base).call(load_script(script_path), call_sid="HD_served01")
            assert platform.dialed
            for _ in range(100):
                async with http.get(f"{base}/console/calls/HD_served01", headers=bearer) as page:
                    if page.status == 200 and "recording.wav" in await page.text():
                        break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("the call never reached the console with its recording")
            async with http.get(f"{base}/console/") as anonymous:
                assert anonymous.status == 401
            async with http.get(f"{base}/console/calls/HD_served01/recording.wav", headers=bearer) as wav:
                assert wav.status == 200
                assert (await wav.read())[:4] == b"RIFF"
            async with http.get(f"{base}/metrics") as metrics:
                body = await metrics.text()
    finally:
        process.terminate()
        _, stderr = await process.communicate()
    assert b"Traceback" not in stderr
    started = {
        sample.name: sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }
    assert started["orchestrator_calls_started_total"] == 1
    assert started["orchestrator_active_calls"] == 0
