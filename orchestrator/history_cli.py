"""Finished calls from the local call store: `orchestrator history ...`.

    orchestrator history list [--limit 20] [--outcome escalated] [--json] [--db calls.sqlite3]
    orchestrator history show CALL_SID [--json] [--db calls.sqlite3]
    orchestrator history summary [--json] [--db calls.sqlite3]

The database is `--db`, else $ORCHESTRATOR_CALLS_DB, else `calls.sqlite3` in the current directory.
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

from orchestrator.call.store import CallStoreError, SqliteCallStore, StoredCall
from orchestrator.cli_output import add_leaf, format_money, format_table, or_dash, print_json

__all__ = ["DEFAULT_CALLS_DB", "add_history_commands", "calls_db_path"]

DEFAULT_CALLS_DB = "calls.sqlite3"
_ENV = "ORCHESTRATOR_CALLS_DB"

_Action = Callable[[SqliteCallStore, argparse.Namespace], Awaitable[int]]

_ENV_HELP = f"""\
environment variables (flags win over them):
  {_ENV}     the call store to read (default ./{DEFAULT_CALLS_DB})
"""


def calls_db_path(flag: str | Path | None = None) -> Path:
    """The call store's file: the flag, else $ORCHESTRATOR_CALLS_DB, else ./calls.sqlite3."""
    return Path(flag or os.environ.get(_ENV) or DEFAULT_CALLS_DB)


def add_history_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the `history` command group (list, show, summary) on the CLI's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", help="print JSON for scripts, not a table")
    common.add_argument(
        "--db", type=Path, help=f"the call store (default ${_ENV} or ./{DEFAULT_CALLS_DB})"
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
        path = calls_db_path(args.db)
        if not path.is_file():
            print(
                f"orchestrator: no call store at {path} (set --db or ${_ENV}; "
                "`orchestrator serve` creates it when the first call ends)",
                file=sys.stderr,
            )
            return 1
        try:
            return asyncio.run(_call(path, action, args))
        except CallStoreError as exc:
            print(f"orchestrator: {exc}", file=sys.stderr)
            return 1

    return run


async def _call(path: Path, action: _Action, args: argparse.Namespace) -> int:
    store = SqliteCallStore(path)
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


async def _list(store: SqliteCallStore, args: argparse.Namespace) -> int:
    calls = await store.recent(limit=args.limit, outcome=args.outcome)
    if args.json:
        print_json([_summary_json(call) for call in calls])
    elif not calls:
        which = f" with outcome {args.outcome}" if args.outcome else ""
        print(f"no calls{which} in {store.path}")
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


async def _show(store: SqliteCallStore, args: argparse.Namespace) -> int:
    call = await store.get(args.call_sid)
    if call is None:
        print(f"orchestrator: no call {args.call_sid} in {store.path}", file=sys.stderr)
        return 1
    if args.json:
        fields = _summary_json(call)
        fields["transcript"] = json.loads(call.transcript_json)
        print_json(fields)
    else:
        print(call.transcript_text, end="" if call.transcript_text.endswith("\n") else "\n")
    return 0


async def _summary(store: SqliteCallStore, args: argparse.Namespace) -> int:
    counts = await store.summary()
    if args.json:
        print_json(counts)
    elif not counts:
        print(f"no calls in {store.path}")
    else:
        rows = [[outcome, str(count)] for outcome, count in counts.items()]
        rows.append(["total", str(sum(counts.values()))])
        print(format_table(("OUTCOME", "CALLS"), rows))
    return 0
