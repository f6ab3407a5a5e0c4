"""`orchestrator`: serve calls, check and draw flows, and hear a demo call end to end.

    orchestrator demo                          # the service + simulated calls, offline, with transcripts and WAVs
    orchestrator serve --public-url https://agent.example.com
    orchestrator flow check flows/order_status.yaml
    orchestrator flow diagram flows/order_status.yaml
    orchestrator test                          # the flow's scripted calls (fixtures/calls/) against their snapshots
    orchestrator call fixtures/calls/order_number_read_out.yaml --url http://127.0.0.1:8080
    orchestrator numbers route NUMBER_ID --public-url https://agent.example.com
    orchestrator calls show HD_xxxxxxxx
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import shutil
import socket
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from pydantic import ValidationError

from orchestrator.app import create_app, run_service
from orchestrator.audio.wav import interleave, write_wav
from orchestrator.brain_check import add_brain_commands
from orchestrator.brain_choice import BRAINS, DEFAULT_SCRIPT, make_brain_factory, speech_choice
from orchestrator.brains.base import Brain
from orchestrator.brains.cascade import make_offline_brain_factory
from orchestrator.brains.scripted import ScriptedBrain
from orchestrator.call.records import default_journal
from orchestrator.call.session import CallSession
from orchestrator.call.store import CallStoreError
from orchestrator.call.transcript import Entry
from orchestrator.console import add_console
from orchestrator.console.command import add_console_command, console_token
from orchestrator.errors import ConfigError, FlowError
from orchestrator.flow import load_flow, summarize, to_mermaid
from orchestrator.flow.schema import flow_json_schema
from orchestrator.flowtest import run_flow_tests
from orchestrator.gc_policy import gc_policy
from orchestrator.harness import CallRecord, serve_line
from orchestrator.history_cli import add_history_commands, calls_db
from orchestrator.logging import configure_logging
from orchestrator.operator_cli import add_operator_commands
from orchestrator.script import CallScript, load_script
from orchestrator.settings import DEFAULT_FLOW, Settings
from orchestrator.simulator import FakeSautikit, SimulatedCall, SimulatorOptions
from orchestrator.speech.choice import chosen_asr
from orchestrator.speech.voices import CALLER_VOICES, CallerVoice, caller_voice
from orchestrator.supervisor import (
    WORKER_INDEX_VARIABLE,
    Supervisor,
    announce_ready,
    leave_with_the_supervisor,
    worker_command,
)
from orchestrator.telephony.webhook import CallStart

__all__ = ["main"]

ROOT = DEFAULT_FLOW.parent.parent
CALLS = ROOT / "fixtures" / "calls"
# name -> (offline script and its test-caller voice, scripted script)
DEMO_SCENARIOS: dict[str, tuple[Path, CallerVoice, Path]] = {
    # A returning caller just asks "is my order out for delivery?": answered from the orders on their number.
    "returning-caller": (
        CALLS / "offline" / "returning_caller_asks_status.yaml",
        "slt",
        CALLS / "returning_caller_by_phone.yaml",
    ),
    "by-order-number": (
        CALLS / "offline" / "track_by_number.yaml", "kal16", CALLS / "order_number_read_out.yaml",
    ),
    "human": (CALLS / "offline" / "asks_for_human.yaml", "rms", CALLS / "asks_for_human.yaml"),
}

ENV_HELP = """\
environment variables (flags win over them):
  ORCHESTRATOR_BRAIN              offline (default), scripted, gemini, openai, chat or bench
  GEMINI_API_KEY, OPENAI_API_KEY  keys of the realtime brains
  ORCHESTRATOR_CHAT_BASE_URL, ORCHESTRATOR_CHAT_MODEL, ORCHESTRATOR_CHAT_API_KEY   the chat brain
  ORCHESTRATOR_ASR_DECODERS       offline speech decoders all calls share (default 6, ~150 MB each)
  ORCHESTRATOR_ASR_DECODERS_AT_START   of those, built while serve starts (default 2): the calls you expect at once
  ORCHESTRATOR_HOST, ORCHESTRATOR_PORT, ORCHESTRATOR_PUBLIC_URL, ORCHESTRATOR_FLOW,
  ORCHESTRATOR_STREAM_SECRET      signs stream tokens; set it when several workers share calls
  ORCHESTRATOR_REDIS_URL          workers (processes, hosts) share live calls here; serve then runs one per core
  ORCHESTRATOR_WORKERS            worker processes for serve (--workers); more than one needs Redis
  ORCHESTRATOR_WEBHOOK_SECRET     verify X-Sautikit-Signature on webhooks (or SAUTIKIT_WEBHOOK_SECRET)
  ORCHESTRATOR_WEBHOOK_PLAIN_SIGNATURES=1   also accept the plain (untimed, replayable) signature form
  ORCHESTRATOR_ORDERS_BASE_URL    the shop's orders API (docs/orders-api.md)
  ORCHESTRATOR_ORDERS=demo        without a base URL: answer from the embedded demo orders (else serve refuses)
  ORCHESTRATOR_ORDERS_TOKEN       token for it (or ORDERS_API_TOKEN), sent as
                                  ORCHESTRATOR_ORDERS_AUTH_HEADER: ORCHESTRATOR_ORDERS_AUTH_SCHEME <token>
  ORCHESTRATOR_ORDERS_PATH, _ORDER_PARAM, _PHONE_PARAM, _ENVELOPE, _FIELDS (JSON), _STATUSES (JSON)
                                  how to read the shop's answers; each wins over the flow's orders: section
  ORCHESTRATOR_SAUTIKIT_API_KEY   Sautikit REST key (or SAUTIKIT_API_KEY): hang-up, supervision, call records
  ORCHESTRATOR_SAUTIKIT_BASE_URL  default https://api.sautikit.com
  ORCHESTRATOR_TRACK              inbound_track (default) or both_tracks
  ORCHESTRATOR_ROUTE_VOICE, ORCHESTRATOR_ROUTE_AUDIO, ORCHESTRATOR_ROUTE_STREAM_STATUS,
  ORCHESTRATOR_ROUTE_EVENTS, ORCHESTRATOR_ROUTE_HEALTH
                                  route paths (defaults /voice, /audio, /stream-status, /events, /healthz)
  ORCHESTRATOR_TRANSCRIPTS_DIR    write each call's transcript (.txt and .json) here
  ORCHESTRATOR_CALLS_DB           where every call is recorded, for `orchestrator history` and the console: a
                                  SQLite file (default ./calls.sqlite3; one host) or postgresql://user@host/db
                                  (several hosts share it; ?search_path=SCHEMA keeps deployments apart;
                                  ?statement_cache_size=0 behind PgBouncer's transaction pooling)
  ORCHESTRATOR_CALLS_DB_POOL_SIZE most PostgreSQL connections per worker (default 4)
  ORCHESTRATOR_HOST_ID            this host's name on its records (default: the hostname); without Redis a
                                  starting service marks only its own host's leftover live calls interrupted
  ORCHESTRATOR_HOST_HEARTBEAT_S, ORCHESTRATOR_HOST_TTL_S   without Redis, hosts beat in the calls store
                                  (default every 10 s); one silent 60 s is gone and its live calls marked
  ORCHESTRATOR_RECORDS_JOURNAL    where records the database refuses wait (default <calls db>.journal, or
                                  ./calls.journal with PostgreSQL)
  ORCHESTRATOR_SHUTDOWN_GRACE_S   on SIGTERM, seconds live calls get to end (default 20)
  ORCHESTRATOR_METRICS_TOKEN      bearer token GET /metrics requires (unset: open)
  ORCHESTRATOR_METRICS_PORT       also serve GET /metrics alone here (--metrics-port; worker k of --workers: +k)
  ORCHESTRATOR_CONSOLE_TOKEN      the calls console's token (--console; required)
  ORCHESTRATOR_RECORDINGS_DIR     keep each call's two-track recording (<call_sid>.wav) here
  OTEL_EXPORTER_OTLP_ENDPOINT     export one OpenTelemetry trace per call (needs the [otel] extra)
  ORCHESTRATOR_LOG_LEVEL          debug, info (default), warning or error
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    args.argv = list(argv) if argv is not None else sys.argv[1:]  # `serve --workers` starts its workers so
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return int(args.run(args))
    except FlowError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except (ConfigError, ValidationError) as exc:
        print(f"orchestrator: configuration error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `orchestrator flow check ... | head`: the reader has gone, which is not a fault to report.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description="Order-status phone voice agents on Sautikit; every call a state machine from YAML.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'orchestrator COMMAND --help' for a command's options.",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the service Sautikit calls (voice webhook, media socket, status callback, health)",
        description="Run the service. Point a Sautikit number's routing_url at PUBLIC_URL/voice.",
        epilog=ENV_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080)")
    serve.add_argument("--public-url", help="https URL Sautikit reaches this service at")
    serve.add_argument(
        "--flow", type=Path, help=f"flow YAML (default {DEFAULT_FLOW.relative_to(ROOT)})"
    )
    serve.add_argument(
        "--brain",
        choices=BRAINS,
        help="who talks with callers: offline (default; no key, no network), scripted, gemini "
        "(GEMINI_API_KEY), openai (OPENAI_API_KEY), chat (ORCHESTRATOR_CHAT_BASE_URL/_MODEL), "
        "bench (an instant tone reply, for load tests)",
    )
    serve.add_argument(
        "--script",
        type=Path,
        help="with --brain scripted: the call script played on every call "
        f"(default {DEFAULT_SCRIPT.relative_to(ROOT)})",
    )
    serve.add_argument(
        "--orders-url",
        help="base URL of the shop's orders API (or ORCHESTRATOR_ORDERS_BASE_URL, or orders.base_url in the "
        "flow); without one, serve refuses to start unless --orders demo",
    )
    serve.add_argument(
        "--orders",
        choices=("demo",),
        help="demo: answer from the embedded demo orders (fixtures/orders.json), never real ones",
    )
    serve.add_argument("--transcripts-dir", type=Path, help="write each call's transcript here")
    serve.add_argument(
        "--shutdown-grace",
        type=float,
        metavar="SECONDS",
        help="on SIGTERM, how long live calls get to hear the goodbye and end (default 20)",
    )
    serve.add_argument("--log-format", choices=("json", "console"), default="json")
    serve.add_argument(
        "--console",
        action="store_true",
        help="also serve the calls console at /console (needs ORCHESTRATOR_CONSOLE_TOKEN)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="worker processes sharing the port (SO_REUSEPORT) and live calls (needs ORCHESTRATOR_REDIS_URL); "
        "default one per core with Redis, else 1. SIGHUP restarts them one at a time",
    )
    serve.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help="also serve GET /metrics alone on PORT (ORCHESTRATOR_METRICS_PORT); with --workers, worker k on "
        "PORT+k, so each worker is scraped as its own target",
    )
    serve.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        help="log threshold (default info; also ORCHESTRATOR_LOG_LEVEL)",
    )
    serve.set_defaults(run=_serve)

    flow = commands.add_parser("flow", help="check or draw a flow file")
    flow_commands = flow.add_subparsers(title="flow commands", metavar="ACTION")
    check = flow_commands.add_parser(
        "check",
        help="validate a flow; print a summary, or every error as path:line:col: message",
        description="Validate a flow file. Exit 0 and print a summary when valid; exit 1 and print every "
        "problem as path:line:col: message when not. With --schema, print the JSON Schema of the flow "
        "format instead (for editor completion).",
    )
    check.add_argument("path", type=Path, nargs="?")
    check.add_argument(
        "--schema", action="store_true", help="print the JSON Schema of the flow format and exit"
    )
    check.add_argument(
        "--handler",
        action="append",
        default=[],
        metavar="TOOL",
        help="a tool your application handles in code (add_routes(..., tools=...)); repeatable",
    )
    check.set_defaults(run=_flow_check)
    diagram = flow_commands.add_parser("diagram", help="print the flow as a Mermaid state diagram")
    diagram.add_argument("path", type=Path)
    diagram.add_argument(
        "--no-global",
        action="store_true",
        help="leave out the global routes every state shares (listed once in a note)",
    )
    diagram.set_defaults(run=_flow_diagram)

    test = commands.add_parser(
        "test",
        help="run the flow's scripted calls and compare each with its reviewed snapshot",
        description="Place each call script against the flow through the real service on a fast-forwarded "
        "clock, check its `expect:` steps, compare the call with its reviewed snapshot "
        "(__snapshots__/NAME.txt beside the script) and print every difference as a unified diff, then "
        "which states and routes the scripts exercised. Exit 1 on any difference or failure. "
        "See docs/call-scripts.md.",
    )
    test.add_argument(
        "scripts",
        nargs="*",
        type=Path,
        help="call scripts, or folders of them (default fixtures/calls/)",
    )
    test.add_argument(
        "--flow", type=Path, help="flow YAML (default ORCHESTRATOR_FLOW, else flows/order_status.yaml)"
    )
    test.add_argument(
        "--update",
        action="store_true",
        help="write the snapshots of the scripts run (only those; none is deleted) after a reviewed change",
    )
    test.add_argument("--no-coverage", action="store_true", help="leave out the coverage table")
    test.set_defaults(run=_test)

    demo = commands.add_parser(
        "demo",
        help="start the service and place simulated calls against it, offline; print live transcripts",
        description="Start the service on loopback with the embedded demo orders backend and place "
        "simulated Sautikit calls against it in real time (no API key, no network). Prints each call's "
        "transcript as it happens and writes a two-track WAV (caller left, agent right) and the transcript "
        "of each call to the output folder.",
    )
    demo.add_argument(
        "--scenario",
        choices=(*DEMO_SCENARIOS, "all"),
        default="all",
        help="which call to place (default: all)",
    )
    demo.add_argument(
        "--brain",
        choices=("offline", "scripted"),
        default="offline",
        help="offline (default): the caller speaks with a flite voice, the agent recognises it (read-out "
        "numbers with pocketsphinx's grammar and the rest with Whisper tiny.en when installed, else "
        "pocketsphinx alone; ORCHESTRATOR_ASR chooses), "
        "follows the flow's policy and answers with espeak-ng; scripted: replays the model's "
        "side from fixtures/calls/ with deterministic speech-like audio",
    )
    demo.add_argument("--out", type=Path, help="output folder (default demo-output/<time>)")
    demo.add_argument(
        "--console",
        action="store_true",
        help="after the calls, keep the service up with GET /metrics and the calls console (/console) "
        "until Ctrl-C",
    )
    demo.add_argument("--flow", type=Path, help="flow YAML to serve")
    demo.add_argument("--verbose", action="store_true", help="also print the service's JSON logs")
    demo.set_defaults(run=_demo)

    call = commands.add_parser(
        "call",
        help="place one simulated Sautikit call from a call script against a running service",
        description="Act as Sautikit and a caller: POST the voice webhook to a running service, follow its XML, "
        "open the media stream and speak the script's caller lines with a natural (flite) voice, so the offline "
        "brain understands them. Prints both sides as they happen: the caller's lines, the XML's Say, and when "
        "the agent speaks (its words are in the service's transcript: orchestrator history show CALL_ID).",
    )
    call.add_argument(
        "script", type=Path, help="call script, e.g. fixtures/calls/offline/track_by_number.yaml"
    )
    call.add_argument(
        "--url",
        default="http://127.0.0.1:8080",
        help="the service's base URL (default http://127.0.0.1:8080, where `orchestrator serve` listens)",
    )
    call.add_argument(
        "--voice-path", default="/voice", help="the voice webhook's path on the service (default /voice)"
    )
    call.add_argument(
        "--voice",
        choices=(*CALLER_VOICES, "synthetic"),
        default="kal16",
        help="the caller's voice: a flite voice (default kal16; needs flite), or synthetic speech-like "
        "audio (no words: only for scripted brains)",
    )
    call.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="PUBLIC=LOCAL",
        help="where a public URL in the service's XML really lives, like a hosts file, e.g. "
        "https://agent.example.com=http://127.0.0.1:8080 (repeatable); needed when the service advertises "
        "a --public-url this machine cannot reach",
    )
    call.add_argument(
        "--webhook-secret",
        default=os.environ.get("ORCHESTRATOR_WEBHOOK_SECRET") or os.environ.get("SAUTIKIT_WEBHOOK_SECRET"),
        help="sign webhooks like Sautikit (default: ORCHESTRATOR_WEBHOOK_SECRET or SAUTIKIT_WEBHOOK_SECRET)",
    )
    call.add_argument("--call-sid", help="the call's id (default: a fresh HD_...)")
    call.set_defaults(run=_call)

    add_operator_commands(commands)  # numbers ..., calls ...: Sautikit's REST API for operators
    add_history_commands(commands)  # history ...: the calls this service has handled
    add_brain_commands(commands)  # brain check ...: a realtime model against the real service
    add_console_command(commands)  # console: the calls console over a call store
    return parser


