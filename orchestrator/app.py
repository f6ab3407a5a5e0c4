"""aiohttp wiring only: the four routes Sautikit talks to, typed app state, and the service's lifecycle.

Embed in your own application with one call:

    app = web.Application()
    settings = Settings(public_url="https://agent.example.com", orders_base_url="https://shop.example.com")
    add_routes(app, settings=settings, brain_factory=make_brain_factory(settings, load_flow(settings.flow)))

or let `create_app(settings)` build a whole application (that is what `orchestrator serve` runs).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlencode

import httpx
import structlog
from aiohttp import web, web_response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.brains.base import Brain, PreparesAhead
from orchestrator.call.dialer import Redialer
from orchestrator.call.owners import HostHeartbeat, owner_id
from orchestrator.call.records import CallRecords, default_journal
from orchestrator.call.session import ESCALATION_STATE, CallServices, CallSession, SessionOptions
from orchestrator.call.store import INTERRUPTED, CallStore, CallStoreError, open_call_store
from orchestrator.call.tools import ToolHandler, environment_names
from orchestrator.call.transcript import Entry, transcript_files
from orchestrator.cluster import CallMessage, LiveCalls, LocalLiveCalls, SharedCall
from orchestrator.cluster.redis_calls import RedisLiveCalls
from orchestrator.errors import ConfigError, SignatureError, WebhookError
from orchestrator.flow import Flow, load_flow, render
from orchestrator.listening import bind_listening
from orchestrator.logging import mask_phone, mask_phone_numbers_in
from orchestrator.observe.service import Observability
from orchestrator.orders import (
    DEMO_BACKEND,
    DemoOrdersBackend,
    OrdersApiConfig,
    OrdersClient,
    demo_orders_app,
)
from orchestrator.redis_connection import connected_redis
from orchestrator.settings import Settings
from orchestrator.supervisor import WORKER_INDEX_VARIABLE
from orchestrator.speech.tts import EspeakTts
from orchestrator.telephony.call_id import CallId, is_call_id, parse_call_id
from orchestrator.telephony.replay import MemoryReplayCache, ReplayCache
from orchestrator.telephony.replay_redis import RedisReplayCache
from orchestrator.telephony.rest import SautikitClient, SautikitConfig, SautikitError
from orchestrator.telephony.signing import (
    make_stream_token,
    stream_url,
    verify_stream_token,
    verify_webhook_signature,
)
from orchestrator.telephony.stream import accept_media_stream, media_socket_for
from orchestrator.telephony.outbound import (
    NotAnswered,
    OutboundRequest,
    is_outbound,
    kept_query,
    not_answered,
    read_outbound_query,
    with_query,
)
from orchestrator.telephony.webhook import CallStart, parse_webhook_body
from orchestrator.telephony.xml import (
    DialVerb,
    HangupVerb,
    SayVerb,
    StreamSpec,
    render_empty_response,
    render_response,
)

__all__ = [
    "ORCHESTRATOR",
    "BrainFactory",
    "Orchestrator",
    "add_routes",
    "create_app",
    "drain_calls",
    "run_service",
    "serve_on_loopback",
]

log = structlog.get_logger(__name__)

BrainFactory = Callable[[CallStart], Brain]
XML = "application/xml"
SERVER_NAME = "orchestrator"
# Answers aiohttp writes before any app sees the request (a request line too long or malformed, as a
# 10 kB call id makes) skip on_response_prepare and take this module default instead, versions and all.
web_response.SERVER_SOFTWARE = SERVER_NAME  # type: ignore[attr-defined]  # imported there, not exported
# After-call work (call record, store, transcript files) waits at most this long for the call's outcome.
FINISHED_CALL_TTL_S = 600.0
# At shut-down, records not stored within this long go to the journal.
RECORDS_CLOSE_TIMEOUT_S = 3.0
UNCONNECTED = "unconnected"
# After the drain, handlers still running (a call past its grace) are cancelled this soon.
HANDLER_SHUTDOWN_TIMEOUT_S = 1.0  # the outcome of a call whose media stream never came
# A finished call leaves the live map this soon (its record is in the store; the replay cache remembers its
# id for late re-POSTs): long enough for the stream status and events that trail its end, short enough that
# full collections do not walk thousands of finished calls.
FINISHED_CALL_GRACE_S = 10.0
# The call record is asked for a few times: the platform may take a moment to close it.
CALL_RECORD_ATTEMPTS = 3
CALL_RECORD_RETRY_S = 2.0
CALL_RECORD_TIMEOUT_S = 5.0
# Sautikit delivers events at least once; an event id is remembered (in the replay cache) this long.
SEEN_EVENT_TTL_S = 24 * 3600.0
# A call id already answered is remembered this long: a first webhook for it again is never a new call.
SEEN_CALL_TTL_S = 24 * 3600.0
SIGNATURE_HEADER = "X-Sautikit-Signature"
TRANSCRIPT_ATTEMPTS = 1000  # files kept per reused call id before giving up
# A re-POST for a call whose worker died, not escalating: the caller hears why the line goes quiet.
ORPHANED_SAY = "Sorry, we lost the line to our assistant. Please call back in a minute. Goodbye."
# A pending Dial stays answerable this long past the flow's own wait for Sautikit's request.
DIAL_KEPT_EXTRA_S = 5.0


@dataclass(slots=True, kw_only=True)
class Orchestrator:
    """The service's state: settings, the flow, how to make a brain, the orders client, live calls."""

    settings: Settings
    flow: Flow
    brain_factory: BrainFactory
    orders: OrdersClient | None = None
    # The embedded demo orders API, when it is the one in use (tests and demos set its fault mode).
    demo_orders: DemoOrdersBackend | None = None
    services: CallServices = field(default_factory=CallServices)
    sessions: dict[str, CallSession] = field(default_factory=dict)  # by CallId
    # Accepted webhook signatures (a second sighting is a replay), answered call ids and event ids (Sautikit
    # delivers events at least once); on Redis when several workers share the calls.
    replay: ReplayCache = field(default_factory=MemoryReplayCache)
    # Which worker holds each call, and the way to reach it: this process alone unless Redis is set.
    live: LiveCalls = field(default_factory=LocalLiveCalls)
    finished_calls: int = 0  # a count, not a list: a long-running service must not keep every call
    on_call_started: list[Callable[[CallSession], None]] = field(default_factory=list)
    on_call_finished: list[Callable[[CallSession], None]] = field(default_factory=list)

    background: set[asyncio.Task[None]] = field(default_factory=set)
    # Code handlers of the flow's tools (`add_routes(..., tools=...)`).
    tools: dict[str, ToolHandler] = field(default_factory=dict)
    store: CallStore | None = None
    # Every call written down from its webhook on (live, updated, finished), retried and journalled.
    records: CallRecords | None = None
    # Set on SIGTERM: no new calls (503), live ones are told goodbye, /healthz says "draining" (503).
    draining: bool = False
    fallback_voice: Callable[[str, int], Awaitable[bytes]] | None = None
    observability: Observability | None = None  # metrics, traces, recordings (orchestrator/observe/)
    redialer: Redialer | None = None  # outbound calls not answered: recorded, and retried per the flow

    def active_calls(self) -> int:
        return sum(1 for s in self.sessions.values() if not s.finished.is_set())

    def spawn(self, work: Coroutine[object, object, None]) -> None:
        """Run service-level work (not tied to one request); cancelled when the app shuts down."""
        task = asyncio.get_running_loop().create_task(work)
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    @property
    def secret(self) -> bytes:
        return self.settings.stream_secret.encode()

    def options(self) -> SessionOptions:
        both = self.settings.track == "both_tracks"
        return SessionOptions(
            sample_rate=self.settings.sample_rate,
            # both_tracks: stereo (caller, agent) unless the stream's metadata says the mix is mono,
            # in which case the agent's echo is taken out of it.
            channels=2 if both else 1,
            lookup_deadline_s=self.settings.lookup_deadline_s,
            cancel_echo=both,
        )


