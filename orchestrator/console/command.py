"""`orchestrator console --db calls.sqlite3` (or a postgresql:// URL): the calls console alone, over a call
store (no live view)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from aiohttp import web

from orchestrator.console import MOUNT, standalone_console
from orchestrator.errors import ConfigError
from orchestrator.flow import load_flow
from orchestrator.call.store import describe_store
from orchestrator.history_cli import calls_db, missing_store
from orchestrator.logging import configure_logging
from orchestrator.settings import DEFAULT_FLOW, Settings

__all__ = ["add_console_command", "console_token"]

TOKEN_VARIABLE = "ORCHESTRATOR_CONSOLE_TOKEN"  # noqa: S105 - the variable's name, not a token


def console_token(settings: Settings) -> str:
    """The console's token; without one the console does not start (it shows callers' conversations)."""
    if not settings.console_token:
        raise ConfigError(
            f"the console needs a token: set {TOKEN_VARIABLE} (e.g. to `openssl rand -hex 24`)"
        )
    return settings.console_token


def add_console_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    console = commands.add_parser(
        "console",
        help="serve the calls console over a call store (transcripts, recordings, flow paths)",
        description=(
            f"Serve {MOUNT} over the call store, behind {TOKEN_VARIABLE}. For live calls as well, "
            "run `orchestrator serve --console` instead."
        ),
    )
    console.add_argument(
        "--db",
        help="the call store: a SQLite file or a postgresql:// URL (default $ORCHESTRATOR_CALLS_DB or "
        "./calls.sqlite3)",
    )
    console.add_argument(
        "--flow", type=Path, help=f"the flow the calls ran, for its diagram (default {DEFAULT_FLOW.name})"
    )
    console.add_argument(
        "--recordings-dir", type=Path, help="where recordings are kept (default $ORCHESTRATOR_RECORDINGS_DIR)"
    )
    console.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    console.add_argument("--port", type=int, default=8081, help="port to listen on (default 8081)")
    console.set_defaults(run=_console)


def _console(args: argparse.Namespace) -> int:
    settings = Settings()
    token = console_token(settings)
    db = calls_db(args.db)
    if (missing := missing_store(db)) is not None:
        raise ConfigError(f"no call store at {missing} (run `orchestrator serve` first, or pass --db)")
    flow = load_flow(args.flow or settings.flow)
    recordings = args.recordings_dir or settings.recordings_dir
    host = args.host or os.environ.get("ORCHESTRATOR_HOST") or "127.0.0.1"
    configure_logging(json=False)
    app = standalone_console(db, token=token, flow=flow, recordings_dir=recordings)
    where = describe_store(db)
    print(f"orchestrator: calls console on http://{host}:{args.port}{MOUNT}/ over {where}", file=sys.stderr)
    web.run_app(app, host=host, port=args.port, print=None, access_log=None)
    return 0
