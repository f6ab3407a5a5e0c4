"""Fixtures for the console's browser tests: calls recorded once per module, a server thread, headless chromium.

The calls are placed on a fast-forwarded loop (looptime) into a SQLite store and a recordings directory. The
console is then served on the real clock from its own thread, so Playwright's synchronous API can drive
Debian's chromium against it from the test.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import looptime
import pytest

from orchestrator.brains.scripted import ScriptedBrain
from orchestrator.harness import serve_line
from orchestrator.script import load_script
from orchestrator.settings import Settings
from tests.flows import SCRIPTS

CALLS = SCRIPTS  # the engine tests' pinned call scripts
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CONSOLE_TOKEN = "console-test-token"  # noqa: S105 - test credential
# call id -> script: one resolved, one escalated, one with a barge-in.
RECORDED = {
    "HD_console_read": "order_number_read_out.yaml",
    "HD_console_human": "asks_for_human.yaml",
    "HD_console_barge": "barge_in_during_narration.yaml",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedCalls:
    db: Path
    recordings: Path
    settings: Settings


async def _place(settings: Settings) -> None:
    scripts = {sid: load_script(CALLS / name) for sid, name in RECORDED.items()}
    async with serve_line(
        settings=settings, brain_factory=lambda start: ScriptedBrain(scripts[start.call_sid])
    ) as line:
        for call_sid, script in scripts.items():
            await line.call(script, call_sid=call_sid)


@pytest.fixture(scope="module")
def recorded_calls(tmp_path_factory: pytest.TempPathFactory) -> RecordedCalls:
    """Three finished calls in a SQLite call store, each with its two-track recording."""
    directory = tmp_path_factory.mktemp("console")
    settings = Settings(
        fallback_voice="synthetic",
        calls_db=str(directory / "calls.sqlite3"),
        recordings_dir=directory / "recordings",
    )

    def place() -> None:
        # A thread of its own: pytest-asyncio may have a loop running in this one.
        loop = looptime.new_event_loop(start=0)
        try:
            loop.run_until_complete(_place(settings))
        finally:
            loop.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(place).result(timeout=120)
    return RecordedCalls(
        db=directory / "calls.sqlite3", recordings=directory / "recordings", settings=settings
    )


@contextmanager
def served_in_thread(
    serve: Callable[[], AbstractAsyncContextManager[str]],
) -> Iterator[tuple[str, asyncio.AbstractEventLoop]]:
    """Enter `serve()` (which yields a base URL) on an event loop in a thread of its own, until the block ends."""
    loop = asyncio.new_event_loop()
    started: Future[str] = Future()
    stop = asyncio.Event()

    async def main() -> None:
        try:
            async with serve() as url:
                started.set_result(url)
                await stop.wait()
        except BaseException as exc:
            if not started.done():
                started.set_exception(exc)
            raise

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        yield started.result(timeout=60), loop
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(60)
        loop.close()


@pytest.fixture(scope="module")
def browser():
    """Debian's headless chromium, driven by Playwright (which never downloads a browser here)."""
    if not CHROMIUM.exists() or shutil.which("chromium") is None:
        pytest.skip("chromium is not installed (bash .ci/setup installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1360, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    try:
        yield page
    finally:
        context.close()


def sign_in(page, base_url: str, token: str = CONSOLE_TOKEN) -> None:
    """Open the console and sign in with the token, as a person would."""
    page.goto(f"{base_url}/console/")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")