ORCHESTRATOR = web.AppKey("orchestrator", Orchestrator)


def add_routes(
    app: web.Application,
    *,
    settings: Settings,
    brain_factory: BrainFactory,
    flow: Flow | None = None,
    orders: OrdersClient | None = None,
    tools: Mapping[str, ToolHandler] | None = None,
) -> Orchestrator:
    """Add the voice webhook, media socket, stream-status, events and health routes to `app`.

    Without `orders`, a client for the shop's orders API (`settings.orders_base_url`, else the flow's
    `orders.base_url`) is made at start-up. With neither, this raises ConfigError unless `settings.orders` is
    "demo", which starts the embedded demo orders backend on a loopback port: real callers are never answered
    from demo data by accident.

    `tools` gives the flow's code tools their handlers, by tool name:

        async def send_tracking_sms(call: ToolCallContext) -> dict[str, JSONValue]:
            return {"sent": True, "to": call.view["caller"]["number"]}

        add_routes(app, settings=settings, brain_factory=factory, tools={"send_tracking_sms": send_tracking_sms})

    Every tool of the flow must be built-in, have an `http:` action, or have a handler here (ConfigError otherwise).
    """
    handlers = dict(tools or {})
    loaded = flow if flow is not None else load_flow(settings.flow, handlers=handlers)
    _check_tools(loaded, handlers)
    if orders is None:
        _check_orders_source(settings, loaded)
    orchestrator = Orchestrator(
        settings=settings,
        flow=loaded,
        brain_factory=brain_factory,
        orders=orders,
        tools=handlers,
    )
    app[ORCHESTRATOR] = orchestrator
    orchestrator.on_call_finished.append(_redial_voicemail(orchestrator))
    routes = settings.routes
    app.router.add_post(routes.voice, _voice_webhook)
    app.router.add_get(routes.audio, _media_stream)
    app.router.add_post(routes.stream_status, _stream_status)
    app.router.add_post(routes.events, _events)
    app.router.add_get(routes.health, _health)
    # Attached first, so it stops last: the service's own shut-down (records, background work) goes first.
    orchestrator.observability = Observability.attach(
        app,
        flow=orchestrator.flow,
        active_calls=orchestrator.active_calls,
        sample_rate=settings.sample_rate,
        recordings_dir=settings.recordings_dir,
        metrics_token=settings.metrics_token,
        metrics_path=routes.metrics,
    )
    app.cleanup_ctx.append(_service_clients)
    return orchestrator


def create_app(
    settings: Settings,
    *,
    brain_factory: BrainFactory,
    flow: Flow | None = None,
    tools: Mapping[str, ToolHandler] | None = None,
) -> web.Application:
    app = web.Application(client_max_size=256 * 1024)
    app.on_response_prepare.append(_plain_server_header)
    add_routes(app, settings=settings, brain_factory=brain_factory, flow=flow, tools=tools)
    return app


async def _plain_server_header(request: web.Request, response: web.StreamResponse) -> None:
    # aiohttp's default names Python's and its own versions: a free hint to anyone probing.
    response.headers["Server"] = SERVER_NAME


def _check_tools(flow: Flow, handlers: Mapping[str, ToolHandler]) -> None:
    undeclared = sorted(set(handlers) - set(flow.tools))
    if undeclared:
        raise ConfigError(
            f"handlers given for tools the flow does not declare: {', '.join(undeclared)}"
        )
    doubled = sorted(n for n in handlers if flow.tools[n].http is not None)
    if doubled:
        raise ConfigError(f"tools with both an http: action and a code handler: {', '.join(doubled)}")
    for name, spec in flow.tools.items():
        unset = [v for v in environment_names(spec.http) if v not in os.environ] if spec.http else []
        if unset:  # a warning, not a refusal: the variable may be set before the first call needs it
            log.warning("tool_environment_unset", tool=name, variables=unset)
    idle = flow.tools_without_action(handlers)
    if idle:
        raise ConfigError(
            f"flow {flow.name}: tool(s) {', '.join(idle)} do nothing: give each an http: action in the flow, "
            "or a code handler (add_routes(..., tools={name: handler}))"
        )


def _prepare_brains(factory: BrainFactory) -> asyncio.Task[None] | None:
    """Let the brain factory load what every call needs (speech decoders) while calls are already answered."""
    if not isinstance(factory, PreparesAhead):
        return None

    async def prepare() -> None:
        started = time.monotonic()
        try:
            await factory.prepare()
        except Exception as exc:  # the first calls build their own then, as if nothing had been prepared
            log.warning("brain_prepare_failed", error=repr(exc))
        else:
            log.info("brains_prepared", seconds=round(time.monotonic() - started, 2))

    return asyncio.get_running_loop().create_task(prepare())


def _check_orders_source(settings: Settings, flow: Flow) -> None:
    """No orders API configured must be a decision (demo), never a silent fallback for real callers."""
    if settings.orders_base_url or flow.orders.base_url or settings.orders == "demo":
        return
    raise ConfigError(
        "no orders API configured: set ORCHESTRATOR_ORDERS_BASE_URL (or --orders-url, or orders.base_url in "
        "the flow), or answer from the embedded demo orders with --orders demo (ORCHESTRATOR_ORDERS=demo)"
    )