# --- flow ---------------------------------------------------------------------------------------


def _flow_check(args: argparse.Namespace) -> int:
    if args.schema:
        print(flow_json_schema(), end="")
        return 0
    if args.path is None:
        print("orchestrator flow check: give a flow file (or --schema)", file=sys.stderr)
        return 2
    flow = load_flow(args.path, handlers=args.handler)
    print(f"{args.path}: ok")
    print(summarize(flow))
    return 0


def _flow_diagram(args: argparse.Namespace) -> int:
    print(to_mermaid(load_flow(args.path), include_global=not args.no_global))
    return 0


def _test(args: argparse.Namespace) -> int:
    configure_logging(json=False, level=logging.ERROR)  # the calls' own logs would drown the report
    flow = args.flow or Settings().flow
    scripts = args.scripts or [Path("fixtures") / "calls"]
    return run_flow_tests(
        flow, scripts, update=args.update, coverage=not args.no_coverage, out=sys.stdout
    )


# --- serve --------------------------------------------------------------------------------------


def _settings_from(args: argparse.Namespace) -> Settings:
    overrides = {
        key: value
        for key, value in {
            "host": getattr(args, "host", None),
            "port": getattr(args, "port", None),
            "public_url": getattr(args, "public_url", None),
            "flow": getattr(args, "flow", None),
            "script": getattr(args, "script", None),
            "brain": getattr(args, "brain", None),
            "orders_base_url": getattr(args, "orders_url", None),
            "orders": getattr(args, "orders", None),
            "transcripts_dir": getattr(args, "transcripts_dir", None),
            "shutdown_grace_s": getattr(args, "shutdown_grace", None),
            "log_level": getattr(args, "log_level", None),
            "workers": getattr(args, "workers", None),
            "metrics_port": getattr(args, "metrics_port", None),
        }.items()
        if value is not None
    }
    settings = Settings(**overrides)
    env_fallbacks = {
        "webhook_secret": "SAUTIKIT_WEBHOOK_SECRET",
        "orders_token": "ORDERS_API_TOKEN",
        "sautikit_api_key": "SAUTIKIT_API_KEY",
    }
    for field_name, variable in env_fallbacks.items():
        if getattr(settings, field_name) is None and os.environ.get(variable):
            settings = settings.model_copy(update={field_name: os.environ[variable]})
    return settings


