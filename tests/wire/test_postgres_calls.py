"""`orchestrator serve` with ORCHESTRATOR_CALLS_DB=postgresql://...: every call on record in PostgreSQL.

Real processes against the test server (a schema per test, tests/postgres.py), the same scenarios as
SQLite's (bench/durability.py): SIGTERM flushes every record; SIGKILL leaves them live and the next
start marks them interrupted. What reads the store reads it from PostgreSQL too: `orchestrator history`
as a process, and the calls console.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

from bench.durability import (
    LONG_CALL,
    fake_rest,
    place_calls,
    rows,
    scenario_sigkill,
    scenario_sigterm,
    serve,
    wait_live,
)
from orchestrator.brains.scripted import ScriptedBrain
from orchestrator.console import standalone_console
from orchestrator.harness import serve_line
from orchestrator.script import load_script
from orchestrator.settings import Settings
from tests.flows import SCRIPTS

CONSOLE_TOKEN = "console-test-token"  # noqa: S105 - test credential


async def test_postgres_sigterm_says_goodbye_and_keeps_every_record(tmp_path, postgres_url):
    """Two live calls, one SIGTERM: exit 0, both callers hear the goodbye, both records in PostgreSQL."""
    figures = await scenario_sigterm(tmp_path, calls=2, calls_db=postgres_url)

    assert figures["exit_code"] == 0
    assert figures["records"] == 2
    assert figures["records_lost"] == 0
    assert figures["callers_heard_goodbye"] == 2


async def test_postgres_sigkill_leaves_live_records_that_the_next_start_marks_interrupted(
    tmp_path, postgres_url
):
    """Killed outright, the calls are on record in PostgreSQL as live; the restarted service marks them."""
    figures = await scenario_sigkill(tmp_path, calls=2, calls_db=postgres_url)

    assert figures["records_after_kill"] == {"live": 2}
    assert figures["records_after_restart"] == {"interrupted": 2}
    assert figures["records_lost"] == 0


def _host(name: str) -> dict[str, str]:
    # Beats often, silence allowed long: a loaded box may stall a live host for seconds, never for 8.
    return {
        "ORCHESTRATOR_HOST_ID": name,
        "ORCHESTRATOR_HOST_HEARTBEAT_S": "0.5",
        "ORCHESTRATOR_HOST_TTL_S": "8",
    }


async def test_postgres_two_hosts_without_redis_a_start_spares_the_other_and_a_dead_host_is_marked(
    tmp_path, postgres_url
):
    """Hosts A and B on one store, no Redis. B starting leaves A's two live calls live; A killed for
    good, B marks them interrupted once A has been silent past the allowed silence."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with fake_rest() as (state, rest_url):
        async with serve(
            tmp_path / "a", rest_url, script=LONG_CALL, calls_db=postgres_url, extra_env=_host("host-a")
        ) as host_a:
            calls = place_calls(host_a, state, LONG_CALL, 2, "hostA")
            await wait_live(host_a, 2)
            async with serve(
                tmp_path / "b", rest_url, script=LONG_CALL, calls_db=postgres_url, extra_env=_host("host-b")
            ) as host_b:
                after_b_started = {sid: outcome for sid, outcome, _ in await rows(postgres_url)}
                host_a.process.kill()
                await host_a.process.wait()
                await asyncio.gather(*calls, return_exceptions=True)
                for _ in range(600):  # B's beats find A silent 8 s after its last beat
                    after_a_died = {sid: outcome for sid, outcome, _ in await rows(postgres_url)}
                    if set(after_a_died.values()) != {"live"}:
                        break
                    await asyncio.sleep(0.1)
                assert (await host_b.health())["status"] == "ok"

    assert after_b_started == {"HD_hostA0000": "live", "HD_hostA0001": "live"}
    assert after_a_died == {"HD_hostA0000": "interrupted", "HD_hostA0001": "interrupted"}


async def _history(postgres_url: str, *argv: str) -> str:
    """`orchestrator history ... --db URL` as a process; its stdout."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orchestrator.cli", "history", *argv, "--db", postgres_url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_postgres_history_and_console_read_the_calls_a_service_stored(
    aiohttp_client, postgres_url
):
    """A call served into PostgreSQL: `history list/show/summary` print it, and the console lists it."""
    script = load_script(SCRIPTS / "returning_caller_by_phone.yaml")
    settings = Settings(calls_db=postgres_url, fallback_voice="synthetic")
    async with serve_line(
        settings=settings, brain_factory=lambda start: ScriptedBrain(script)
    ) as line:
        await line.call(script, call_sid="HD_pg_history")

    listed = json.loads(await _history(postgres_url, "list", "--json"))
    assert [(c["call_sid"], c["outcome"]) for c in listed] == [("HD_pg_history", "resolved")]
    assert "HD_pg_history" in await _history(postgres_url, "show", "HD_pg_history")
    assert json.loads(await _history(postgres_url, "summary", "--json")) == {"resolved": 1}

    console = await aiohttp_client(standalone_console(postgres_url, token=CONSOLE_TOKEN))
    bearer = {"Authorization": f"Bearer {CONSOLE_TOKEN}"}
    page = await console.get("/console/", headers=bearer)
    assert page.status == 200
    assert "HD_pg_history" in await page.text()
    call = await console.get("/console/calls/HD_pg_history", headers=bearer)
    assert call.status == 200
    assert "HD_pg_history" in await call.text()


async def test_serve_with_an_unreachable_postgres_store_says_so_and_exits_1(tmp_path):
    """A wrong host stops `serve` at start with one line naming the store, its password starred."""
    env = {
        **os.environ,
        "ORCHESTRATOR_PORT": "0",
        "ORCHESTRATOR_CALLS_DB": "postgresql://orchestrator:s3cret@127.0.0.1:9/calls",
        "ORCHESTRATOR_CALLS_DB_BUSY_TIMEOUT_S": "2",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orchestrator.cli", "serve", env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(process.communicate(), timeout=60)
    last = err.decode().strip().splitlines()[-1]
    assert process.returncode == 1
    assert last.startswith("orchestrator: call store postgresql://orchestrator:***@127.0.0.1:9/calls: ")
    assert "s3cret" not in err.decode()