def _orders_api_config(settings: Settings, flow: Flow, base_url: str) -> OrdersApiConfig:
    """The orders client's configuration: settings (environment, flags) win over the flow's `orders:`."""
    section = flow.orders
    view = {"env": dict(os.environ)}
    return OrdersApiConfig(
        base_url=base_url,
        path=settings.orders_path or section.path or "/api/orders",
        order_param=settings.orders_order_param or section.order_param or "order_number",
        phone_param=settings.orders_phone_param or section.phone_param or "phone",
        token=settings.orders_token,
        auth_header=settings.orders_auth_header,
        auth_scheme=settings.orders_auth_scheme,
        headers={key: render(value, view) for key, value in section.headers.items()},
        timeout_s=section.timeout or settings.orders_timeout_s,
        envelope=settings.orders_envelope or section.envelope,
        fields=(
            settings.orders_fields
            if settings.orders_fields is not None
            else {str(ours): theirs for ours, theirs in section.fields.items()}
        ),
        statuses=settings.orders_statuses if settings.orders_statuses is not None else section.statuses,
    )


@contextlib.asynccontextmanager
async def serve_on_loopback(app: web.Application) -> AsyncIterator[str]:
    """Run `app` on a free loopback port, as `orchestrator serve` runs it; yields its base URL.

    Used by the demo, the test helpers and the benchmarks. A plain AppRunner: no test-only handler
    cancellation, so a dropped socket behaves as in production.
    """
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


async def _service_clients(app: web.Application) -> AsyncIterator[None]:
    """Start-up: the orders client (or the embedded demo backend), Sautikit's REST client, an HTTP client for
    callback webhooks. Shut-down: background work cancelled, then every client closed."""
    orchestrator = app[ORCHESTRATOR]
    settings = orchestrator.settings
    if settings.transcripts_dir is not None:
        await asyncio.to_thread(_check_transcripts_dir, settings.transcripts_dir)
    if not settings.webhook_secret:
        log.warning(
            "webhook_signatures_off",
            risk="anyone who reaches the voice URL can start calls and end live ones",
            fix="set ORCHESTRATOR_WEBHOOK_SECRET (or SAUTIKIT_WEBHOOK_SECRET) to the number's signing secret",
        )
    async with contextlib.AsyncExitStack() as stack:
        if orchestrator.orders is None:
            configured = settings.orders_base_url or orchestrator.flow.orders.base_url
            if configured is None:
                _check_orders_source(settings, orchestrator.flow)
                base_url, demo = await stack.enter_async_context(
                    _demo_orders_server(settings.demo_orders_db)
                )
                orchestrator.demo_orders = demo
                config = OrdersApiConfig(base_url=base_url)  # the demo speaks the default contract
            else:
                config = _orders_api_config(settings, orchestrator.flow, configured)
            orchestrator.orders = await stack.enter_async_context(OrdersClient(config))
        rest = None
        if settings.sautikit_api_key:
            rest = await stack.enter_async_context(
                SautikitClient(
                    SautikitConfig(
                        api_key=settings.sautikit_api_key, base_url=settings.sautikit_base_url
                    )
                )
            )
        http = await stack.enter_async_context(httpx.AsyncClient())
        if settings.redis_url:  # several workers: what one has seen, all have seen; calls go where held
            client = await stack.enter_async_context(connected_redis(settings.redis_url))
            orchestrator.replay = RedisReplayCache(client, prefix=settings.redis_prefix)
            orchestrator.live = RedisLiveCalls(
                client,
                prefix=f"{settings.redis_prefix}live:",
                heartbeat_s=settings.worker_heartbeat_s,
                worker_ttl_s=settings.worker_ttl_s,
            )
        orchestrator.store = store = await open_call_store(
            settings.calls_db,
            busy_timeout_s=settings.calls_db_busy_timeout_s,
            pool_size=settings.calls_db_pool_size,
        )
        orchestrator.fallback_voice = _fallback_voice(settings, orchestrator.flow)
        stack.push_async_callback(store.close)
        observability = orchestrator.observability
        owner = owner_id(settings.host_id, os.environ.get(WORKER_INDEX_VARIABLE))
        records = CallRecords(
            store,
            flow_name=orchestrator.flow.name,
            journal=_journal_path(settings),
            on_save_failed=observability.store_write_failed if observability else lambda: None,
            mark_interrupted_at_start=not settings.redis_url,
            owner=owner,
        )
        if not settings.redis_url:  # with Redis, its heartbeats find a dead worker's calls (cluster/)
            host_beat = HostHeartbeat(
                store,
                owner,
                heartbeat_s=settings.host_heartbeat_s,
                silent_after_s=settings.host_ttl_s,
            )
            await host_beat.start()
            stack.push_async_callback(host_beat.close)
        await records.start()
        orchestrator.records = records
        stack.push_async_callback(records.close, RECORDS_CLOSE_TIMEOUT_S)
        live = orchestrator.live
        await live.start(
            lambda message: _on_call_message(orchestrator, message),
            lambda call_sids: _mark_orphaned(orchestrator, call_sids),
        )
        stack.push_async_callback(live.close)
        orchestrator.redialer = Redialer(
            flow=orchestrator.flow,
            rest=rest,
            secret=orchestrator.secret,
            voice_url=lambda: orchestrator.settings.public_url + orchestrator.settings.routes.voice,
            keep=records.keep,
            spawn=orchestrator.spawn,
        )
        orchestrator.services = CallServices(
            rest=rest,
            http=http,
            callback_timeout_s=settings.callback_timeout_s,
            tools=orchestrator.tools,
            brief_secret=settings.webhook_secret.encode() if settings.webhook_secret else None,
        )
        preparing = _prepare_brains(orchestrator.brain_factory)
        yield
        if preparing is not None:  # not part of draining: a decoder nobody will use is not waited for
            preparing.cancel()
        for task in list(orchestrator.background):
            task.cancel()  # each one still writes its call's record on the way out
        await asyncio.gather(*orchestrator.background, return_exceptions=True)
        for session in orchestrator.sessions.values():
            if not session.finished.is_set():  # answered, but its stream never came before the end
                records.write(session, outcome=INTERRUPTED)


def _journal_path(settings: Settings) -> Path | None:
    """Where refused records wait: the setting, else beside a SQLite calls database (`./calls.journal`
    with PostgreSQL); None in memory."""
    if settings.records_journal is not None:
        return settings.records_journal
    return default_journal(settings.calls_db)


