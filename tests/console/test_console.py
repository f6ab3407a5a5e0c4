"""The calls console in a real browser: sign in, list and filter calls, open one, hear it, see its path.

Debian's chromium, headless, driven by Playwright against the console served on a loopback port; the calls
were placed through the real service and the fake Sautikit (see conftest.py).
"""

from __future__ import annotations

import contextlib
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from orchestrator.app import serve_on_loopback
from orchestrator.brains.scripted import ScriptedBrain
from orchestrator.console import add_console, standalone_console
from orchestrator.flow import load_flow
from orchestrator.harness import serve_line
from orchestrator.script import load_script
from orchestrator.settings import Settings
from tests.console.conftest import CALLS, CONSOLE_TOKEN, served_in_thread, sign_in


@pytest.fixture(scope="module")
def console_url(recorded_calls):
    """`orchestrator console --db ...`: the console alone over the recorded calls' store."""
    flow = load_flow(recorded_calls.settings.flow)

    def serve():
        app = standalone_console(
            recorded_calls.db,
            token=CONSOLE_TOKEN,
            flow=flow,
            recordings_dir=recorded_calls.recordings,
        )
        return serve_on_loopback(app)

    with served_in_thread(serve) as (url, _loop):
        yield url


def test_console_requires_the_token(page, console_url):
    """Without the token the console shows only its sign-in form; a wrong token is refused."""
    response = page.goto(f"{console_url}/console/")
    assert response.status == 401
    assert page.locator("#calls").count() == 0
    page.fill("input[name=token]", "not-the-token")
    page.click("button[type=submit]")
    assert page.locator("[role=alert]").inner_text() == "That token is not the console's."
    assert httpx.get(f"{console_url}/console/calls/HD_console_read/recording.wav").status_code == 401
    bearer = {"Authorization": f"Bearer {CONSOLE_TOKEN}"}
    assert httpx.get(f"{console_url}/console/", headers=bearer).status_code == 200


def test_console_lists_calls_with_their_figures(page, console_url):
    """Signed in, the list shows every call with outcome, duration, turns and barge-ins."""
    sign_in(page, console_url)
    rows = page.locator("#calls tbody tr")
    assert rows.count() == 3
    barge = page.locator("#calls tbody tr", has_text="HD_console_barge")
    cells = barge.locator("td").all_inner_texts()
    assert cells[3] == "resolved"
    assert re.fullmatch(r"\d+\.\d s", cells[5])
    assert int(cells[6]) >= 1  # turns
    assert cells[7] == "1"  # the caller cut the agent off once
    human = page.locator("#calls tbody tr", has_text="HD_console_human").locator("td")
    assert human.nth(3).inner_text() == "escalated"
    assert human.nth(8).inner_text() == "dialled"


def test_console_filters_by_outcome_escalation_and_date(page, console_url):
    """The filters narrow the list: by outcome, by escalation, and by a date range."""
    sign_in(page, console_url)
    page.select_option("select[name=outcome]", "escalated")
    page.click("#filters button[type=submit]")
    assert page.locator("#calls tbody tr").all_inner_texts()[0].startswith(
        page.locator("#calls tbody tr td").first.inner_text()
    )
    assert page.locator("#calls tbody tr").count() == 1
    assert "HD_console_human" in page.locator("#calls").inner_text()

    page.goto(f"{console_url}/console/?escalated=no")
    assert page.locator("#calls tbody tr").count() == 2
    assert "HD_console_human" not in page.locator("#calls").inner_text()

    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    page.goto(f"{console_url}/console/")
    page.fill("input[name=from]", tomorrow)
    page.click("#filters button[type=submit]")
    assert page.locator("#no-calls").is_visible()
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    page.fill("input[name=from]", yesterday)
    page.click("#filters button[type=submit]")
    assert page.locator("#calls tbody tr").count() == 3


def test_console_call_page_plays_the_recording_from_a_transcript_line(page, console_url):
    """A call's page loads its two-track recording; clicking a caller line moves playback to that moment."""
    sign_in(page, console_url)
    page.click("text=HD_console_read")
    page.wait_for_url(re.compile(r"/console/calls/HD_console_read$"))
    page.wait_for_function(
        "() => { const a = document.getElementById('recording'); return a && a.readyState >= 1; }"
    )
    duration = page.evaluate("() => document.getElementById('recording').duration")
    assert 5 < duration < 120
    line = page.locator("#transcript li.caller.seekable").first
    at = float(line.get_attribute("data-audio-s"))
    assert 0 < at < duration
    line.click()
    position = page.evaluate("() => document.getElementById('recording').currentTime")
    assert abs(position - at) < 0.5
    assert page.locator("#latency-chart rect.brain").count() >= 1


def test_console_call_page_draws_the_flow_with_the_calls_path(page, console_url):
    """The vendored Mermaid draws the flow, with the states this call visited marked and its last state set apart."""
    sign_in(page, console_url)
    page.goto(f"{console_url}/console/calls/HD_console_human")
    page.wait_for_selector("#diagram[data-rendered=true] svg")
    visited = page.locator("#diagram svg g.visited")
    last = page.locator("#diagram svg g.last")
    assert visited.count() >= 2
    assert last.count() == 1
    assert "escalating" in (last.text_content() or "")
    assert page.locator("#path li").first.inner_text() == "greeting"


@contextlib.asynccontextmanager
async def _service_with_console():
    """`orchestrator serve --console`: the service with the console mounted, live view included."""
    script = load_script(CALLS / "asks_for_human.yaml")
    async with serve_line(
        settings=Settings(fallback_voice="synthetic"),
        brain_factory=lambda start: ScriptedBrain(script),
        prepare=lambda app: add_console(app, token=CONSOLE_TOKEN),
    ) as line:
        yield line.url


def _ring(url: str, call_sid: str) -> None:
    """Sautikit's voice webhook for a new call (its media stream is not opened: the call waits in greeting)."""
    form = {"CallSid": call_sid, "From": "+254712000111", "To": "+254711000000"}
    assert httpx.post(f"{url}/voice", data=form).status_code == 200


def test_console_live_view_follows_calls_in_progress(page):
    """The live view lists the calls in progress with their state, and picks up a new one by itself."""
    with served_in_thread(_service_with_console) as (url, _loop):
        _ring(url, "HD_live_one")
        sign_in(page, url)
        page.goto(f"{url}/console/live")
        rows = page.locator("#live tbody tr")
        assert rows.count() == 1
        cells = rows.first.locator("td").all_inner_texts()
        assert cells[0] == "HD_live_one"
        assert cells[1] == "+2547*****111"
        assert cells[2] == "greeting"
        _ring(url, "HD_live_two")
        page.wait_for_function("() => document.querySelectorAll('#live tbody tr').length === 2")
        assert page.locator("#live-count").inner_text() == "2"
