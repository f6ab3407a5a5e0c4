"""`orchestrator serve --workers N` as a real process tree: N workers on one port, sharing calls on a real Redis.

The supervisor restarts a worker that dies, passes SIGTERM on (each worker drains, the supervisor exits 0),
and on SIGHUP replaces the workers one at a time while the port keeps answering. Each test has a Redis key
prefix of its own (ORCHESTRATOR_TEST_REDIS_URL, default redis://127.0.0.1:6379/0); the workers' calls go
to one SQLite file, or to one PostgreSQL store (a schema of the test's own, tests/postgres.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.call.store import open_call_store
from orchestrator.script import load_script
from orchestrator.simulator import FakeSautikit
from tests.flows import SCRIPTS
from tests.serving import wait_until_serving

REDIS_URL = os.environ.get("ORCHESTRATOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ROOT = Path(__file__).resolve().parents[2]


@dataclass(slots=True)
class Served:
    process: asyncio.subprocess.Process
    url: str
    db: Path

    def worker_pids(self) -> set[int]:
        """The supervisor's children, from /proc: its workers."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        with contextlib.suppress(OSError):
            return {int(pid) for pid in children.read_text().split()}
        return set()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _free_ports(count: int) -> int:
    """The first of `count` consecutive free ports."""
    for _ in range(50):
        first = _free_port()
        with contextlib.ExitStack() as probes:
            try:
                for port in range(first, first + count):
                    probes.enter_context(socket.socket()).bind(("127.0.0.1", port))
            except OSError:
                continue
        return first
    pytest.fail(f"no {count} consecutive free ports")


@contextlib.asynccontextmanager
async def _serve(
    tmp_path: Path, *args: str, redis: bool = True, calls_db: str | None = None
) -> AsyncIterator[Served]:
    port = _free_port()
    env = {
        **os.environ,
        "ORCHESTRATOR_PORT": str(port),
        "ORCHESTRATOR_CALLS_DB": calls_db or str(tmp_path / "calls.sqlite3"),
        "ORCHESTRATOR_BRAIN": "scripted",
        "ORCHESTRATOR_SCRIPT": str(SCRIPTS / "returning_caller_by_phone.yaml"),
        "ORCHESTRATOR_FALLBACK_VOICE": "synthetic",
        "ORCHESTRATOR_SHUTDOWN_GRACE_S": "5",
        "ORCHESTRATOR_WORKER_HEARTBEAT_S": "0.2",
        "ORCHESTRATOR_WORKER_TTL_S": "1.0",
    }
    if redis:
        env |= {
            "ORCHESTRATOR_REDIS_URL": REDIS_URL,
            "ORCHESTRATOR_REDIS_PREFIX": f"orchestrator-test:{uuid.uuid4().hex}:",
        }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "orchestrator.cli",
        "serve",
        "--log-level",
        "warning",
        *args,
        env=env,
        cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    served = Served(process=process, url=f"http://127.0.0.1:{port}", db=tmp_path / "calls.sqlite3")
    try:
        yield served
    finally:
        if process.returncode is None:
            _kill_everything(served)
        await process.wait()


async def _workers_seen(http: aiohttp.ClientSession, url: str, *, polls: int = 40) -> set[int]:
    """The worker pids that answer /healthz over fresh connections (the kernel spreads them)."""
    seen: set[int] = set()
    for _ in range(polls):
        async with aiohttp.ClientSession() as fresh, fresh.get(f"{url}/healthz") as response:
            seen.add((await response.json())["pid"])
    return seen


async def _all_serving(served: Served, count: int) -> set[int]:
    """Until `count` workers run and each has answered /healthz; their pids."""
    async with aiohttp.ClientSession() as http:
        for _ in range(60):
            pids = served.worker_pids()
            if len(pids) == count and await _workers_seen(http, served.url, polls=20) == pids:
                return pids
            await asyncio.sleep(0.2)
    pytest.fail(f"{count} workers never all answered")


def _kill_everything(served: Served) -> None:
    """SIGKILL the workers, then their supervisor."""
    for pid in [*served.worker_pids(), served.process.pid]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