def _check_transcripts_dir(directory: Path) -> None:
    """Found at start-up, not at the first call: the folder must exist (or be creatable) and take a file."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise ConfigError(
            f"transcripts folder {directory} is not usable ({exc.strerror or exc}); "
            "fix it or point ORCHESTRATOR_TRANSCRIPTS_DIR elsewhere"
        ) from exc


def _fallback_voice(settings: Settings, flow: Flow) -> Callable[[str, int], Awaitable[bytes]] | None:
    """espeak-ng for the session's own voice when it is installed; None keeps the synthetic one."""
    if settings.fallback_voice != "espeak" or shutil.which("espeak-ng") is None:
        return None
    tts = EspeakTts(voice=flow.voice.name, speed=flow.voice.speed, rate=settings.sample_rate)

    async def speak(text: str, rate: int) -> bytes:
        return await tts.synthesize(text)

    return speak


@contextlib.asynccontextmanager
async def _demo_orders_server(db: Path | None) -> AsyncIterator[tuple[str, DemoOrdersBackend]]:
    """The embedded demo orders API on its own loopback port: real HTTP, like a shop's backend."""
    demo = demo_orders_app(db_path=db)
    async with serve_on_loopback(demo) as url:
        log.info("demo_orders_started", url=url)
        yield url, demo[DEMO_BACKEND]


# --- handlers -----------------------------------------------------------------------------------


async def _voice_webhook(request: web.Request) -> web.Response:
    orchestrator = request.app[ORCHESTRATOR]
    body = await request.read()
    try:
        signed = await _check_signature(orchestrator, body, request.headers.get(SIGNATURE_HEADER))
        if signed == "replayed":
            raise SignatureError(REPLAYED)
        start = parse_webhook_body(body, request.headers.get("Content-Type"))
    except SignatureError as exc:
        log.warning("webhook_rejected", reason=exc.reason)
        return web.Response(status=exc.status, text=exc.reason)
    except WebhookError as exc:
        log.warning("webhook_invalid", reason=exc.reason)
        return web.Response(status=exc.status, text=exc.reason)

    with structlog.contextvars.bound_contextvars(call_sid=start.call_sid):
        outbound = _outbound_request(orchestrator, request.query, start)
        if outbound is not None:
            # Shared with the start: the worker that takes the socket must know the order too.
            start = dataclasses.replace(start, raw=with_query(start.raw, request.query))
        missed = not_answered(start.state) if outbound is not None else None
        if outbound is not None and missed is not None and start.call_sid not in orchestrator.sessions:
            return await _outbound_not_answered(orchestrator, start.call_sid, outbound, missed)
        existing = orchestrator.sessions.get(start.call_sid)
        if existing is not None:
            return await _answer_again(orchestrator, existing, start, signed=signed == "signed")
        elsewhere = await _answer_for_another_worker(orchestrator, start, signed=signed == "signed")
        if elsewhere is not None:
            return elsewhere
        if orchestrator.draining:  # before the id is remembered: another worker may take the call
            log.warning("webhook_refused_draining")
            return web.Response(status=503, text="shutting down", headers={"Retry-After": "1"})
        first = await orchestrator.replay.first_sighting(
            f"call:{start.call_sid}", until=time.time() + SEEN_CALL_TTL_S
        )
        if not first:
            # Answered before and since forgotten (never connected, or long finished): a replay or a
            # late retry, never a second call with a fresh stream token.
            log.warning("webhook_for_a_past_call", state=start.state)
            return web.Response(text=render_empty_response(), content_type=XML)
        session = _new_session(orchestrator, start, outbound=outbound)
        _record_as_it_goes(orchestrator, session)
        live = orchestrator.live
        session.prefetch_orders(
            lambda found: orchestrator.spawn(live.orders_prefetched(start.call_sid, found))
        )
        xml, token = _stream_response(orchestrator, session)
        session.note_xml(_redact_token(xml))
        records = orchestrator.records
        # Written before the answer: the platform may open the socket on another worker at once.
        await live.answered(
            SharedCall(
                start=start,
                token=token,
                answered_by=live.worker_id,
                record_id=records.record_id(session) if records is not None else "",
                started_at=time.time(),
            )
        )
        log.info("call_started", caller=mask_phone(start.caller or ""), state=start.state)
        session.observer.webhook_answered(at=asyncio.get_running_loop().time())
        asyncio.get_running_loop().call_later(
            orchestrator.settings.stream_connect_timeout_s,
            _expire_if_unconnected,
            orchestrator,
            start.call_sid,  # not the session: a timer must not keep a finished call alive
        )
        return web.Response(text=xml, content_type=XML)


def _new_session(
    orchestrator: Orchestrator, start: CallStart, *, outbound: OutboundRequest | None = None
) -> CallSession:
    """A call's session on this worker, at its webhook or when its socket arrives from another's."""
    if orchestrator.orders is None:
        raise ConfigError("the orders client is not ready: is the app started?")
    brain = orchestrator.brain_factory(start)
    observer = None
    if orchestrator.observability is not None:
        observer = orchestrator.observability.observer(
            start, brain, started=asyncio.get_running_loop().time()
        )
    session = CallSession(
        start=start,
        flow=orchestrator.flow,
        brain=brain,
        orders=orchestrator.orders,
        options=orchestrator.options(),
        services=orchestrator.services,
        fallback_tts=orchestrator.fallback_voice,
        observer=observer,
        outbound=outbound,
    )
    orchestrator.sessions[start.call_sid] = session
    _share_as_it_goes(orchestrator, session)
    for callback in orchestrator.on_call_started:
        callback(session)
    return session


def _share_as_it_goes(orchestrator: Orchestrator, session: CallSession) -> None:
    """What other workers need if this one dies or is asked about the call: escalation, the Dial."""
    live, sid = orchestrator.live, session.call_sid
    escalation = orchestrator.flow.escalation
    keep_s = (escalation.dial_request_timeout if escalation else 0.0) + DIAL_KEPT_EXTRA_S
    session.dial_listeners.append(
        lambda dial: orchestrator.spawn(live.offer_dial(sid, dial, ttl_s=keep_s))
    )
    flagged: list[bool] = []

    def on_entry(entry: Entry) -> None:
        if entry.kind == "state" and session.machine.state == ESCALATION_STATE and not flagged:
            flagged.append(True)
            orchestrator.spawn(live.escalating(sid))

    session.transcript.listeners.append(on_entry)


