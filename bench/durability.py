"""Durability benchmark: no call's record is lost, whatever stops the service. Prints one JSON object.

Each scenario runs `orchestrator serve` as a real process (scripted brain, the shipped flow, a
SQLite calls database in a temporary folder) and places simulated Sautikit calls at it over real
sockets, with a fake Sautikit REST API for hang-ups and call records:

  sigterm      N live calls, then SIGTERM: every caller hears the flow's goodbye, is hung up through
               REST, every record is written, and the process exits within its grace.
  sigkill      N live calls, then SIGKILL: the records say `live`; after a restart they say `interrupted`.
  db_locked    another process holds the database's write lock for LOCK_S seconds while N calls run:
               /healthz says degraded, records wait in the journal, all reach the database once free.
  disk_full    the process's file-size limit drops to 1 byte (RLIMIT_FSIZE, as a full disk) while N calls
               run; records wait in memory; once the limit is lifted, all reach the database.

    python bench/durability.py [--calls 20] [--lock-s 10] [--calls-db postgresql://...]

`--calls-db` runs sigterm and sigkill against that store instead (a PostgreSQL URL: every host's store);
db_locked and disk_full are SQLite's own failures and always use a file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import socket
import sqlite3
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from orchestrator.app import serve_on_loopback
from orchestrator.call.store import open_call_store, sqlite_path
from orchestrator.script import load_script
from orchestrator.simulator import FakeSautikit, SimulatorOptions
from orchestrator.simulator.rest_api import DEFAULT_API_KEY, FakeSautikitState, sautikit_rest_app

ROOT = Path(__file__).resolve().parents[1]
FLOW = ROOT / "flows" / "order_status.yaml"
LONG_CALL = ROOT / "fixtures" / "calls" / "returning_caller_by_phone.yaml"
SHORT_CALL = ROOT / "fixtures" / "calls" / "hangup_mid_narration.yaml"
GOODBYE = "our line must restart now"


@dataclass(slots=True)
class Service:
    """One `orchestrator serve` process and where it keeps its calls."""

    process: asyncio.subprocess.Process
    url: str
    db: str  # the calls store: a SQLite file or a PostgreSQL URL

    async def health(self) -> dict[str, object]:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(f"{self.url}/healthz")
        return dict(response.json())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.asynccontextmanager
async def serve(
    workdir: Path,
    rest_url: str,
    *,
    script: Path,
    extra_env: dict[str, str] | None = None,
    keep_log: bool = True,
    calls_db: str | None = None,
) -> AsyncIterator[Service]:
    """Start `orchestrator serve` as users do and wait until /healthz answers; kill it if still alive after.

    Calls are kept in `calls_db`, else in calls.sqlite3 in `workdir`."""
    port = _free_port()
    db = calls_db or str(workdir / "calls.sqlite3")
    env = {
        **os.environ,
        "ORCHESTRATOR_PORT": str(port),
        "ORCHESTRATOR_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "ORCHESTRATOR_FLOW": str(FLOW),
        "ORCHESTRATOR_BRAIN": "scripted",
        "ORCHESTRATOR_SCRIPT": str(script),
        "ORCHESTRATOR_CALLS_DB": db,
        "ORCHESTRATOR_SAUTIKIT_API_KEY": DEFAULT_API_KEY,
        "ORCHESTRATOR_SAUTIKIT_BASE_URL": rest_url,
        "ORCHESTRATOR_FALLBACK_VOICE": "synthetic",
        "ORCHESTRATOR_ORDERS": "demo",  # the embedded demo orders, on purpose
        **(extra_env or {}),
    }
    # The service's JSON log lines are kept for a look, unless its files are about to be limited.
    log_path = workdir / "serve.log" if keep_log else Path(os.devnull)
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "orchestrator.cli", "serve", "--log-format", "json",
            env=env, cwd=workdir, stdout=asyncio.subprocess.DEVNULL, stderr=log,
        )
    service = Service(process=process, url=f"http://127.0.0.1:{port}", db=db)
    try:
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                await service.health()
                break
            if process.returncode is not None:
                raise RuntimeError(f"serve exited with {process.returncode} at start")
            await asyncio.sleep(0.1)
        yield service
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()


@contextlib.asynccontextmanager
async def fake_rest() -> AsyncIterator[tuple[FakeSautikitState, str]]:
    state = FakeSautikitState()
    async with serve_on_loopback(sautikit_rest_app(state)) as url:
        yield state, url


def place_calls(service: Service, state: FakeSautikitState, script: Path, count: int, tag: str):
    """Start `count` simulated calls at once; returns their tasks."""
    sim = FakeSautikit(service.url, options=SimulatorOptions(rest=state))
    loaded = load_script(script)
    return [
        asyncio.get_running_loop().create_task(sim.call(loaded, call_sid=f"HD_{tag}{n:04d}"))
        for n in range(count)
    ]


async def wait_live(service: Service, count: int, timeout_s: float = 60) -> None:
    """Until `count` calls have their media streams connected, as their records already say."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        connected = [
            r for r in await rows(service.db) if r[1] == "live" and "stream    connected" in r[2]
        ]
        if len(connected) >= count:
            return
        await asyncio.sleep(0.2)
    raise TimeoutError(f"{count} calls never went live")