def _serve(args: argparse.Namespace) -> int:
    settings = _settings_from(args)
    if settings.calls_db is None:
        settings = settings.model_copy(update={"calls_db": calls_db()})
    configure_logging(
        json=args.log_format == "json", level=logging.getLevelNamesMapping()[settings.log_level.upper()]
    )
    supervised = WORKER_INDEX_VARIABLE in os.environ
    workers = settings.workers or ((os.cpu_count() or 1) if settings.redis_url else 1)
    if workers > 1 and not supervised:
        if not settings.redis_url:
            print(
                f"orchestrator: --workers {workers} needs ORCHESTRATOR_REDIS_URL: workers share live "
                "calls through Redis (without it, a call's socket landing on another worker is refused)",
                file=sys.stderr,
            )
            return 2
        return asyncio.run(_supervise(settings, workers, args.argv))
    flow = load_flow(settings.flow, handlers=())  # a served flow's tools are built-in or http: actions
    app = create_app(settings, brain_factory=make_brain_factory(settings, flow), flow=flow)
    if args.console:
        add_console(app, token=console_token(settings))
    app.cleanup_ctx.append(gc_policy(freeze=settings.gc_freeze))
    if supervised:
        app.cleanup_ctx.append(leave_with_the_supervisor)
    banner = (
        f"orchestrator: serving flow {flow.name} with the {settings.brain} brain on "
        f"http://{settings.host}:{settings.port} — point Sautikit at {settings.public_url}{settings.routes.voice}"
    )
    if not args.public_url and not os.environ.get("ORCHESTRATOR_PUBLIC_URL"):
        banner += " (reachable from this machine only: pass --public-url with the https URL Sautikit can reach)"
    if not settings.webhook_secret:
        print(
            "orchestrator: WARNING: no webhook secret — anyone who reaches the voice URL can start calls "
            "and end live ones; set ORCHESTRATOR_WEBHOOK_SECRET",
            file=sys.stderr,
        )
    try:
        asyncio.run(
            run_service(
                app,
                host=settings.host,
                port=settings.port,
                grace_s=settings.shutdown_grace_s,
                on_started=lambda: _started(banner),
                reuse_port=supervised,
                metrics_port=_metrics_port(settings),
            )
        )
    except CallStoreError as exc:  # the calls database cannot be opened: a wrong path, host or password
        print(f"orchestrator: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the port is taken, or the host is not an address of this machine
        reason = exc.strerror or str(exc)
        print(f"orchestrator: cannot listen on {settings.host}:{settings.port}: {reason}", file=sys.stderr)
        return 1
    return 0


def _metrics_port(settings: Settings) -> int | None:
    """This worker's own metrics port: --metrics-port plus its slot under `--workers` (0 when alone)."""
    if settings.metrics_port is None:
        return None
    return settings.metrics_port + int(os.environ.get(WORKER_INDEX_VARIABLE, "0"))


def _started(banner: str) -> None:
    print(banner, file=sys.stderr, flush=True)
    announce_ready()


async def _supervise(settings: Settings, workers: int, argv: Sequence[str]) -> int:
    """`serve --workers N`: N workers as child processes, each a `serve` with the same arguments."""
    port = settings.port or _free_port(settings.host)  # one port for all: 0 would give each its own
    env = {
        **os.environ,
        "ORCHESTRATOR_PORT": str(port),
        "ORCHESTRATOR_PUBLIC_URL": settings.public_url if settings.port else "",
        "ORCHESTRATOR_CALLS_DB": str(settings.calls_db),
        # One stream secret for all: a token minted by one worker opens the socket on any.
        "ORCHESTRATOR_STREAM_SECRET": settings.stream_secret,
    }
    if not env["ORCHESTRATOR_PUBLIC_URL"]:
        del env["ORCHESTRATOR_PUBLIC_URL"]
    print(
        f"orchestrator: {workers} workers on http://{settings.host}:{port} sharing calls through Redis "
        f"(SIGTERM drains them, SIGHUP restarts them one at a time)"
        + (
            f"; worker k's GET /metrics on port {settings.metrics_port}+k"
            if settings.metrics_port is not None
            else "; set --metrics-port to scrape each worker on its own port"
        ),
        file=sys.stderr,
        flush=True,
    )
    supervisor = Supervisor(
        workers=workers,
        command=[*worker_command(), *argv],
        env=env,
        slot_env=lambda slot: _worker_journal(settings, slot),
        drain_timeout_s=settings.shutdown_grace_s + 10.0,
    )
    return await supervisor.run()


def _worker_journal(settings: Settings, slot: int) -> dict[str, str]:
    """Each worker its own journal of refused records: two processes must not replay and clear one file."""
    base = settings.records_journal or default_journal(settings.calls_db)
    return {} if base is None else {"ORCHESTRATOR_RECORDS_JOURNAL": f"{base}.{slot}"}


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


# --- demo and call ------------------------------------------------------------------------------


_RECOGNISERS = {
    "hybrid": "pocketsphinx's grammar hears order numbers read out and Whisper tiny.en everything else "
    "(ORCHESTRATOR_ASR=grammar for pocketsphinx alone, lighter)",
    "whisper": "Whisper tiny.en hears the caller (ORCHESTRATOR_ASR=grammar for the lighter pocketsphinx)",
    "grammar": "pocketsphinx hears the caller through the flow's grammar (pip install "
    "'sautikit-orchestrator[whisper]' for Whisper tiny.en)",
    "openai": "an OpenAI-compatible transcription endpoint hears the caller (ORCHESTRATOR_ASR_URL)",
}


def _demo(args: argparse.Namespace) -> int:
    return asyncio.run(_run_demo(args))


async def _run_demo(args: argparse.Namespace) -> int:
    configure_logging(json=True, level=logging.INFO if args.verbose else logging.WARNING)
    out = args.out or ROOT / "demo-output" / datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    names = list(DEMO_SCENARIOS) if args.scenario == "all" else [args.scenario]
    failures = 0
    # One service for every call: its metrics add up, and its call store and recordings stay in `out`.
    settings = Settings(
        port=0,
        orders="demo",
        calls_db=str(out / "calls.sqlite3"),
        recordings_dir=out / "recordings",
        **({"flow": args.flow} if args.flow else {}),
    )
    flow = load_flow(settings.flow)
    offline = getattr(args, "brain", "offline") == "offline"
    if offline and not _offline_speech_available():
        print(
            "orchestrator: flite and espeak-ng are not installed (apt-get install flite espeak-ng): "
            "falling back to the scripted demo",
            file=sys.stderr,
        )
        offline = False
    offline_brains = None
    if offline:
        speech = speech_choice(settings)
        print(f"Offline brain: {_RECOGNISERS[chosen_asr(speech)]}; the agent speaks with espeak-ng.")
        offline_brains = make_offline_brain_factory(flow, speech)
    scripts: dict[str, CallScript] = {}

    def brain_factory(start: CallStart) -> Brain:
        if offline_brains is not None:
            return offline_brains(start)
        return ScriptedBrain(scripts[start.call_sid])

    console = getattr(args, "console", False)
    token = (settings.console_token or secrets.token_urlsafe(18)) if console else ""
    prepare = (lambda app: add_console(app, token=token)) if console else None
    async with serve_line(
        flow=flow, settings=settings, brain_factory=brain_factory, prepare=prepare
    ) as line:
        line.orchestrator.on_call_started.append(_print_live)
        for index, name in enumerate(names, start=1):
            offline_script, voice, scripted_script = DEMO_SCENARIOS[name]
            script = load_script(offline_script if offline else scripted_script)
            call_sid = f"HD_demo{index:04d}"
            scripts[call_sid] = script
            print(f"\n=== call {index}/{len(names)}: {name} — {script.title}", flush=True)
            options = SimulatorOptions(voice=caller_voice(voice)) if offline else SimulatorOptions()
            record = await line.call(
                script, call_sid=call_sid, simulator=options, call_timeout_s=60
            )
            _save_call(out, name, record)
            print(f"--- outcome: {record.transcript.outcome}", flush=True)
            failures += record.transcript.outcome in ("failed", "unfinished")
        print(f"\nTranscripts and two-track WAVs (caller left, agent right) are in {out}/")
        print(
            f"Browse them: ORCHESTRATOR_CONSOLE_TOKEN=... orchestrator console --db {out}/calls.sqlite3 "
            f"--recordings-dir {out}/recordings"
        )
        if console:
            print(
                f"\nMetrics:  curl {line.url}{settings.routes.metrics}\n"
                f"Console:  {line.url}/console/  (token: {token})\n"
                "Serving until Ctrl-C.",
                flush=True,
            )
            await asyncio.Event().wait()
    return 1 if failures else 0


def _offline_speech_available() -> bool:
    return shutil.which("flite") is not None and shutil.which("espeak-ng") is not None


def _print_live(session: CallSession) -> None:
    for entry in session.transcript.entries:
        _print_entry(entry)
    session.transcript.listeners.append(_print_entry)


def _print_entry(entry: Entry) -> None:
    if entry.kind == "xml":
        text = entry.text.removeprefix('<?xml version="1.0" encoding="UTF-8"?>')
        print(f"  {Entry(at_ms=entry.at_ms, kind='xml', text=text).render()}", flush=True)
    else:
        print(f"  {entry.render()}", flush=True)


def _save_call(out: Path, name: str, record: CallRecord) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.txt").write_text(record.render(), encoding="utf-8")
    (out / f"{name}.json").write_text(record.transcript.to_json(), encoding="utf-8")
    stereo = interleave(bytes(record.platform.caller_track), bytes(record.platform.agent_track))
    write_wav(out / f"{name}.wav", stereo, record.platform_rate, channels=2)


def _call(args: argparse.Namespace) -> int:
    script = load_script(args.script)
    hosts = dict(_host_mapping(item) for item in args.host)
    voice = None
    if args.voice != "synthetic":
        if shutil.which("flite") is None:
            raise ConfigError(
                "flite is not installed (apt-get install flite); or pass --voice synthetic for a scripted brain"
            )
        voice = caller_voice(args.voice)
    options = SimulatorOptions(
        voice_path=args.voice_path, hosts=hosts, webhook_secret=args.webhook_secret, voice=voice
    )

    async def place() -> SimulatedCall:
        sim = FakeSautikit(args.url, options=options, on_line=lambda line: print(line, flush=True))
        return await sim.call(script, call_sid=args.call_sid)

    try:
        platform = asyncio.run(place())
    except aiohttp.ClientConnectorError as exc:
        errno = exc.os_error.errno
        reason = os.strerror(errno).lower() if errno else str(exc.os_error)
        print(f"orchestrator: cannot reach the service at {args.url}: {reason}", file=sys.stderr)
        return 1
    except aiohttp.ClientError as exc:
        print(f"orchestrator: the call to {args.url} failed: {exc}", file=sys.stderr)
        return 1
    print(f"ended by {platform.ended_by or '-'}; dialed {platform.dialed or '-'}; call {platform.call_sid}")
    refused = next((line for line in platform.log if "webhook answered HTTP" in line), None)
    if refused is not None:
        where = f"{args.url.rstrip('/')}{args.voice_path}"
        print(f"orchestrator: {where} refused the call: {refused.split('] ', 1)[-1]}", file=sys.stderr)
        return 1
    return 0


def _host_mapping(item: str) -> tuple[str, str]:
    public, sep, local = item.partition("=")
    if not sep or not public.startswith(("http://", "https://")) or not local.startswith(("http://", "https://")):
        raise ConfigError(f"--host {item!r}: expected PUBLIC=LOCAL, e.g. https://agent.example.com=http://127.0.0.1:8080")
    return public.rstrip("/"), local.rstrip("/")


if __name__ == "__main__":
    sys.exit(main())