def _outbound_request(
    orchestrator: Orchestrator, query: Mapping[str, str], start: CallStart
) -> OutboundRequest | None:
    """The order an outbound call is about, from its signed callback URL (None for an inbound call)."""
    found = read_outbound_query(query, orchestrator.secret)
    if found is None:
        if "outbound" in query or is_outbound(start.direction):
            log.warning("outbound_webhook_without_a_valid_order", direction=start.direction)
        return None
    if orchestrator.flow.initial_outbound is None:
        log.warning("outbound_webhook_but_no_initial_outbound", flow=orchestrator.flow.name)
        return None
    return found


async def _outbound_not_answered(
    orchestrator: Orchestrator, call_sid: CallId, request: OutboundRequest, reason: NotAnswered
) -> web.Response:
    """Nobody answered the call we placed: recorded once (the platform may say it twice), retried per the flow."""
    first = await orchestrator.replay.first_sighting(
        f"not-answered:{call_sid}", until=time.time() + SEEN_CALL_TTL_S
    )
    if first and orchestrator.redialer is not None:
        orchestrator.redialer.not_answered(call_sid=call_sid, request=request, reason=reason)
    return web.Response(text=render_empty_response(), content_type=XML)


def _redial_voicemail(orchestrator: Orchestrator) -> Callable[[CallSession], None]:
    def after(session: CallSession) -> None:
        outbound, settings = session.outbound, orchestrator.flow.outbound
        hung_up = settings is not None and settings.voicemail == "hang_up"
        if outbound is not None and session.outbound_result == "voicemail" and hung_up:
            if orchestrator.redialer is not None:
                orchestrator.redialer.voicemail_hung_up(outbound)

    return after


def _record_as_it_goes(orchestrator: Orchestrator, session: CallSession) -> None:
    """Recorded now (live), and again at each state change and stream edge, so no crash loses the call."""
    records = orchestrator.records
    if records is None:
        return
    records.write(session)
    progress = frozenset({"state", "stream"})
    session.transcript.listeners.append(
        lambda entry: records.write(session) if entry.kind in progress else None
    )


async def _answer_again(
    orchestrator: Orchestrator, session: CallSession, start: CallStart, *, signed: bool
) -> web.Response:
    """A lifecycle re-POST: never a second Stream; the Dial when the call is escalating."""
    dial = await orchestrator.live.take_dial(start.call_sid)
    _heard_again(
        orchestrator,
        session,
        start.state,
        signed=signed,
        dial_taken=dial is not None,
        digits=start.digits,
    )
    xml = render_response(dial) if dial is not None else render_empty_response()
    session.note_xml(xml)
    log.info("webhook_again", state=start.state, dial=dial is not None)
    return web.Response(text=xml, content_type=XML)


def _heard_again(
    orchestrator: Orchestrator,
    session: CallSession,
    state: str | None,
    *,
    signed: bool,
    dial_taken: bool,
    digits: str | None,
) -> None:
    """A re-POST reached the call (here, or through the worker it landed on).

    A `Completed` for a live call ends it, so it is only taken as said when signed; unsigned, the
    platform's REST record is asked first (and without a REST key, the stream's own end decides).
    """
    live = session.stream_attached and not session.finished.is_set()
    if state == "completed" and live and not signed:
        session.note("call", "webhook again (callSessionState=completed), unsigned: checking")
        orchestrator.spawn(_confirm_completed(orchestrator, session))
    else:
        session.note_webhook_again(state)
    if digits:
        session.press_keys(digits)
    if dial_taken:
        session.take_dial()


async def _answer_for_another_worker(
    orchestrator: Orchestrator, start: CallStart, *, signed: bool
) -> web.Response | None:
    """A re-POST for a call another worker holds: its Dial if pending, and the news passed on.

    None when no worker holds the call (a first webhook, or a call long over). A call whose worker
    died gets the Dial if it was being handed to a person, else an apology and a hang-up."""
    live = orchestrator.live
    dial = await live.take_dial(start.call_sid)
    delivery = await live.send(
        CallMessage(
            call_sid=start.call_sid,
            kind="again",
            state=start.state,
            signed=signed,
            dial_taken=dial is not None,
            digits=start.digits,
        )
    )
    if delivery.outcome == "unknown" and dial is None:
        return None
    if dial is None and delivery.outcome == "orphaned":
        dial = _escalation_dial(orchestrator.flow) if delivery.escalating else None
        if dial is None:
            voice = orchestrator.flow.voice
            log.warning("webhook_for_an_orphaned_call", state=start.state)
            xml = render_response(SayVerb(text=ORPHANED_SAY, language=voice.language), HangupVerb())
            return web.Response(text=xml, content_type=XML)
    log.info("webhook_again_elsewhere", state=start.state, dial=dial is not None, to=delivery.outcome)
    xml = render_response(dial) if dial is not None else render_empty_response()
    return web.Response(text=xml, content_type=XML)


def _escalation_dial(flow: Flow) -> DialVerb | None:
    """The flow's own Dial to a person, for a hand-off whose worker died before offering it."""
    escalation = flow.escalation
    if escalation is None or "dial" not in escalation.strategies:
        return None
    return DialVerb(
        number=escalation.number, caller_id=escalation.caller_id, timeout=int(escalation.timeout)
    )


def _stream_response(orchestrator: Orchestrator, session: CallSession) -> tuple[str, str]:
    """The first answer (the greeting, then the Stream) and the stream token in it."""
    settings = orchestrator.settings
    token = make_stream_token(
        orchestrator.secret, session.call_sid, now=time.time(), ttl=settings.stream_token_ttl_s
    )
    status_url = (
        f"{settings.public_url}{settings.routes.stream_status}?{urlencode({'call_sid': session.call_sid})}"
    )
    verbs: list[SayVerb | StreamSpec] = []
    if session.greeting.say:
        verbs.append(SayVerb(text=session.greeting.say, language=session.language))
    verbs.append(
        StreamSpec(
            url=stream_url(settings.public_url, settings.routes.audio, session.call_sid, token),
            track=settings.track,
            sample_rate=settings.sample_rate,
            bidirectional_rate=settings.sample_rate,
            status_callback=status_url,
        )
    )
    return render_response(*verbs), token


def _redact_token(xml: str) -> str:
    # The token is a credential and differs on every run: keep it out of transcripts.
    head, sep, tail = xml.partition("token=")
    if not sep:
        return xml
    end = min((i for i in (tail.find("&"), tail.find('"')) if i >= 0), default=len(tail))
    return f"{head}{sep}REDACTED{tail[end:]}"


