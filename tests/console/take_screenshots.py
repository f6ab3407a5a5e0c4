"""Take the console screenshots in docs/console.md with the same headless chromium the tests use.

    .venv/bin/python -m tests.console.take_screenshots docs/images

Places a handful of scripted calls through the real service (fast-forwarded clock), serves the console over
them, and photographs the list, a call page, the live view and the sign-in page.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
from pathlib import Path

import httpx
import looptime
from playwright.sync_api import sync_playwright

from orchestrator.app import serve_on_loopback
from orchestrator.brains.scripted import ScriptedBrain
from orchestrator.console import add_console, standalone_console
from orchestrator.flow import load_flow
from orchestrator.harness import serve_line
from orchestrator.script import load_script
from orchestrator.settings import Settings
from tests.console.conftest import (
    CALLS,
    CHROMIUM,
    CHROMIUM_ARGS,
    CONSOLE_TOKEN,
    served_in_thread,
    sign_in,
)

SCRIPTS = {
    "HD_8f2a91c0": "order_number_read_out.yaml",
    "HD_8f2a91c1": "barge_in_during_narration.yaml",
    "HD_8f2a91c2": "asks_for_human.yaml",
    "HD_8f2a91c3": "returning_caller_by_phone.yaml",
    "HD_8f2a91c4": "hangup_mid_narration.yaml",
    "HD_8f2a91c5": "orders_api_down_5xx.yaml",
}


async def _place(settings: Settings) -> None:
    scripts = {sid: load_script(CALLS / name) for sid, name in SCRIPTS.items()}
    async with serve_line(
        settings=settings, brain_factory=lambda start: ScriptedBrain(scripts[start.call_sid])
    ) as line:
        for call_sid, script in scripts.items():
            await line.call(script, call_sid=call_sid)


@contextlib.asynccontextmanager
async def _live_service():
    script = load_script(CALLS / "asks_for_human.yaml")
    async with serve_line(
        settings=Settings(fallback_voice="synthetic"),
        brain_factory=lambda start: ScriptedBrain(script),
        prepare=lambda app: add_console(app, token=CONSOLE_TOKEN),
    ) as line:
        yield line.url


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        settings = Settings(
            fallback_voice="synthetic",
            calls_db=str(directory / "calls.sqlite3"),
            recordings_dir=directory / "recordings",
        )
        loop = looptime.new_event_loop(start=0)
        try:
            loop.run_until_complete(_place(settings))
        finally:
            loop.close()
        flow = load_flow(settings.flow)

        def serve():
            app = standalone_console(
                directory / "calls.sqlite3",
                token=CONSOLE_TOKEN,
                flow=flow,
                recordings_dir=directory / "recordings",
            )
            return serve_on_loopback(app)

        with (
            sync_playwright() as playwright,
            served_in_thread(serve) as (url, _loop),
            served_in_thread(_live_service) as (live_url, _live_loop),
        ):
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1360, "height": 860})
            page.goto(f"{url}/console/")
            page.screenshot(path=out / "console-sign-in.png")
            sign_in(page, url)
            page.screenshot(path=out / "console-calls.png", full_page=True)
            page.goto(f"{url}/console/calls/HD_8f2a91c1")
            page.wait_for_selector("#diagram[data-rendered=true] svg")
            page.wait_for_function("() => document.getElementById('recording').readyState >= 1")
            page.locator("#transcript li.caller.seekable").nth(1).click()
            page.evaluate("() => document.getElementById('recording').pause()")
            page.screenshot(path=out / "console-call.png", full_page=True)
            for index, caller in enumerate(("+254712000111", "+254733444555")):
                form = {"CallSid": f"HD_live000{index}", "From": caller, "To": "+254711000000"}
                httpx.post(f"{live_url}/voice", data=form).raise_for_status()
            # Cookies are per host, not per port: the sign-in above holds here too.
            page.goto(f"{live_url}/console/live")
            page.wait_for_function("() => document.getElementById('live').dataset.refreshed")
            page.screenshot(path=out / "console-live.png")
            browser.close()


if __name__ == "__main__":
    asyncio.set_event_loop_policy(None)
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images"))
