"""What the service checks and says as it starts: risky settings are loud, unusable folders are errors."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from orchestrator.app import create_app, serve_on_loopback
from orchestrator.brains.scripted import ScriptedBrain
from orchestrator.errors import ConfigError
from orchestrator.script import load_script
from orchestrator.settings import Settings
from tests.flows import SCRIPTS

SCRIPT = load_script(SCRIPTS / "returning_caller_by_phone.yaml")


def _app(**settings: object):
    return create_app(Settings(**settings), brain_factory=lambda start: ScriptedBrain(SCRIPT))


async def test_startup_without_a_webhook_secret_warns_and_health_says_signatures_off() -> None:
    """No secret: a warning naming the risk and the fix at start, and /healthz says "signatures": "off"."""
    with capture_logs() as logs:
        async with serve_on_loopback(_app()) as url, httpx.AsyncClient(base_url=url) as client:
            health = (await client.get("/healthz")).json()

    warning = next(entry for entry in logs if entry["event"] == "webhook_signatures_off")
    assert warning["log_level"] == "warning"
    assert "ORCHESTRATOR_WEBHOOK_SECRET" in warning["fix"]
    assert health["signatures"] == "off"


async def test_startup_with_a_webhook_secret_is_quiet_and_health_says_signatures_on() -> None:
    """With a secret there is nothing to warn about, and /healthz says "signatures": "on"."""
    with capture_logs() as logs:
        app = _app(webhook_secret="whsec_x")  # noqa: S106 - test credential
        async with serve_on_loopback(app) as url, httpx.AsyncClient(base_url=url) as client:
            health = (await client.get("/healthz")).json()

    assert not any(entry["event"] == "webhook_signatures_off" for entry in logs)
    assert health["signatures"] == "on"


async def test_startup_server_header_names_no_versions() -> None:
    """The Server header says what answers, not which Python and aiohttp versions it runs: on our own
    answers, and on the 400 aiohttp's parser gives a request line too long for it (a 10 kB call id)."""
    async with serve_on_loopback(_app()) as url, httpx.AsyncClient(base_url=url) as client:
        responses = [
            await client.get("/healthz"),
            await client.get("/no-such-route"),
            await client.get("/audio", params={"call_sid": "H" * 10_240}),
        ]

    assert [r.status_code for r in responses] == [200, 404, 400]
    assert [r.headers["Server"] for r in responses] == ["orchestrator"] * 3


@pytest.mark.parametrize("problem", ["a-file", "under-a-file"])
async def test_startup_unusable_transcripts_folder_is_a_config_error(
    tmp_path: Path, problem: str
) -> None:
    """A transcripts folder that is a file, or cannot be made, stops the start with a clear error."""
    blocker = tmp_path / "transcripts"
    blocker.write_text("not a folder")
    folder = blocker if problem == "a-file" else blocker / "calls"

    with pytest.raises(ConfigError, match=r"transcripts folder .* is not usable"):
        async with serve_on_loopback(_app(transcripts_dir=folder)):
            pass