async def _confirm_completed(orchestrator: Orchestrator, session: CallSession) -> None:
    """Trust an unsigned `Completed` for a live call only if the platform's own record says it ended."""
    rest = orchestrator.services.rest
    if rest is None:
        session.note("call", "unsigned completed not trusted (no REST key to confirm it)")
        log.warning("completed_not_trusted", call_sid=session.call_sid, reason="no REST key")
        return
    try:
        async with asyncio.timeout(CALL_RECORD_TIMEOUT_S):
            record = await rest.get_call(session.call_sid)
    except (SautikitError, TimeoutError) as exc:
        reason = f"{exc.code or exc.status}" if isinstance(exc, SautikitError) else "timed out"
        session.note("call", f"unsigned completed not trusted (call record unavailable: {reason})")
        return
    if record.ended:
        session.note_webhook_again("completed")
    else:
        session.note("call", f"unsigned completed not trusted (platform says {record.status})")
        log.warning("completed_not_trusted", call_sid=session.call_sid, status=record.status)


Signed = Literal["unsigned", "signed", "replayed"]
REPLAYED = "replayed webhook signature (this request was already accepted)"


async def _check_signature(orchestrator: Orchestrator, body: bytes, header: str | None) -> Signed:
    """"unsigned" when no secret is set; "replayed" for a signature accepted before; `SignatureError` if bad."""
    settings = orchestrator.settings
    if not settings.webhook_secret:
        return "unsigned"
    accepted = verify_webhook_signature(
        settings.webhook_secret.encode(),
        body,
        header,
        now=time.time(),
        tolerance=settings.webhook_tolerance_s,
        allow_plain=settings.webhook_plain_signatures,
    )
    first = await orchestrator.replay.first_sighting(f"sig:{accepted.mac}", until=accepted.expires_at)
    return "signed" if first else "replayed"


def _expire_if_unconnected(orchestrator: Orchestrator, call_sid: CallId) -> None:
    session = orchestrator.sessions.get(call_sid)
    if session is not None and not session.stream_attached:
        orchestrator.spawn(_expire(orchestrator, session))


async def _expire(orchestrator: Orchestrator, session: CallSession) -> None:
    """No socket came here: the call is over, unless another worker holds its socket (its message that
    the call moved was lost), whose record and shared state must then stay as they are."""
    live, call_sid = orchestrator.live, session.call_sid
    claimed = await live.claim(call_sid)
    if session.stream_attached or orchestrator.sessions.get(call_sid) is not session:
        return  # the socket came after all, here, or the session was let go meanwhile
    del orchestrator.sessions[call_sid]
    if not claimed:
        log.info("call_moved", call_sid=call_sid)
        return
    log.warning("stream_never_connected", call_sid=call_sid)
    session.note("stream", "never connected")
    if orchestrator.records is not None:
        orchestrator.records.write(session, outcome=UNCONNECTED)
    await live.finished(call_sid)


async def _media_stream(request: web.Request) -> web.StreamResponse:
    orchestrator = request.app[ORCHESTRATOR]
    ws = media_socket_for(request)  # 400 before any upgrade without the subprotocol
    raw_call_sid = request.query.get("call_sid") or request.query.get("callSid") or ""
    token = request.query.get("token") or ""
    if not raw_call_sid or not token:
        raise web.HTTPForbidden(text="stream URL lacks call_sid or token")
    try:
        call_sid = parse_call_id(raw_call_sid)
    except WebhookError as exc:
        raise web.HTTPBadRequest(text=exc.reason) from exc
    session = orchestrator.sessions.get(call_sid)
    shared = await orchestrator.live.find(call_sid) if session is None else None
    try:
        verify_stream_token(orchestrator.secret, call_sid, token, now=time.time())
    except SignatureError as exc:
        # Another worker answered the webhook (perhaps with a secret of its own): its token is shared.
        if shared is None or not _same_token(shared.token, token):
            log.warning("stream_rejected", call_sid=call_sid, reason=exc.reason)
            raise web.HTTPForbidden(text=exc.reason) from exc
    if session is None and shared is None:
        raise web.HTTPNotFound(text="no such call")
    if (session is not None and session.stream_attached) or not await orchestrator.live.claim(call_sid):
        raise web.HTTPConflict(text="this call already has a media stream")
    if session is None:
        assert shared is not None
        session = _take_over(orchestrator, shared)

    media = await accept_media_stream(request, ws)
    if orchestrator.draining:  # answered before the shut-down began: its caller hears the goodbye too
        session.shut_down()
    with structlog.contextvars.bound_contextvars(call_sid=call_sid):
        try:
            await session.run(media)
        finally:
            _finish(orchestrator, session)
    return ws


def _same_token(shared: str, given: str) -> bool:
    """The token the webhook's worker put in the Stream URL, and not expired."""
    expiry, _, _ = shared.partition(".")
    fresh = expiry.isdigit() and int(expiry) >= time.time()
    return fresh and hmac.compare_digest(shared.encode(), given.encode())


def _take_over(orchestrator: Orchestrator, shared: SharedCall) -> CallSession:
    """The call's socket came here, its webhook was answered by another worker: the call is ours now."""
    start = shared.start
    outbound = _outbound_request(orchestrator, kept_query(start.raw), start)
    session = _new_session(orchestrator, start, outbound=outbound)
    records = orchestrator.records
    if records is not None and shared.record_id:
        records.adopt(
            session,
            record_id=shared.record_id,
            started_at=datetime.fromtimestamp(shared.started_at, UTC),
        )
    _record_as_it_goes(orchestrator, session)
    if shared.orders is not None:
        session.use_prefetched(shared.orders)
    else:
        session.prefetch_orders()
    session.note("call", f"taken over from worker {shared.answered_by}")
    log.info("call_taken_over", answered_by=shared.answered_by)
    return session


def _finish(orchestrator: Orchestrator, session: CallSession) -> None:
    orchestrator.finished_calls += 1
    orchestrator.spawn(orchestrator.live.finished(session.call_sid))
    orchestrator.spawn(_after_call(orchestrator, session))
    # The timer holds the id, not the session: a finished call lives on in the store, not the heap.
    asyncio.get_running_loop().call_later(
        FINISHED_CALL_GRACE_S, orchestrator.sessions.pop, session.call_sid, None
    )


async def _after_call(orchestrator: Orchestrator, session: CallSession) -> None:
    """Once the outcome is known (a Dial is only answered on Sautikit's next request), report and persist.

    Cancelled at shut-down, the call is still written down: its record, callbacks and transcript.
    """
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(session.finished.wait(), timeout=FINISHED_CALL_TTL_S)
        rest = orchestrator.services.rest
        if rest is not None and orchestrator.settings.fetch_call_record:
            await _fetch_call_record(rest, session)
    finally:
        if orchestrator.records is not None:
            outcome = None if session.finished.is_set() else INTERRUPTED
            orchestrator.records.write(session, outcome=outcome)
        for callback in orchestrator.on_call_finished:
            callback(session)
        directory = orchestrator.settings.transcripts_dir
        if directory is not None:
            await _save_transcript(directory, session)