async def _exits_cleanly(served: Served, *, timeout_s: float) -> None:
    """The supervisor exits 0 within `timeout_s`; else the test fails with what the service logged."""
    code: int | None = None
    with contextlib.suppress(TimeoutError):
        code = await asyncio.wait_for(served.process.wait(), timeout=timeout_s)
    if code == 0:
        return
    _kill_everything(served)  # the workers share its stderr: killed too, so the read ends
    assert served.process.stderr is not None
    logged = (await asyncio.wait_for(served.process.stderr.read(), 10)).decode(errors="replace")
    pytest.fail(f"serve --workers: exit code {code} after SIGTERM; it logged:\n{logged[-8000:]}")


async def _until(condition, *, attempts: int = 150) -> None:
    for _ in range(attempts):
        if condition():
            return
        await asyncio.sleep(0.1)
    pytest.fail("the condition never held")


async def test_serve_workers_share_one_port_carry_calls_and_stop_on_sigterm(tmp_path):
    """Two workers answer on one port, a call goes through whichever take its requests, SIGTERM exits 0."""
    async with _serve(tmp_path, "--workers", "2") as served, aiohttp.ClientSession() as http:
        await wait_until_serving(http, served.url, attempts=300)
        await _all_serving(served, 2)

        call = await FakeSautikit(served.url).call(
            load_script(SCRIPTS / "returning_caller_by_phone.yaml")
        )
        assert call.ended_by == "agent"

        served.process.send_signal(signal.SIGTERM)
        await _exits_cleanly(served, timeout_s=30)


async def test_serve_workers_each_serve_their_own_metrics_on_their_own_port(tmp_path):
    """--metrics-port P: worker 0 answers GET /metrics on P, worker 1 on P+1, each with its own figures."""
    metrics_port = _free_ports(2)
    args = ("--workers", "2", "--metrics-port", str(metrics_port))
    async with _serve(tmp_path, *args) as served, aiohttp.ClientSession() as http:
        await wait_until_serving(http, served.url, attempts=300)
        await _all_serving(served, 2)
        call = await FakeSautikit(served.url).call(
            load_script(SCRIPTS / "returning_caller_by_phone.yaml")
        )
        assert call.ended_by == "agent"

        ports = (metrics_port, metrics_port + 1)
        for port in ports:
            async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 404, "the metrics port serves nothing else"
        for _ in range(50):  # the call's record (and its count) follows its hang-up by a moment
            scraped = [await _scrape_counters(http, port) for port in ports]
            if sum(s.get("orchestrator_calls_total", 0) for s in scraped) == 1:
                break
            await asyncio.sleep(0.1)
        # One call: answered (and finished) by one worker; the other counted none. One registry would
        # show the same figures on both ports.
        assert sorted(s.get("orchestrator_calls_started_total", 0) for s in scraped) == [0, 1]
        assert sum(s.get("orchestrator_calls_total", 0) for s in scraped) == 1

        served.process.send_signal(signal.SIGTERM)
        await _exits_cleanly(served, timeout_s=30)


async def _scrape_counters(http: aiohttp.ClientSession, port: int) -> dict[str, float]:
    """GET /metrics on `port`, parsed as Prometheus does: each counter's samples summed over their labels."""
    async with http.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200
        body = await response.text()
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(body):
        if family.type == "counter":
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


async def test_serve_workers_restarts_a_worker_that_dies(tmp_path):
    """A worker killed outright is replaced: two workers serve again, one of them new."""
    async with _serve(tmp_path, "--workers", "2") as served, aiohttp.ClientSession() as http:
        await wait_until_serving(http, served.url, attempts=300)
        first = await _all_serving(served, 2)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)

        await _until(
            lambda: len(served.worker_pids()) == 2 and victim not in served.worker_pids(),
            attempts=300,
        )
        now = await _all_serving(served, 2)
        assert len(now & first) == 1


