"""Finished calls from the local call store: `orchestrator history ...`.

    orchestrator history list [--limit 20] [--outcome escalated] [--json] [--db calls.sqlite3]
    orchestrator history show CALL_SID [--json] [--db postgresql://orchestrator@db.internal/calls]
    orchestrator history summary [--json] [--db calls.sqlite3]

The store is `--db`, else $ORCHESTRATOR_CALLS_DB, else `calls.sqlite3` in the current directory: a
SQLite file, or the PostgreSQL URL every host writes to.
Human tables by default, `--json` for scripts. Callers' numbers were masked when the calls were
stored. A missing or unreadable database is one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path

from orchestrator.call.store import (
    CallStore,
    CallStoreError,
    StoredCall,
    describe_store,
    open_call_store,
    sqlite_path,
)
from orchestrator.cli_output import add_leaf, format_money, format_table, or_dash, print_json

__all__ = ["DEFAULT_CALLS_DB", "add_history_commands", "calls_db", "missing_store"]

DEFAULT_CALLS_DB = "calls.sqlite3"
_ENV = "ORCHESTRATOR_CALLS_DB"

_Action = Callable[[CallStore, argparse.Namespace], Awaitable[int]]

_ENV_HELP = f"""\
environment variables (flags win over them):
  {_ENV}     the call store to read: a SQLite file (default ./{DEFAULT_CALLS_DB}) or a
                            postgresql:// URL
"""


def calls_db(flag: str | Path | None = None) -> str:
    """The call store: the flag, else $ORCHESTRATOR_CALLS_DB, else ./calls.sqlite3 (a path or a URL)."""
    return str(flag or os.environ.get(_ENV) or DEFAULT_CALLS_DB)


def missing_store(db: str) -> Path | None:
    """The SQLite file `db` names when it does not exist (nothing to read); None when there is a store."""
    path = sqlite_path(db)
    return path if path is not None and not path.is_file() else None


def add_history_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the `history` command group (list, show, summary) on the CLI's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON for scripts, not a table")
    common.add_argument(
        "--db",
        help=f"the call store: a SQLite file or a postgresql:// URL (default ${_ENV} or ./{DEFAULT_CALLS_DB})",
    )

    def leaf(
        group: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_: str
    ) -> argparse.ArgumentParser:
        return add_leaf(group, name, help_, common=common, epilog=_ENV_HELP)

    history = subparsers.add_parser(
        "history",
        help="read finished calls: transcripts, outcomes, durations",
        description="Read the finished calls this service stored.",
        epilog=_ENV_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = history.add_subparsers(title="history commands", metavar="ACTION")

    listing = leaf(actions, "list", "list finished calls, newest first")
    listing.add_argument("--limit", type=int, default=20, help="how many calls (default 20)")
    listing.add_argument(
        "--outcome", help="only calls with this outcome (resolved, escalated, abandoned, failed)"
    )
    listing.set_defaults(run=_runner(_list))

    show = leaf(actions, "show", "print one call's transcript")
    show.add_argument("call_sid", help="the CALL SID column of `history list`")
    show.set_defaults(run=_runner(_show))

    summary = leaf(actions, "summary", "count calls by outcome")
    summary.set_defaults(run=_runner(_summary))


# --- running a command --------------------------------------------------------------------------


def _runner(action: _Action) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        db = calls_db(args.db)
        if (missing := missing_store(db)) is not None:
            print(
                f"orchestrator: no call store at {missing} (set --db or ${_ENV}; "
                "`orchestrator serve` creates it when the first call ends)",
                file=sys.stderr,
            )
            return 1
        try:
            return asyncio.run(_call(db, action, args))
        except CallStoreError as exc:
            print(f"orchestrator: {exc}", file=sys.stderr)
            return 1

    return run


async def _call(db: str, action: _Action, args: argparse.Namespace) -> int:
    store = await open_call_store(db)
    args.store_name = describe_store(db)  # for messages: a PostgreSQL URL with its password starred
    try:
        return await action(store, args)
    finally:
        await store.close()


def _summary_json(call: StoredCall) -> dict[str, object]:
    """A call without its transcript: what `list --json` prints for each call."""
    fields = asdict(call)
    del fields["transcript_text"], fields["transcript_json"]
    return fields


# --- the commands -------------------------------------------------------------------------------


async def _list(store: CallStore, args: argparse.Namespace) -> int:
    calls = await store.recent(limit=args.limit, outcome=args.outcome)
    if args.json:
        print_json([_summary_json(call) for call in calls])
    elif not calls:
        which = f" with outcome {args.outcome}" if args.outcome else ""
        print(f"no calls{which} in {args.store_name}")
    else:
        rows = [
            [
                call.call_sid,
                call.started_at.replace("T", " ")[:19],
                or_dash(call.caller_masked),
                call.outcome,
                call.final_state,
                f"{call.duration_s:.1f}s",
                str(call.turns),
                str(call.barge_ins),
                or_dash(call.escalation),
                format_money(call.platform_cost_minor, call.platform_currency),
            ]
            for call in calls
        ]
        headers = (
            "CALL SID", "STARTED (UTC)", "CALLER", "OUTCOME", "STATE",
            "DURATION", "TURNS", "BARGE-INS", "ESCALATION", "COST",
        )  # fmt: skip
        print(format_table(headers, rows))
    return 0


async def _show(store: CallStore, args: argparse.Namespace) -> int:
    call = await store.get(args.call_sid)
    if call is None:
        print(f"orchestrator: no call {args.call_sid} in {args.store_name}", file=sys.stderr)
        return 1
    if args.json:
        fields = _summary_json(call)
        fields["transcript"] = json.loads(call.transcript_json)
        print_json(fields)
    else:
        print(call.transcript_text, end="" if call.transcript_text.endswith("\n") else "\n")
    return 0


async def _summary(store: CallStore, args: argparse.Namespace) -> int:
    counts = await store.summary()
    if args.json:
        print_json(counts)
    elif not counts:
        print(f"no calls in {args.store_name}")
    else:
        rows = [[outcome, str(count)] for outcome, count in counts.items()]
        rows.append(["total", str(sum(counts.values()))])
        print(format_table(("OUTCOME", "CALLS"), rows))
    return 0