async def _fetch_call_record(rest: SautikitClient, session: CallSession) -> None:
    """The platform's record of the call (duration, status, cost), once it says the call has ended."""
    for attempt in range(CALL_RECORD_ATTEMPTS):
        try:
            async with asyncio.timeout(CALL_RECORD_TIMEOUT_S):
                record = await rest.get_call(session.call_sid)
        except (SautikitError, TimeoutError) as exc:
            reason = f"{exc.code or exc.status}" if isinstance(exc, SautikitError) else "timed out"
            session.note("record", f"call record unavailable: {reason}")
            return
        if record.ended or attempt == CALL_RECORD_ATTEMPTS - 1:
            session.call_record = record
            cost = (
                f"{record.cost_minor / 100:.2f} {record.cost_currency or ''}".strip()
                if record.cost_minor is not None
                else "-"
            )
            duration = (
                f"{record.duration_seconds:g} s" if record.duration_seconds is not None else "-"
            )
            session.note("record", f"status {record.status}, duration {duration}, cost {cost}")
            return
        await asyncio.sleep(CALL_RECORD_RETRY_S)


async def _save_transcript(directory: Path, session: CallSession) -> None:
    def write() -> None:
        directory.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, TRANSCRIPT_ATTEMPTS + 1):
            text_path, json_path = transcript_files(directory, session.call_sid, attempt=attempt)
            try:  # "x": a reused call id gets its own files, never the older call's
                with text_path.open("x", encoding="utf-8") as text_file:
                    text_file.write(session.transcript.render())
            except FileExistsError:
                continue
            json_path.write_text(session.transcript.to_json(), encoding="utf-8")
            return
        raise OSError(f"{TRANSCRIPT_ATTEMPTS} transcripts already kept for {session.call_sid}")

    try:
        await asyncio.to_thread(write)
    except OSError as exc:
        log.error("transcript_not_saved", error=str(exc))


async def _stream_status(request: web.Request) -> web.Response:
    orchestrator = request.app[ORCHESTRATOR]
    body = await request.read()
    try:
        if await _check_signature(orchestrator, body, request.headers.get(SIGNATURE_HEADER)) == "replayed":
            raise SignatureError(REPLAYED)
    except SignatureError as exc:
        log.warning("status_rejected", reason=exc.reason)
        return web.Response(status=exc.status, text=exc.reason)
    fields = _liberal_fields(body)
    call_sid = request.query.get("call_sid") or next(
        (fields[k] for k in ("callSid", "CallSid", "call_sid", "sessionId") if k in fields), ""
    )
    if not is_call_id(call_sid):
        call_sid = ""  # logged as unknown; an odd id names nothing here
    # Fire-and-forget notifications with undocumented bodies: log them raw, attach to the call if known.
    log.info("stream_status", call_sid=call_sid, fields=mask_phone_numbers_in(fields))
    session = orchestrator.sessions.get(CallId(call_sid))
    if session is not None:
        session.note_status(fields)
    elif call_sid:
        await orchestrator.live.send(
            CallMessage(call_sid=CallId(call_sid), kind="status", fields=fields)
        )
    return web.Response(status=204)


def _liberal_fields(body: bytes) -> dict[str, str]:
    text = body.decode("utf-8", errors="replace").strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return {}
        if isinstance(data, dict):
            return {str(k): str(v) for k, v in data.items() if not isinstance(v, dict | list)}
        return {}
    return dict(parse_qsl(text, keep_blank_values=True))


class _EventEnvelope(BaseModel):
    """Sautikit's event webhook body: `{kind, event_id, occurred_at, data}`; the data's shape varies by kind."""

    model_config = ConfigDict(extra="ignore")

    kind: str
    event_id: str
    occurred_at: str | None = None
    data: dict[str, object] = Field(default_factory=dict)

    def call_ids(self) -> list[str]:
        call = self.data.get("call")
        scopes = [self.data, call] if isinstance(call, dict) else [self.data]
        names = ("call_sid", "callSid", "session_id", "sessionId", "call_id", "id")
        return [str(scope[n]) for scope in scopes for n in names if scope.get(n)]


async def _events(request: web.Request) -> web.Response:
    """Call completed / failed / recording ready: answered 2xx at once, deduplicated, kept with the call."""
    orchestrator = request.app[ORCHESTRATOR]
    body = await request.read()
    try:
        signed = await _check_signature(orchestrator, body, request.headers.get(SIGNATURE_HEADER))
    except SignatureError as exc:
        log.warning("event_rejected", reason=exc.reason)
        return web.Response(status=exc.status, text=exc.reason)
    if signed == "replayed":  # the very request was accepted before: a duplicate delivery, done already
        log.info("event_replayed")
        return web.Response(status=204)
    try:
        event = _EventEnvelope.model_validate_json(body)
    except ValidationError as exc:
        log.warning("event_invalid", errors=exc.error_count())
        return web.Response(status=400, text="expected {kind, event_id, occurred_at, data}")
    fresh = await orchestrator.replay.first_sighting(
        f"event:{event.event_id}", until=time.time() + SEEN_EVENT_TTL_S
    )
    if not fresh:
        log.info("event_duplicate", event_id=event.event_id, kind=event.kind)
        return web.Response(status=204)
    session = next(
        (
            orchestrator.sessions[CallId(i)]
            for i in event.call_ids()
            if is_call_id(i) and i in orchestrator.sessions
        ),
        None,
    )
    elsewhere = session is None and await _event_elsewhere(orchestrator, event)
    log.info(
        "event",
        kind=event.kind,
        event_id=event.event_id,
        known_call=session is not None or elsewhere,
    )
    if session is not None:
        session.note_event(event.kind, event.data)
    return web.Response(status=204)


async def _event_elsewhere(orchestrator: Orchestrator, event: _EventEnvelope) -> bool:
    """Pass an event on to the worker holding its call; True if one does."""
    for named in event.call_ids():
        if not is_call_id(named):
            continue
        message = CallMessage(
            call_sid=CallId(named), kind="event", event_kind=event.kind, data=event.data
        )
        if (await orchestrator.live.send(message)).outcome == "delivered":
            return True
    return False


