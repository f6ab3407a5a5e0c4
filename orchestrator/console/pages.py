"""The calls console: server-rendered pages under `/console`, behind `ORCHESTRATOR_CONSOLE_TOKEN`.

    /console/                    finished calls, newest first; filters: outcome, date, escalated
    /console/calls/{call_sid}    transcript beside the two-track recording, per-turn latency, the flow's path
    /console/calls/{id}/recording.wav
    /console/live                calls in progress and their current state (refreshed from /console/live.json)

A sub-application: `orchestrator serve --console` mounts it on the service (live view included) and
`orchestrator console --db ...` serves it alone over a call store. A browser signs in once with the token
(an HttpOnly cookie holds a keyed digest of it, never the token); scripts may send `Authorization: Bearer`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import jinja2
from aiohttp import web

from orchestrator.call.store import CallStore
from orchestrator.console.views import (
    CallFilter,
    call_page,
    diagram_with_path,
    latency_chart,
    matches,
)
from orchestrator.flow import Flow
from orchestrator.observe.recorder import recording_path

__all__ = ["CONSOLE", "Console", "LiveCall", "console_app"]

COOKIE = "orchestrator_console"
OUTCOMES = ("resolved", "escalated", "abandoned", "failed", "live", "interrupted", "unfinished")
# The list reads this many of the newest calls (of the chosen outcome) and filters dates among them.
LIST_WINDOW = 1000
LIST_SHOWN = 200
STATIC = Path(__file__).parent / "static"
# Scripts only from the console itself; Mermaid writes its SVG styles inline.
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "media-src 'self'; frame-ancestors 'none'; form-action 'self'"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveCall:
    """A call in progress, as the live view lists it."""

    call_sid: str
    caller_masked: str | None
    state: str
    seconds: float
    turns: int
    barge_ins: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Console:
    """What the console reads from, and its token."""

    token: str
    store: Callable[[], CallStore | None]  # read at each request: a service opens its store at start-up
    flow: Flow | None = None
    recordings_dir: Path | None = None
    live_calls: Callable[[], Sequence[LiveCall]] | None = None  # None: no live view (a store alone)

    def cookie_value(self) -> str:
        return hmac.new(self.token.encode(), b"orchestrator-console", hashlib.sha256).hexdigest()


CONSOLE = web.AppKey("console", Console)
_TEMPLATES = web.AppKey("console_templates", jinja2.Environment)


def console_app(console: Console) -> web.Application:
    """The console as a sub-application, to mount at `/console`."""
    if not console.token:
        raise ValueError("the console needs a token (ORCHESTRATOR_CONSOLE_TOKEN)")
    app = web.Application(middlewares=[_security_headers, _require_token])
    app[CONSOLE] = console
    app[_TEMPLATES] = jinja2.Environment(
        loader=jinja2.PackageLoader("orchestrator.console", "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
    )
    app.router.add_get("/", _calls, name="calls")
    app.router.add_get("/calls/{call_sid}", _call, name="call")
    app.router.add_get("/calls/{call_sid}/recording.wav", _recording, name="recording")
    app.router.add_get("/live", _live, name="live")
    app.router.add_get("/live.json", _live_json, name="live_json")
    app.router.add_post("/login", _login, name="login")
    app.router.add_get("/logout", _logout, name="logout")
    app.router.add_static("/static", STATIC, name="static")
    return app


# --- the token ------------------------------------------------------------------------------------


def _authorised(request: web.Request, console: Console) -> bool:
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(credential.encode(), console.token.encode()):
        return True
    cookie = request.cookies.get(COOKIE, "")
    return hmac.compare_digest(cookie.encode(), console.cookie_value().encode())


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _require_token(request: web.Request, handler: _Handler) -> web.StreamResponse:
    console = request.app[CONSOLE]
    if request.match_info.route.name in ("login",) or _authorised(request, console):
        return await handler(request)
    if request.path.startswith(_prefix(request) + "/static/console.css"):
        return await handler(request)  # the sign-in page's own style
    return _render(request, "login.html", status=401, next=request.path_qs, failed=False)


@web.middleware
async def _security_headers(request: web.Request, handler: _Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        response = exc
    response.headers.setdefault("Content-Security-Policy", _CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    if isinstance(response, web.HTTPException):
        raise response
    return response


async def _login(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE]
    form = await request.post()
    given = str(form.get("token", ""))
    target = str(form.get("next", "")) or f"{_prefix(request)}/"
    if not target.startswith(f"{_prefix(request)}/") or target.startswith("//"):
        target = f"{_prefix(request)}/"
    if not hmac.compare_digest(given.encode(), console.token.encode()):
        return _render(request, "login.html", status=401, next=target, failed=True)
    response = web.HTTPSeeOther(target)
    response.set_cookie(
        COOKIE,
        console.cookie_value(),
        httponly=True,
        samesite="Strict",
        path=f"{_prefix(request)}/",
        secure=request.secure,
    )
    return response


async def _logout(request: web.Request) -> web.StreamResponse:
    response = web.HTTPSeeOther(f"{_prefix(request)}/")
    response.del_cookie(COOKIE, path=f"{_prefix(request)}/")
    return response


# --- pages ----------------------------------------------------------------------------------------


def _prefix(request: web.Request) -> str:
    """Where the console is mounted (`/console`), from its own sub-app."""
    return str(request.app.router["calls"].url_for()).rstrip("/")


def _render(request: web.Request, template: str, *, status: int = 200, **context: object) -> web.Response:
    console = request.app[CONSOLE]
    page = request.app[_TEMPLATES].get_template(template).render(
        prefix=_prefix(request), live_view=console.live_calls is not None, **context
    )
    return web.Response(text=page, status=status, content_type="text/html")


def _store(request: web.Request) -> CallStore:
    store = request.app[CONSOLE].store()
    if store is None:
        raise web.HTTPServiceUnavailable(text="the call store is not open yet")
    return store


def _date(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


async def _calls(request: web.Request) -> web.Response:
    query = request.query
    outcome = query.get("outcome") if query.get("outcome") in OUTCOMES else None
    escalated = {"yes": True, "no": False}.get(query.get("escalated", ""))
    wanted = CallFilter(
        outcome=outcome,
        since=_date(query.get("from", "")),
        until=_date(query.get("to", "")),
        escalated=escalated,
    )
    recent = await _store(request).recent(limit=LIST_WINDOW, outcome=outcome)
    calls = [call for call in recent if matches(call, wanted)]
    return _render(
        request,
        "calls.html",
        calls=calls[:LIST_SHOWN],
        more=len(calls) > LIST_SHOWN,
        outcomes=OUTCOMES,
        chosen={
            "outcome": outcome or "",
            "from": wanted.since.isoformat() if wanted.since else "",
            "to": wanted.until.isoformat() if wanted.until else "",
            "escalated": query.get("escalated", "") if escalated is not None else "",
        },
    )


async def _call(request: web.Request) -> web.Response:
    console = request.app[CONSOLE]
    call = await _store(request).get(request.match_info["call_sid"])
    if call is None:
        raise web.HTTPNotFound(text="no such call in the store")
    page = call_page(call)
    flow = console.flow
    diagram = diagram_with_path(flow, page.path) if flow is not None and flow.name == call.flow else None
    recording = _recording_file(console, call.call_sid)
    return _render(
        request,
        "call.html",
        page=page,
        call=call,
        chart=latency_chart(page.latencies),
        diagram=diagram,
        has_recording=recording is not None,
    )


def _recording_file(console: Console, call_sid: str) -> Path | None:
    if console.recordings_dir is None:
        return None
    path = recording_path(console.recordings_dir, call_sid)
    return path if path is not None and path.is_file() else None


async def _recording(request: web.Request) -> web.StreamResponse:
    path = _recording_file(request.app[CONSOLE], request.match_info["call_sid"])
    if path is None:
        raise web.HTTPNotFound(text="no recording for this call")
    # FileResponse answers Range requests, which the browser's audio element needs to seek.
    return web.FileResponse(path, headers={"Content-Type": "audio/wav"})


def _live_rows(request: web.Request) -> list[LiveCall]:
    live = request.app[CONSOLE].live_calls
    if live is None:
        raise web.HTTPNotFound(text="no live view: this console reads a call store only")
    return sorted(live(), key=lambda c: -c.seconds)


async def _live(request: web.Request) -> web.Response:
    return _render(request, "live.html", calls=_live_rows(request))


async def _live_json(request: web.Request) -> web.Response:
    rows = [
        {
            "call_sid": c.call_sid,
            "caller": c.caller_masked,
            "state": c.state,
            "seconds": round(c.seconds, 1),
            "turns": c.turns,
            "barge_ins": c.barge_ins,
        }
        for c in _live_rows(request)
    ]
    return web.json_response({"calls": rows}, headers={"Cache-Control": "no-store"})
