"""`orchestrator history ...` against a SQLite call store in a temporary folder.

Each command calls `asyncio.run` itself, as it does from a terminal, so these tests are plain
functions; the store is filled the same way the service fills it.
"""

import argparse
import asyncio
import json
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.call.store import SqliteCallStore, StoredCall
from orchestrator.history_cli import add_history_commands

TRANSCRIPT = (
    "[00:00.001] call      HD_a from +2547*****678 to +2547*****000 flow order_status\n"
    '[00:09.155] caller    "Hi, is my order out for delivery?"\n'
    "[00:22.865] outcome   resolved (final state ended)\n"
)


def run(*argv: str) -> int:
    """Parse and run one command the way `orchestrator` does."""
    parser = argparse.ArgumentParser(prog="orchestrator")
    add_history_commands(parser.add_subparsers())
    args = parser.parse_args(argv)
    return int(args.run(args))


def stored_call(call_sid: str, **changes: object) -> StoredCall:
    call = StoredCall(
        call_sid=call_sid,
        caller_masked="+2547*****678",
        flow="order_status",
        outcome="resolved",
        final_state="ended",
        started_at="2026-03-04T09:00:00.000+00:00",
        duration_s=22.88,
        turns=2,
        barge_ins=0,
        escalation=None,
        platform_status="completed",
        platform_cost_minor=150,
        platform_currency="KES",
        transcript_text=TRANSCRIPT.replace("HD_a", call_sid),
        transcript_json=json.dumps({"call_sid": call_sid, "outcome": "resolved", "entries": []}),
    )
    return replace(call, **changes)


def fill(path: Path, *calls: StoredCall) -> Path:
    async def save() -> None:
        store = SqliteCallStore(path)
        try:
            await store.open()
            for call in calls:
                await store.save(call)
        finally:
            await store.close()

    asyncio.run(save())
    return path


@pytest.fixture
def db(tmp_path, monkeypatch) -> Path:
    """A call store with three calls; the environment names no other database."""
    monkeypatch.delenv("ORCHESTRATOR_CALLS_DB", raising=False)
    return fill(
        tmp_path / "calls.sqlite3",
        stored_call("HD_a", started_at="2026-03-04T09:00:00.000+00:00"),
        stored_call(
            "HD_b",
            started_at="2026-03-04T09:05:00.000+00:00",
            outcome="escalated",
            final_state="escalating",
            escalation="dialled",
            duration_s=41.5,
            turns=3,
            barge_ins=1,
        ),
        stored_call(
            "HD_c",
            started_at="2026-03-04T09:10:30.250+00:00",
            caller_masked=None,
            outcome="abandoned",
            final_state="ended",
            duration_s=3.0,
            turns=0,
            platform_status=None,
            platform_cost_minor=None,
            platform_currency=None,
        ),
    )


# --- list ---------------------------------------------------------------------------------------


def test_history_list_prints_an_aligned_table_newest_first(db, capsys):
    """`history list` is a table of calls, newest first, with dashes for what is unknown."""
    assert run("history", "list", "--db", str(db)) == 0
    assert capsys.readouterr().out.splitlines() == [
        "CALL SID  STARTED (UTC)        CALLER         OUTCOME    STATE       DURATION  TURNS"
        "  BARGE-INS  ESCALATION  COST",
        "HD_c      2026-03-04 09:10:30  -              abandoned  ended       3.0s      0"
        "      0          -           -",
        "HD_b      2026-03-04 09:05:00  +2547*****678  escalated  escalating  41.5s     3"
        "      1          dialled     KES 1.50",
        "HD_a      2026-03-04 09:00:00  +2547*****678  resolved   ended       22.9s     2"
        "      0          -           KES 1.50",
    ]


def test_history_list_filters_by_outcome_and_limit(db, capsys):
    """--outcome keeps one kind of call, --limit caps how many are printed."""
    assert run("history", "list", "--db", str(db), "--outcome", "escalated") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["HD_b"]
    assert run("history", "list", "--db", str(db), "--limit", "2") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["HD_c", "HD_b"]


def test_history_list_with_no_matching_calls_says_so(db, capsys):
    """An outcome nobody had is a sentence, not an empty table."""
    assert run("history", "list", "--db", str(db), "--outcome", "failed") == 0
    assert capsys.readouterr().out == f"no calls with outcome failed in {db}\n"


