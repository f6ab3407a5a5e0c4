"""The calls console: finished calls with transcript, recording, latency and flow path; calls in progress.

    add_console(app, token=...)             mount /console on a service app (`orchestrator serve --console`)
    standalone_console(db, token=...)       an app serving /console over a call store alone
                                            (`orchestrator console --db calls.sqlite3`)

Pages, templates and the token are in `pages.py`; what a page shows, read from a stored call, in `views.py`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from orchestrator.app import ORCHESTRATOR, Orchestrator
from orchestrator.call.store import CallStore, open_call_store
from orchestrator.console.pages import Console, LiveCall, console_app
from orchestrator.flow import Flow
from orchestrator.logging import mask_phone

__all__ = [
    "MOUNT",
    "Console",
    "LiveCall",
    "add_console",
    "console_app",
    "live_calls",
    "standalone_console",
]

MOUNT = "/console"


def live_calls(orchestrator: Orchestrator) -> list[LiveCall]:
    """The service's calls in progress, as the live view shows them."""
    calls = []
    for session in list(orchestrator.sessions.values()):
        if session.finished.is_set():
            continue
        entries = session.transcript.entries
        calls.append(
            LiveCall(
                call_sid=session.call_sid,
                caller_masked=mask_phone(session.caller) if session.caller else None,
                state=session.machine.state,
                seconds=session.now_ms() / 1000,
                turns=sum(1 for e in entries if e.kind == "caller"),
                barge_ins=sum(1 for b in session.barge_ins if b.outcome == "interrupted"),
            )
        )
    return calls


def add_console(app: web.Application, *, token: str) -> None:
    """Mount the console on a service app made by `add_routes`: its store, flow, recordings, live calls."""
    orchestrator = app[ORCHESTRATOR]
    console = Console(
        token=token,
        store=lambda: orchestrator.store,
        flow=orchestrator.flow,
        recordings_dir=orchestrator.settings.recordings_dir,
        live_calls=lambda: live_calls(orchestrator),
    )
    app.add_subapp(MOUNT, console_app(console))


def standalone_console(
    db: str | Path,
    *,
    token: str,
    flow: Flow | None = None,
    recordings_dir: Path | None = None,
) -> web.Application:
    """An app that serves the console over the call store at `db` (no live view: no calls run here)."""
    holder: dict[str, CallStore] = {}
    app = web.Application()

    async def store_lifetime(_app: web.Application) -> AsyncIterator[None]:
        holder["store"] = await open_call_store(db)
        try:
            yield
        finally:
            await holder["store"].close()

    async def to_console(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"{MOUNT}/")

    app.cleanup_ctx.append(store_lifetime)
    app.router.add_get("/", to_console)
    console = Console(
        token=token, store=lambda: holder.get("store"), flow=flow, recordings_dir=recordings_dir
    )
    app.add_subapp(MOUNT, console_app(console))
    return app