def _on_call_message(orchestrator: Orchestrator, message: CallMessage) -> None:
    """Another worker received something for a call held here: it reaches the call as if it came here."""
    session = orchestrator.sessions.get(message.call_sid)
    if session is None:
        log.info("call_message_for_no_call", call_sid=message.call_sid, kind=message.kind)
        return
    with structlog.contextvars.bound_contextvars(call_sid=message.call_sid):
        if message.kind == "again":
            _heard_again(
                orchestrator,
                session,
                message.state,
                signed=message.signed,
                dial_taken=message.dial_taken,
                digits=message.digits,
            )
        elif message.kind == "status":
            session.note_status(message.fields)
        elif message.kind == "event":
            session.note_event(message.event_kind, message.data)
        elif message.kind == "moved" and not session.stream_attached:
            # Its socket went to another worker, which carries on the call and its record.
            del orchestrator.sessions[message.call_sid]
            log.info("call_moved")


async def _mark_orphaned(orchestrator: Orchestrator, call_sids: list[CallId]) -> None:
    """A worker died with these calls live: their records say `interrupted`."""
    records = orchestrator.records
    if records is None:
        return
    try:
        marked = await records.store.mark_interrupted(call_sids)
    except CallStoreError as exc:
        log.error("orphaned_calls_not_marked", calls=len(call_sids), error=str(exc))
        return
    log.warning("orphaned_calls_marked", calls=len(call_sids), records=marked)


async def _health(request: web.Request) -> web.Response:
    """ok (200); degraded (200: calls are served, records are not reaching the store); draining (503)."""
    orchestrator = request.app[ORCHESTRATOR]
    active = sum(1 for s in orchestrator.sessions.values() if not s.finished.is_set())
    records = orchestrator.records.health() if orchestrator.records is not None else None
    status = "ok"
    if orchestrator.draining:
        status = "draining"
    elif records is not None and records.degraded:
        status = "degraded"
    return web.json_response(
        {
            "status": status,
            "flow": orchestrator.flow.name,
            "active_calls": active,
            "finished_calls": orchestrator.finished_calls,
            "worker": orchestrator.live.worker_id,
            "pid": os.getpid(),
            "signatures": "on" if orchestrator.settings.webhook_secret else "off",
            "record_failures": records.failures if records is not None else 0,
            "records_pending": records.pending if records is not None else 0,
        },
        status=503 if orchestrator.draining else 200,
    )


# --- the process: serve until a signal, then drain -------------------------------------------------


async def drain_calls(orchestrator: Orchestrator, grace_s: float) -> bool:
    """Stop taking calls, route `shutdown` through every live call's flow, wait up to `grace_s` for them
    to end and be written down. True if every call ended in time."""
    orchestrator.draining = True
    live = [s for s in orchestrator.sessions.values() if not s.finished.is_set()]
    log.warning("draining", live_calls=len(live), grace_s=grace_s)
    for session in live:
        session.shut_down()
    try:
        async with asyncio.timeout(grace_s):
            for session in live:
                await session.finished.wait()
            while orchestrator.background:  # records, call records, transcripts
                await asyncio.gather(*orchestrator.background, return_exceptions=True)
            if orchestrator.records is not None:
                await orchestrator.records.flush(grace_s)
    except TimeoutError:
        unfinished = sum(1 for s in live if not s.finished.is_set())
        log.error("drain_grace_exceeded", unfinished_calls=unfinished)
        return False
    log.warning("drained", calls=len(live))
    return True


async def run_service(
    app: web.Application,
    *,
    host: str,
    port: int,
    grace_s: float,
    on_started: Callable[[], None] | None = None,
    reuse_port: bool = False,
    metrics_port: int | None = None,
) -> None:
    """Serve `app` until SIGTERM or SIGINT; then drain live calls within `grace_s` and exit.

    With `metrics_port`, this process's `GET /metrics` alone is also served on that port: under
    `serve --workers N` a scrape of the shared port reaches whichever worker the kernel picks, and each
    worker's own port is how Prometheus scrapes them one by one.

    A second signal ends the drain at once; the cleanup still writes every call's record (to the
    journal if the store is slow). With `reuse_port` (one of `serve --workers N`), the port is shared
    with the other workers, and a draining worker stops listening at once so new calls go to them.
    """
    # The port first: a port in use stops here, before the app starts and touches the call store.
    sockets = bind_listening(host, port, reuse_port=reuse_port)
    # Shared only for a rolling restart's overlap: the slot's new worker binds before the old one drains.
    try:
        metrics_sockets = (
            bind_listening(host, metrics_port, reuse_port=reuse_port) if metrics_port is not None else []
        )
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    loop = asyncio.get_running_loop()
    signals: asyncio.Queue[signal.Signals] = asyncio.Queue()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, signals.put_nowait, signum)
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=HANDLER_SHUTDOWN_TIMEOUT_S
    )
    try:
        await runner.setup()
    except BaseException:
        for sock in [*sockets, *metrics_sockets]:
            sock.close()
        raise
    metrics_runner: web.AppRunner | None = None
    metrics_sites: list[web.SockSite] = []
    try:
        sites = [web.SockSite(runner, sock) for sock in sockets]
        for site in sites:
            await site.start()
        observability = app[ORCHESTRATOR].observability
        if metrics_sockets and observability is not None:
            metrics_runner = web.AppRunner(observability.metrics_app(), access_log=None)
            await metrics_runner.setup()
            metrics_sites = [web.SockSite(metrics_runner, sock) for sock in metrics_sockets]
            for site in metrics_sites:
                await site.start()
        if on_started is not None:
            on_started()
        first = await signals.get()
        log.warning("shutdown_requested", signal=first.name, grace_s=grace_s)
        if reuse_port:  # the other workers on this port take the new calls; live ones go on here
            for site in sites:
                await site.stop()
            for site in metrics_sites:  # and this slot's new worker is the one scraped
                await site.stop()
        # The drain leaves room in the grace for the cleanup after it (handlers, records).
        budget = max(grace_s - HANDLER_SHUTDOWN_TIMEOUT_S - RECORDS_CLOSE_TIMEOUT_S, 0.0)
        drain = loop.create_task(drain_calls(app[ORCHESTRATOR], budget))
        second = loop.create_task(signals.get())
        await asyncio.wait({drain, second}, return_when=asyncio.FIRST_COMPLETED)
        if second.done():
            log.warning("shutdown_now", signal=second.result().name)
            drain.cancel()
        else:
            second.cancel()
        await asyncio.gather(drain, second, return_exceptions=True)
        for session in app[ORCHESTRATOR].sessions.values():
            session.cut_short()  # recorded `interrupted` when the cleanup closes their sockets
    finally:
        if metrics_runner is not None:
            await metrics_runner.cleanup()
        await runner.cleanup()
        for sock in [*sockets, *metrics_sockets]:  # a site's server closed its own; these never served
            sock.close()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