async def rows(db: str) -> list[tuple[str, str, str]]:
    """(call_sid, outcome, transcript text) of every record, read through the store; empty if a SQLite
    file is not there yet."""
    path = sqlite_path(db)
    if path is not None and not path.exists():
        return []
    store = await open_call_store(db, busy_timeout_s=30)
    try:
        return [(c.call_sid, c.outcome, c.transcript_text) for c in await store.recent(limit=100_000)]
    finally:
        await store.close()


def _outcomes(records: list[tuple[str, str, str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for _, outcome, _ in records:
        counts[outcome] = counts.get(outcome, 0) + 1
    return dict(sorted(counts.items()))


def _finished(records: list[tuple[str, str, str]]) -> int:
    return sum(1 for _, outcome, _ in records if outcome not in ("live", "interrupted"))


async def scenario_sigterm(
    workdir: Path, calls: int, calls_db: str | None = None, extra_env: dict[str, str] | None = None
) -> dict[str, object]:
    async with fake_rest() as (state, rest_url), serve(
        workdir, rest_url, script=LONG_CALL, calls_db=calls_db, extra_env=extra_env
    ) as service:
        tasks = place_calls(service, state, LONG_CALL, calls, "term")
        await wait_live(service, calls)
        signalled = time.monotonic()
        service.process.send_signal(signal.SIGTERM)
        try:
            draining = (await service.health())["status"]
        except httpx.HTTPError as exc:  # a starved machine: say so rather than lose the run
            draining = f"unanswered ({type(exc).__name__})"
        code = await service.process.wait()
        exit_s = time.monotonic() - signalled
        ended = await asyncio.gather(*tasks, return_exceptions=True)
    records = await rows(service.db)
    return {
        "live_calls_at_sigterm": calls,
        "exit_code": code,
        "exit_s": round(exit_s, 2),
        "healthz_after_sigterm": draining,
        "records": len(records),
        "records_lost": calls - _finished(records),
        "outcomes": _outcomes(records),
        "callers_heard_goodbye": sum(1 for _, _, text in records if GOODBYE in text),
        "rest_hangups": len(set(state.hangups)),
        "calls_transferred": sum(1 for call in ended if getattr(call, "dialed", None)),
        "calls_ended_by": _ended_by(ended),
    }


def _ended_by(ended: list[object]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for call in ended:
        key = getattr(call, "ended_by", None) or type(call).__name__
        counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


async def scenario_sigkill(workdir: Path, calls: int, calls_db: str | None = None) -> dict[str, object]:
    async with fake_rest() as (state, rest_url):
        async with serve(workdir, rest_url, script=LONG_CALL, calls_db=calls_db) as service:
            tasks = place_calls(service, state, LONG_CALL, calls, "kill")
            await wait_live(service, calls)
            service.process.kill()
            await service.process.wait()
            await asyncio.gather(*tasks, return_exceptions=True)
        after_kill = await rows(service.db)
        async with serve(workdir, rest_url, script=LONG_CALL, calls_db=calls_db) as restarted:
            after_restart = await rows(restarted.db)
            restarted.process.send_signal(signal.SIGTERM)
            await restarted.process.wait()
    return {
        "live_calls_at_sigkill": calls,
        "records_after_kill": _outcomes(after_kill),
        "records_after_restart": _outcomes(after_restart),
        "records_lost": calls - sum(1 for _, o, _ in after_restart if o == "interrupted"),
    }


async def scenario_db_locked(workdir: Path, calls: int, lock_s: float) -> dict[str, object]:
    env = {"ORCHESTRATOR_CALLS_DB_BUSY_TIMEOUT_S": "1"}
    async with fake_rest() as (state, rest_url), serve(
        workdir, rest_url, script=SHORT_CALL, extra_env=env
    ) as service:
        blocker = sqlite3.connect(service.db, timeout=30, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # a real lock, held by another connection
        locked_at = time.monotonic()
        tasks = place_calls(service, state, SHORT_CALL, calls, "lock")
        statuses = await _watch_health(service, until=locked_at + lock_s)
        blocker.execute("COMMIT")
        blocker.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        recovered_s = await _until_healthy(service, since=locked_at + lock_s)
        health = await service.health()
        journal_left = (workdir / "calls.sqlite3.journal").exists()
        service.process.send_signal(signal.SIGTERM)
        await service.process.wait()
    records = await rows(service.db)
    return {
        "calls": calls,
        "lock_s": lock_s,
        "healthz_while_locked": statuses,
        "record_failures": health["record_failures"],
        "recovered_s_after_unlock": recovered_s,
        "journal_left": journal_left,
        "records": len(records),
        "records_lost": calls - _finished(records),
    }


async def scenario_disk_full(workdir: Path, calls: int, full_s: float) -> dict[str, object]:
    async with fake_rest() as (state, rest_url), serve(
        workdir, rest_url, script=SHORT_CALL, keep_log=False  # a log file would hit the limit too
    ) as service:
        pid = service.process.pid
        soft, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (1, hard))  # no file may grow: a full disk
        full_at = time.monotonic()
        tasks = place_calls(service, state, SHORT_CALL, calls, "full")
        statuses = await _watch_health(service, until=full_at + full_s)
        await asyncio.gather(*tasks, return_exceptions=True)
        before_free = len(await rows(service.db))
        resource.prlimit(pid, resource.RLIMIT_FSIZE, (soft, hard))  # space freed
        recovered_s = await _until_healthy(service, since=time.monotonic())
        health = await service.health()
        service.process.send_signal(signal.SIGTERM)
        await service.process.wait()
    records = await rows(service.db)
    return {
        "calls": calls,
        "full_s": full_s,
        "healthz_while_full": statuses,
        "records_in_db_while_full": before_free,
        "record_failures": health["record_failures"],
        "recovered_s_after_freeing": recovered_s,
        "records": len(records),
        "records_lost": calls - _finished(records),
    }


async def _watch_health(service: Service, *, until: float) -> dict[str, int]:
    """Poll /healthz until `until` (monotonic); how often each status was seen."""
    seen: dict[str, int] = {}
    while time.monotonic() < until:
        status = str((await service.health())["status"])
        seen[status] = seen.get(status, 0) + 1
        await asyncio.sleep(0.25)
    return seen


async def _until_healthy(service: Service, *, since: float, timeout_s: float = 60) -> float:
    """Seconds from `since` until /healthz is ok with nothing pending."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        health = await service.health()
        if health["status"] == "ok" and health["records_pending"] == 0 and health["active_calls"] == 0:
            return round(time.monotonic() - since, 2)
        await asyncio.sleep(0.2)
    raise TimeoutError(f"records never recovered: {health}")


async def main(calls: int, lock_s: float, calls_db: str | None = None) -> dict[str, object]:
    results: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="durability-") as tmp:
        for name, run in (
            ("sigterm", lambda d: scenario_sigterm(d, calls, calls_db)),
            ("sigkill", lambda d: scenario_sigkill(d, min(calls, 5), calls_db)),
            ("db_locked", lambda d: scenario_db_locked(d, min(calls, 10), lock_s)),
            ("disk_full", lambda d: scenario_disk_full(d, min(calls, 10), 8.0)),
        ):
            workdir = Path(tmp) / name
            workdir.mkdir()
            started = time.monotonic()
            results[name] = {**await run(workdir), "scenario_s": round(time.monotonic() - started, 1)}
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--lock-s", type=float, default=10.0)
    parser.add_argument("--only", choices=("sigterm", "sigkill", "db_locked", "disk_full"))
    parser.add_argument("--keep", type=Path, help="run --only in this folder and keep it (logs, database)")
    parser.add_argument("--calls-db", help="sigterm and sigkill store calls here (e.g. a postgresql:// URL)")
    arguments = parser.parse_args()
    if arguments.only:
        async def _one() -> dict[str, object]:
            with contextlib.ExitStack() as stack:
                tmp = arguments.keep or stack.enter_context(tempfile.TemporaryDirectory(prefix="durability-"))
                Path(tmp).mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - before anything runs
                runs = {
                    "sigterm": lambda: scenario_sigterm(Path(tmp), arguments.calls, arguments.calls_db),
                    "sigkill": lambda: scenario_sigkill(Path(tmp), arguments.calls, arguments.calls_db),
                    "db_locked": lambda: scenario_db_locked(Path(tmp), arguments.calls, arguments.lock_s),
                    "disk_full": lambda: scenario_disk_full(Path(tmp), arguments.calls, 8.0),
                }
                return {arguments.only: await runs[arguments.only]()}

        print(json.dumps(asyncio.run(_one()), indent=2))
    else:
        print(json.dumps(asyncio.run(main(arguments.calls, arguments.lock_s, arguments.calls_db)), indent=2))