def test_history_list_json_is_for_scripts_and_leaves_out_transcripts(db, capsys):
    """With --json each call is an object of its fields, without the transcript bodies."""
    assert run("history", "list", "--db", str(db), "--json") == 0
    calls = json.loads(capsys.readouterr().out)
    assert [c["call_sid"] for c in calls] == ["HD_c", "HD_b", "HD_a"]
    assert calls[1]["escalation"] == "dialled"
    assert calls[0]["caller_masked"] is None
    assert "transcript_text" not in calls[0]
    assert "transcript_json" not in calls[0]


def test_history_list_reads_the_database_named_in_the_environment(db, capsys, monkeypatch):
    """Without --db, $ORCHESTRATOR_CALLS_DB names the store."""
    monkeypatch.setenv("ORCHESTRATOR_CALLS_DB", str(db))
    assert run("history", "list", "--limit", "1") == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("HD_c ")


def test_history_list_defaults_to_calls_sqlite3_in_the_current_folder(db, capsys, monkeypatch):
    """With neither flag nor environment, ./calls.sqlite3 is read."""
    monkeypatch.chdir(db.parent)
    assert run("history", "list", "--json") == 0
    assert len(json.loads(capsys.readouterr().out)) == 3


# --- show ---------------------------------------------------------------------------------------


def test_history_show_prints_the_transcript(db, capsys):
    """`history show CALL_SID` prints the call's transcript exactly as stored."""
    assert run("history", "show", "HD_b", "--db", str(db)) == 0
    assert capsys.readouterr().out == TRANSCRIPT.replace("HD_a", "HD_b")


def test_history_show_json_has_the_fields_and_the_structured_transcript(db, capsys):
    """With --json, the call's fields plus its transcript as an object."""
    assert run("history", "show", "HD_a", "--db", str(db), "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["outcome"] == "resolved"
    assert shown["platform_cost_minor"] == 150
    assert shown["transcript"] == {"call_sid": "HD_a", "outcome": "resolved", "entries": []}


def test_history_show_unknown_call_is_one_error_line(db, capsys):
    """A call_sid not in the store is one stderr line and exit status 1."""
    assert run("history", "show", "HD_nobody", "--db", str(db)) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"orchestrator: no call HD_nobody in {db}\n"


# --- summary ------------------------------------------------------------------------------------


def test_history_summary_counts_calls_by_outcome_with_a_total(db, capsys):
    """`history summary` is a table of outcomes and their counts, then the total."""
    assert run("history", "summary", "--db", str(db)) == 0
    assert capsys.readouterr().out.splitlines() == [
        "OUTCOME    CALLS",
        "abandoned  1",
        "escalated  1",
        "resolved   1",
        "total      3",
    ]


def test_history_summary_json(db, capsys):
    """With --json the summary is an object of outcome to count."""
    assert run("history", "summary", "--db", str(db), "--json") == 0
    assert json.loads(capsys.readouterr().out) == {"abandoned": 1, "escalated": 1, "resolved": 1}


def test_history_summary_of_an_empty_store_says_so(tmp_path, capsys):
    """A store with no calls yet is a sentence, not an empty table."""
    empty = fill(tmp_path / "empty.sqlite3")
    assert run("history", "summary", "--db", str(empty)) == 0
    assert capsys.readouterr().out == f"no calls in {empty}\n"


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [("list",), ("show", "HD_a"), ("summary",)])
def test_history_missing_database_is_a_clear_message(command, tmp_path, capsys):
    """A missing database is named on stderr with how to set one, exit 1, and no file made."""
    missing = tmp_path / "nowhere.sqlite3"
    assert run("history", *command, "--db", str(missing)) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"orchestrator: no call store at {missing} (set --db or ")
    assert not missing.exists()


def test_history_a_file_that_is_not_a_database_is_one_error_line(tmp_path, capsys):
    """A file that isn't SQLite is reported in one line, exit 1, with no traceback."""
    bogus = tmp_path / "calls.sqlite3"
    bogus.write_text("just notes, not a database\n" * 20)
    assert run("history", "summary", "--db", str(bogus)) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith(f"orchestrator: call store {bogus}: ")


def test_history_help_lists_every_action(capsys):
    """`orchestrator history --help` names list, show and summary."""
    with pytest.raises(SystemExit) as exit_info:
        run("history", "--help")
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert [action for action in ("list", "show", "summary") if action not in out] == []