async def test_serve_workers_sighup_replaces_each_worker_while_the_port_keeps_answering(tmp_path):
    """SIGHUP: every worker replaced one at a time; /healthz answered on every poll meanwhile.

    A poll accepted by the old worker just as it stops listening is answered 503 "draining" (what a load
    balancer should see from a worker on its way out); none finds the port closed. Each slot's metrics port
    passes from the old worker to the new one."""
    metrics_port = _free_ports(2)
    args = ("--workers", "2", "--metrics-port", str(metrics_port))
    async with _serve(tmp_path, *args) as served, aiohttp.ClientSession() as http:
        await wait_until_serving(http, served.url, attempts=300)
        before = await _all_serving(served, 2)
        served.process.send_signal(signal.SIGHUP)

        statuses: list[tuple[int, str]] = []
        for _ in range(600):
            async with (
                aiohttp.ClientSession() as fresh,
                fresh.get(f"{served.url}/healthz") as response,
            ):
                statuses.append((response.status, (await response.json())["status"]))
            now = served.worker_pids()
            if len(now) == 2 and not now & before:
                break
            await asyncio.sleep(0.05)

        assert len(now) == 2
        assert not now & before
        assert {status for status, _ in statuses} <= {200, 503}
        assert all(said == "draining" for status, said in statuses if status == 503)
        assert await _all_serving(served, 2) == now  # and afterwards both new workers answer 200
        for port in (metrics_port, metrics_port + 1):
            assert "orchestrator_calls_started_total" in await _scrape_counters(http, port)


async def test_serve_workers_without_redis_is_refused_with_the_reason(tmp_path):
    """Several workers without Redis could not share calls: serve says so and exits 2."""
    async with _serve(tmp_path, "--workers", "2", redis=False) as served:
        code = await asyncio.wait_for(served.process.wait(), timeout=60)
        assert served.process.stderr is not None
        message = (await served.process.stderr.read()).decode()
    assert code == 2
    assert "needs ORCHESTRATOR_REDIS_URL" in message


async def _finished_per_worker(url: str) -> dict[int, int]:
    """Each worker's finished calls (pid -> count), from /healthz over fresh connections."""
    finished: dict[int, int] = {}
    for _ in range(30):
        async with aiohttp.ClientSession() as fresh, fresh.get(f"{url}/healthz") as response:
            health = await response.json()
        finished[health["pid"]] = health["finished_calls"]
    return finished


async def test_serve_workers_record_both_workers_calls_in_one_postgres_store(tmp_path, postgres_url):
    """Two workers, Redis and PostgreSQL: calls carried by either worker are all in the one store.

    Calls are placed six at a time until each worker has finished at least one (the kernel picks the
    worker per connection); after SIGTERM every call placed has its record in PostgreSQL, resolved."""
    script = load_script(SCRIPTS / "returning_caller_by_phone.yaml")
    placed: list[str] = []
    async with (
        _serve(tmp_path, "--workers", "2", calls_db=postgres_url) as served,
        aiohttp.ClientSession() as http,
    ):
        await wait_until_serving(http, served.url, attempts=300)
        pids = await _all_serving(served, 2)
        finished: dict[int, int] = {}
        for batch in range(3):
            sids = [f"HD_pg_worker{batch}{n}" for n in range(6)]
            calls = await asyncio.gather(
                *(FakeSautikit(served.url).call(script, call_sid=sid) for sid in sids)
            )
            assert [call.ended_by for call in calls] == ["agent"] * 6
            placed += sids
            finished = await _finished_per_worker(served.url)
            if set(finished) == pids and all(finished.values()):
                break
        served.process.send_signal(signal.SIGTERM)
        await _exits_cleanly(served, timeout_s=30)

    assert set(finished) == pids
    assert all(finished.values()), f"one worker carried every call: {finished}"
    assert sum(finished.values()) == len(placed)
    store = await open_call_store(postgres_url)
    try:
        recorded = await store.recent(limit=100)
    finally:
        await store.close()
    assert sorted((c.call_sid, c.outcome) for c in recorded) == [(sid, "resolved") for sid in placed]
